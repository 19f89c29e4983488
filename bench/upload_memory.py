"""Peak memory of a server receiving 32 pictures at the pixel limit at once.

Each round starts a fresh ``showme serve`` (so its peak RSS, ``VmHWM``, is its own), warms it
with one small upload, then sends 32 uploads of a 7000 x 7000 JPEG (49 MP, just under the 50 MP
limit) at once and reads the process's peak RSS once all are answered. Rounds alternate between
the default decoding budget (``max_decoding_pixels``) and no budget (decoding then bounded only
by the thread pool, one picture per core), so the two are compared within one run.

Run: .venv/bin/python -m bench.upload_memory [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from pathlib import Path

import httpx
from PIL import Image

from bench._support import Server, showme_server
from showme_core.config import Settings

UPLOADS = 32
SIDE = 7000
UNBOUNDED = str(10**12)


def big_picture() -> bytes:
    """A 49 MP photo-like JPEG that fits the upload limit: smooth gradients, little noise."""
    base = Image.linear_gradient("L").resize((SIDE, SIDE))
    image = Image.merge(
        "RGB", (base, base.rotate(90), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


async def upload_all(server: Server, picture: bytes) -> tuple[list[int], float]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    limits = httpx.Limits(max_connections=UPLOADS + 4)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=600, limits=limits
    ) as client:
        tokens = []
        for _ in range(UPLOADS // 2):
            created = await client.post(
                "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
            )
            created.raise_for_status()
            tokens.append(created.json()["link"].split("#", 1)[1])

        async def one(token: str) -> int:
            answer = await client.post(
                "/api/v1/caller/media",
                headers={"X-ShowMe-Link": token},
                files={"picture": ("big.jpg", picture, "image/jpeg")},
            )
            return answer.status_code

        small = Image.new("RGB", (64, 64), "white")
        warm = io.BytesIO()
        small.save(warm, "JPEG")
        await client.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": tokens[0]},
            files={"picture": ("w.jpg", warm.getvalue(), "image/jpeg")},
        )
        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(tokens[i // 2]) for i in range(UPLOADS)))
        return list(statuses), time.perf_counter() - started


def one_round(picture: bytes, budget: str | None) -> tuple[int, int, float, list[int]]:
    env = {"SHOWME_MAX_UPLOADS_PER_ORGANISATION": str(UPLOADS)}
    if budget is not None:
        env["SHOWME_MAX_DECODING_PIXELS"] = budget
    with showme_server(**env) as server:
        baseline = status_kib(server.pid, "VmRSS")
        statuses, seconds = asyncio.run(upload_all(server, picture))
        peak = status_kib(server.pid, "VmHWM")
    return baseline, peak, seconds, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    picture = big_picture()
    default_budget = Settings().max_decoding_pixels
    print(
        f"{UPLOADS} uploads at once of a {SIDE} x {SIDE} JPEG ({len(picture) / 1e6:.1f} MB, "
        f"{SIDE * SIDE / 1e6:.0f} MP); default budget {default_budget / 1e6:.0f} MP"
    )
    peaks: dict[str, list[int]] = {"budget": [], "none": []}
    for round_ in range(args.rounds):
        for name, budget in (("budget", None), ("none", UNBOUNDED)):
            baseline, peak, seconds, statuses = one_round(picture, budget)
            peaks[name].append(peak)
            print(
                f"round {round_ + 1} {name:>6}: baseline {baseline / 1024:.0f} MiB, "
                f"peak {peak / 1024:.0f} MiB, {seconds:.1f} s, "
                f"answers {sorted(set(statuses))}"
            )
    for name, values in peaks.items():
        mib = [v / 1024 for v in values]
        print(
            f"peak RSS with {'the default budget' if name == 'budget' else 'no budget':<18}: "
            f"median {statistics.median(mib):.0f} MiB (min {min(mib):.0f}, max {max(mib):.0f})"
        )
    ratios = [b / n for b, n in zip(peaks["budget"], peaks["none"], strict=True)]
    print(
        f"budget / none, per round: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
