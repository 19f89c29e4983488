"""Event committed -> signed webhook received by a CAD, on a real server with the `cad_webhook`
adapter, and what a slow CAD costs the callers.

Prints, per run:

- created -> delivered: from the `201` of `POST /api/v1/invites` to the receiver holding the
  verified `invite.created` webhook (the core's lane, the adapter's record, its sender, HTTP):
  at a steady five invites a second (a busy PSAP), then a burst of 20 creators at once, which
  shows how many events a second one organisation's deliveries keep up with;
- invite round trip with no endpoint, then with two endpoints whose receiver takes 3 s per
  answer: a slow CAD must cost the callers nothing.

Run: .venv/bin/python -m bench.cad_webhook [--invites 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook

from bench._support import Server, _free_port, showme_server, summary

SETTINGS = {"cad_webhook": {"allow_insecure_loopback": True}}  # a receiver on loopback, http


class Receiver:
    """Verifies each webhook and notes when each invite's `invite.created` arrived."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = _free_port()
        self.secrets: list[str] = []
        self.arrived: dict[str, float] = {}
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload = None
                for secret in receiver.secrets:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                        break
                    except Exception:  # noqa: S112 - the next secret may verify it
                        continue
                if payload is None:
                    receiver.refused += 1
                elif payload["type"] == "invite.created":
                    receiver.arrived.setdefault(payload["data"]["invite_id"], time.perf_counter())
                time.sleep(delay)
                self.send_response(204 if payload is not None else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def endpoint(server: Server, org_id: str, receiver: Receiver) -> None:
    out = server.cli("webhooks", "create", "--org", org_id, "--url", receiver.url)
    receiver.secrets.append(next(x for x in out.splitlines() if x.startswith("whsec_")))


async def create(client: httpx.AsyncClient, created: dict[str, float]) -> float:
    sent = time.perf_counter()
    answer = await client.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
    answered = time.perf_counter()
    answer.raise_for_status()
    created[answer.json()["id"]] = answered
    return answered - sent


async def creations(
    server: Server, key: str, count: int, at_once: int, pace: float
) -> dict[str, float]:
    created: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        for start in range(0, count, at_once):
            began = time.perf_counter()
            await asyncio.gather(
                *(create(client, created) for _ in range(min(at_once, count - start)))
            )
            await asyncio.sleep(max(0.0, pace - (time.perf_counter() - began)))
    return created


def latency(
    server: Server, key: str, receiver: Receiver, count: int, at_once: int, pace: float = 0.0
) -> None:
    began = time.perf_counter()
    created = asyncio.run(creations(server, key, count, at_once, pace))
    deadline = time.monotonic() + 60
    while set(created) - set(receiver.arrived) and time.monotonic() < deadline:
        time.sleep(0.01)
    missing = set(created) - set(receiver.arrived)
    took = [receiver.arrived[i] - created[i] for i in created if i in receiver.arrived]
    how = f"every {pace * 1000:.0f} ms" if pace else f"{at_once} at once"
    rate = len(took) / (max(receiver.arrived.values()) - began)
    print(
        f"  created -> delivered, {how}: {summary(took)}, missing {len(missing)}, "
        f"{rate:.0f} deliveries/s"
    )


async def round_trips(server: Server, key: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        return [await create(client, {}) for _ in range(count)]


def organisation(server: Server, slug: str) -> tuple[str, str]:
    made = server.cli("org", "create", "--slug", slug, "--name", slug, "--region", "BE")
    found = re.search(r"\(id ([0-9a-f]+),", made)
    assert found, made
    key = server.cli("apikey", "create", "--org", slug, "--name", "CAD").strip().split()[-1]
    return found.group(1), key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invites", type=int, default=100)
    args = parser.parse_args()
    env = {"SHOWME_PLUGINS": "cad_webhook", "SHOWME_PLUGIN_SETTINGS": json.dumps(SETTINGS)}
    with showme_server(**env) as server:
        fast = Receiver()
        org_id, key = organisation(server, "hooks")
        endpoint(server, org_id, fast)
        time.sleep(3)  # the server finds the new organisation's event lane (every 10 s at most)
        latency(server, key, fast, 5, 1, pace=0.2)  # warm up
        fast.arrived.clear()
        latency(server, key, fast, args.invites, 1, pace=0.2)
        fast.arrived.clear()
        latency(server, key, fast, args.invites, 20)
        print(f"  refused signatures: {fast.refused}")
        fast.close()

        slow = Receiver(delay=3.0)
        other_id, other_key = organisation(server, "slow")
        asyncio.run(round_trips(server, other_key, 5))
        base = asyncio.run(round_trips(server, other_key, args.invites // 2))
        endpoint(server, other_id, slow)
        endpoint(server, other_id, slow)
        loaded = asyncio.run(round_trips(server, other_key, args.invites // 2))
        print(f"  invite round trip, no endpoint:           {summary(base)}")
        print(f"  invite round trip, two 3 s endpoints:     {summary(loaded)}")
        slow.close()


if __name__ == "__main__":
    main()
