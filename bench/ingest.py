"""Ingest of 12 MP JPEGs: ShowMe's whole pipeline against Pillow alone (decode + re-encode).

Both run in the same process, interleaved round by round, on the same pictures, one thread and
then one thread per core; the figure that matters is the ratio (budget: ShowMe >= 0.8 of Pillow).
ShowMe's side is ``imaging.process_picture`` (format check, polyglot check, EXIF, full decode,
orientation, re-encode, thumbnail) plus the SHA-256 of what it stores; the durable write is
measured by the upload benchmark, not here.

Run: .venv/bin/python -m bench.ingest [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PIL import ExifTags, Image, ImageDraw

from showme_core.imaging import JPEG_QUALITY, process_picture


def phone_photo(seed: int) -> bytes:
    """A 4000 x 3000 photo-like JPEG at quality 92 with EXIF GPS, as a phone camera writes."""
    size = (4000, 3000)
    noise = Image.effect_noise(size, 14 + seed).convert("RGB")
    scene = Image.new("RGB", size, (70 + seed * 9, 120, 160))
    draw = ImageDraw.Draw(scene)
    for i in range(0, 4000, 90):
        draw.line([(i, 0), (4000 - i, 3000)], fill=(240, 190, 40), width=11)
        draw.ellipse([i, i // 2, i + 140, i // 2 + 90], fill=(200, 40, 40))
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (50.0, 51.0, 1.2), 3: "E", 4: (4.0, 21.0, 6.1)}
    out = io.BytesIO()
    Image.blend(scene, noise, 0.2).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def pillow_alone(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    image.load()
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def showme(data: bytes) -> bytes:
    clean = process_picture(data, 50_000_000)
    hashlib.sha256(clean.data).hexdigest()
    return clean.data


def rate(func: Callable[[bytes], bytes], pictures: list[bytes], workers: int) -> float:
    """Pictures per second over the whole list."""
    started = time.perf_counter()
    if workers == 1:
        for data in pictures:
            func(data)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(func, pictures))
    return len(pictures) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pictures", type=int, default=6)
    args = parser.parse_args()
    pictures = [phone_photo(seed) for seed in range(args.pictures)]
    average = sum(map(len, pictures)) / len(pictures) / 1e6
    print(f"{len(pictures)} pictures of 4000 x 3000 (12 MP), {average:.1f} MB each")
    cores = os.cpu_count() or 1
    for workers in sorted({1, cores}):
        ratios, ours, theirs = [], [], []
        for _ in range(args.rounds):
            baseline = rate(pillow_alone, pictures, workers)
            pipeline = rate(showme, pictures, workers)
            theirs.append(baseline)
            ours.append(pipeline)
            ratios.append(pipeline / baseline)
        print(
            f"{workers} thread(s): Pillow alone {statistics.median(theirs):.2f}/s, "
            f"ShowMe {statistics.median(ours):.2f}/s, ratio median "
            f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
