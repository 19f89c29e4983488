"""Signaling capacity of one instance: idle caller sockets held, and relay latency under them.

It creates N invites, opens one admitted caller socket per invite (hello with the link token, as
the page does) and keeps them open; then one more caller and a console exchange messages through
the relay, 40 per second (under the 50/s per-socket limit), and the one-way relay latency is
measured (both ends in this process, one clock). The server's memory is read from /proc before
and after the sockets are opened. Budget: 2,000 sockets with relay p99 <= 50 ms.

Run: .venv/bin/python -m bench.signaling [--sockets 2000] [--messages 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import websockets

from bench._support import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    Server,
    add_dispatcher,
    showme_server,
    summary,
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def make_invites(server: Server, count: int) -> list[tuple[str, str]]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    limits = httpx.Limits(max_connections=8)
    timeout = httpx.Timeout(30, pool=None)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=timeout
    ) as client:

        async def one(_: int) -> tuple[str, str]:
            answer = await client.post(
                "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
            )
            answer.raise_for_status()
            return answer.json()["id"], answer.json()["link"].split("#", 1)[1]

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def caller(url: str, token: str, device: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url, open_timeout=30, ping_interval=None)
    await ws.send(json.dumps({"type": "hello", "role": "caller", "token": token, "device": device}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def run(server: Server, pid: int, sockets: int, messages: int) -> None:
    url = server.url.replace("http://", "ws://") + "/ws/signal"
    invites = await make_invites(server, sockets + 1)
    before = rss_kib(pid)
    started = time.perf_counter()
    held: list[websockets.ClientConnection] = []
    for start in range(0, sockets, 100):  # in batches, as phones would arrive
        batch = invites[start : min(start + 100, sockets)]
        held += await asyncio.gather(
            *(
                caller(url, token, f"bench-device-{i:06d}")
                for i, (_id, token) in enumerate(batch, start)
            )
        )
    opened = time.perf_counter() - started
    after = rss_kib(pid)
    print(
        f"{len(held)} idle caller sockets open in {opened:.1f} s; server RSS {before // 1024} MB "
        f"-> {after // 1024} MB, {(after - before) / len(held):.1f} KiB per socket"
    )

    # One live pair among them: a console signed in with a cookie, and its caller.
    invite_id, token = invites[-1]
    login = await asyncio.to_thread(
        httpx.post,
        f"{server.url}/api/v1/session",
        headers={"Origin": server.url},
        json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD},
    )
    login.raise_for_status()
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    console = await websockets.connect(
        url, additional_headers={"Origin": server.url, "Cookie": cookie}, ping_interval=None
    )
    await console.send(json.dumps({"type": "hello", "role": "console", "invite_id": invite_id}))
    assert json.loads(await console.recv())["type"] == "welcome"
    phone = await caller(url, token, "bench-live-phone")
    assert json.loads(await console.recv()) == {"type": "peer", "present": True}

    latencies: list[float] = []
    sent_at: dict[str, float] = {}

    async def receive() -> None:
        while len(latencies) < messages:
            message = json.loads(await console.recv())
            if message.get("type") == "offer":
                latencies.append(time.perf_counter() - sent_at[message["sdp"]])

    receiver = asyncio.create_task(receive())
    for i in range(messages):
        sdp = f"v=0\r\ns=bench-{i}\r\n"
        sent_at[sdp] = time.perf_counter()
        await phone.send(json.dumps({"type": "offer", "sdp": sdp}))
        await asyncio.sleep(1 / 40)
    await asyncio.wait_for(receiver, 30)
    print(f"relay caller -> console under {len(held)} idle sockets: {summary(latencies)}")
    for ws in [*held, console, phone]:
        await ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=400)
    args = parser.parse_args()
    with showme_server() as server:
        add_dispatcher(server)
        asyncio.run(run(server, server.pid, args.sockets, args.messages))


if __name__ == "__main__":
    main()
