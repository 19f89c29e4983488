"""Picture upload answered -> `media.created` received by a console feed, on a real server.

For 1 and for 20 concurrent callers, each uploading pictures one after the other as the caller
page sends them (a 2048 px JPEG), it prints three figures per run:

- answered -> event: from the caller's 201 to the feed delivering the event (the budget's figure;
  it can be negative, because the event is published at commit, just before the 201 is written);
- sent -> event: from the first byte of the upload to the event on the console (what a dispatcher
  waits for, including the upload itself and decoding);
- upload round trip: sent -> 201.

Run: .venv/bin/python -m bench.upload_latency [--pictures 100]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time

import httpx
from PIL import Image, ImageDraw

from bench._support import Server, showme_server, summary


def caller_picture(seed: int) -> bytes:
    """What the caller page uploads: a photo-like 2048 x 1536 JPEG at quality 0.85."""
    noise = Image.effect_noise((2048, 1536), 12 + seed % 5).convert("RGB")
    scene = Image.new("RGB", (2048, 1536), (60, 110, 170))
    draw = ImageDraw.Draw(scene)
    for i in range(0, 2048, 64):
        draw.line([(i, 0), (2048 - i, 1536)], fill=(240, 190, 40), width=9)
    out = io.BytesIO()
    Image.blend(scene, noise, 0.2).save(out, "JPEG", quality=85)
    return out.getvalue()


async def feed_reader(server: Server, seen: dict[str, float], ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"{server.url}/api/v1/events?after=0", headers=headers) as stream,
    ):
        ready.set()
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("type") == "media.created":
                    seen[event["data"]["media"]["id"]] = time.perf_counter()


async def caller(
    server: Server, pictures: list[bytes], count: int, results: list[tuple[str, float, float]]
) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        created = await client.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}, headers=headers
        )
        token = created.json()["link"].split("#", 1)[1]
        for i in range(count):
            data = pictures[i % len(pictures)]
            sent = time.perf_counter()
            answer = await client.post(
                "/api/v1/caller/media",
                headers={"X-ShowMe-Link": token, "Idempotency-Key": f"bench-{id(results)}-{i}"},
                files={"picture": ("picture.jpg", data, "image/jpeg")},
            )
            answered = time.perf_counter()
            answer.raise_for_status()
            results.append((answer.json()["media"]["id"], sent, answered))


async def run(server: Server, callers: int, total: int, pictures: list[bytes]) -> None:
    seen: dict[str, float] = {}
    ready = asyncio.Event()
    reader = asyncio.create_task(feed_reader(server, seen, ready))
    await asyncio.wait_for(ready.wait(), 10)
    results: list[tuple[str, float, float]] = []
    started = time.perf_counter()
    per_caller = max(1, total // callers)
    await asyncio.gather(*(caller(server, pictures, per_caller, results) for _ in range(callers)))
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while any(media_id not in seen for media_id, _, _ in results):
        if time.monotonic() > deadline:
            raise RuntimeError("some media.created events never reached the feed")
        await asyncio.sleep(0.01)
    reader.cancel()
    answered_to_event = [seen[m] - answered for m, _sent, answered in results]
    sent_to_event = [seen[m] - sent for m, sent, _answered in results]
    round_trip = [answered - sent for _m, sent, answered in results]
    print(
        f"\n{callers} concurrent caller(s), {len(results)} uploads "
        f"({len(results) / elapsed:.1f} pictures/s)"
    )
    print(f"  answered -> event : {summary(answered_to_event)}")
    print(f"  sent -> event     : {summary(sent_to_event)}")
    print(f"  upload round trip : {summary(round_trip)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=100, help="uploads per run")
    parser.add_argument("--callers", default="1,20", help="concurrency levels, comma separated")
    args = parser.parse_args()
    pictures = [caller_picture(seed) for seed in range(4)]
    print(f"picture size: {sum(map(len, pictures)) // len(pictures) // 1024} KB (2048 x 1536 JPEG)")
    with showme_server() as server:
        for callers in (int(c) for c in args.callers.split(",")):
            asyncio.run(run(server, callers, args.pictures, pictures))


if __name__ == "__main__":
    main()
