"""A seeded mutation fuzzer for the picture pipeline.

Seeds are small pictures made in code by real encoders, in every format and flavour the pipeline
accepts. A mutant is a seed changed by one to three mutations: bit flips, interesting bytes,
truncation, duplicated or removed ranges, two seeds spliced, and corrupted length fields found by
walking each container (JPEG segments, PNG chunks and their CRCs, RIFF chunks, ISO-BMFF boxes,
HEIF's ``ispe`` and ``iloc``). Everything about mutant ``index`` derives from ``(seed, index)``,
so a failure is replayed from two numbers::

    .venv/bin/python -m tests.picture_mutants --seed SEED --index INDEX

The property: each mutant either becomes a :class:`CleanPicture` whose picture and thumbnail
decode as JPEGs of the stated size, or is refused with :class:`PictureRejected` and a 4xx status.
Mutants run in worker processes with a time limit each, so a hang or a crash of a decoder library
is caught as well; those workers never load pillow-heif (the tests' HEIC encoder), only what the
service loads.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import io
import multiprocessing
import os
import random
import signal
import struct
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from PIL import Image

DEFAULT_SEED = 91_112
DEFAULT_MUTANTS = 10_000
TIME_LIMIT_SECONDS = 10.0
WORKER_START_SECONDS = 120.0
MAX_PIXELS = 50_000_000  # the service's default max_image_pixels
SEED_SIZE = (48, 32)
# EXIF, ICC profile, XMP and comment: none may survive into the stored JPEG.
METADATA_MARKERS = (b"Exif\x00\x00", b"ICC_PROFILE", b"http://ns.adobe.com/xap", b"\xff\xfe")
INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80)
HEADER_SPAN = 512  # half the byte-level mutations land here, where the structure is
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Box types of a HEIF file, whose preceding four bytes are the box size.
BMFF_BOXES = (
    b"ftyp",
    b"meta",
    b"hdlr",
    b"pitm",
    b"iloc",
    b"iinf",
    b"infe",
    b"iref",
    b"iprp",
    b"ipco",
    b"ipma",
    b"ispe",
    b"hvcC",
    b"colr",
    b"pixi",
    b"irot",
    b"imir",
    b"auxC",
    b"mdat",
    b"idat",
    b"dinf",
    b"dref",
)
JPEG_SEGMENTS = frozenset(range(0xC0, 0xFF)) - frozenset(range(0xD0, 0xDA))

Verdict = tuple[str, str | None]  # the outcome, and what broke the property (None: nothing)


@cache
def seed_pictures() -> dict[str, bytes]:
    """The seeds by name: small pictures in every accepted format and flavour."""
    # Imported here: the workers get the seeds' bytes and never load the test-only HEIC encoder.
    from tests import pictures

    small = pictures.scene(*SEED_SIZE)
    exif = pictures.gps_exif(
        -33.8688,
        151.2093,
        accuracy_m=4.0,
        taken="2026:11:24 20:01:02",
        offset="+11:00",
        orientation=6,
    )
    palette = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    motion_video = b"\x00\x00\x00\x18ftypmp42" + random.Random(7).randbytes(600)
    width, height = SEED_SIZE
    return {
        "jpeg-baseline": pictures.jpeg(small),
        "jpeg-progressive": pictures.progressive_jpeg(small),
        "jpeg-exif-gps-orientation": pictures.jpeg(small, exif, comment=pictures.COMMENT),
        "jpeg-motion-trailer": pictures.jpeg(small) + motion_video,
        "jpeg-greyscale": pictures.jpeg(small.convert("L")),
        "jpeg-cmyk": pictures.jpeg(small.convert("CMYK")),
        "png-rgb": pictures.png(small),
        "png-rgba": pictures.png(small.convert("RGBA")),
        "png-palette": pictures.png(palette),
        "png-16bit": pictures.png_written(width, height, depth=16, colour_type=2),
        "png-16bit-grey": pictures.png_written(width, height, depth=16, colour_type=0),
        "png-interlaced": pictures.png_written(width, height, colour_type=6, interlaced=True),
        "webp-lossy": pictures.webp(small),
        "webp-lossless": pictures.webp_lossless(small),
        "webp-exif": pictures.webp(small, exif),
        "heic": pictures.heic(small),
        "heic-exif": pictures.heic(small, exif),
        "heic-alpha": pictures.heic(small.convert("RGBA")),
    }


# ---- Mutations ---------------------------------------------------------------------------------

Mutation = Callable[[random.Random, bytes, Mapping[str, bytes]], tuple[bytes, str]]


def _position(rng: random.Random, data: bytes) -> int:
    span = len(data) if rng.random() < 0.5 else min(len(data), HEADER_SPAN)
    return rng.randrange(max(1, span))


def flip_bits(rng: random.Random, data: bytes, _seeds: Mapping[str, bytes]) -> tuple[bytes, str]:
    out = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        if out:
            out[_position(rng, data)] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip {flips} bits"


def interesting_bytes(
    rng: random.Random, data: bytes, _seeds: Mapping[str, bytes]
) -> tuple[bytes, str]:
    out = bytearray(data)
    count = rng.randint(1, 4)
    for _ in range(count):
        if out:
            out[_position(rng, data)] = rng.choice(INTERESTING_BYTES)
    return bytes(out), f"set {count} bytes to 00/FF/7F/80"


def truncate(rng: random.Random, data: bytes, _seeds: Mapping[str, bytes]) -> tuple[bytes, str]:
    if not data:
        return data, "nothing left to truncate"
    if rng.random() < 0.5:
        cut = len(data) - rng.randint(1, min(len(data), 64))
    else:
        cut = rng.randrange(max(1, len(data)))
    return data[:cut], f"truncate at {cut}"


def duplicate_range(
    rng: random.Random, data: bytes, _seeds: Mapping[str, bytes]
) -> tuple[bytes, str]:
    start = _position(rng, data)
    end = min(len(data), start + rng.randint(1, 512))
    at = rng.randrange(len(data) + 1)
    return data[:at] + data[start:end] + data[at:], f"copy {start}:{end} to {at}"


def remove_range(rng: random.Random, data: bytes, _seeds: Mapping[str, bytes]) -> tuple[bytes, str]:
    start = _position(rng, data)
    end = min(len(data), start + rng.randint(1, 512))
    return data[:start] + data[end:], f"remove {start}:{end}"


def splice(rng: random.Random, data: bytes, seeds: Mapping[str, bytes]) -> tuple[bytes, str]:
    name = rng.choice(sorted(seeds))
    other = seeds[name]
    cut, join = rng.randrange(len(data) + 1), rng.randrange(len(other) + 1)
    return data[:cut] + other[join:], f"splice at {cut} with {name} from {join}"


@dataclass(frozen=True)
class LengthField:
    """A number in a container's structure: where it is, its width in bytes, its byte order."""

    offset: int
    width: int
    order: Literal["big", "little"]
    label: str


def length_fields(data: bytes) -> list[LengthField]:
    """The length, size and dimension fields of whatever containers ``data`` holds."""
    found: list[LengthField] = []
    # JPEG: every marker segment's length, and the frame's height and width.
    i = data.find(b"\xff")
    while 0 <= i < len(data) - 1:
        marker = data[i + 1]
        if marker in JPEG_SEGMENTS:
            found.append(LengthField(i + 2, 2, "big", f"JPEG {marker:02X} length"))
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                found.append(LengthField(i + 5, 2, "big", "JPEG frame height"))
                found.append(LengthField(i + 7, 2, "big", "JPEG frame width"))
        i = data.find(b"\xff", i + 1)
    if data.startswith(PNG_SIGNATURE):
        found += _png_fields(data)
    if data[:4] == b"RIFF":
        found += _riff_fields(data)
    for box in BMFF_BOXES:
        at = data.find(box, 4)
        while at >= 0:
            found.append(LengthField(at - 4, 4, "big", f"{box.decode()} box size"))
            at = data.find(box, at + 1)
    ispe = data.find(b"ispe")
    if ispe >= 0:
        found.append(LengthField(ispe + 8, 4, "big", "ispe width"))
        found.append(LengthField(ispe + 12, 4, "big", "ispe height"))
    found += _iloc_fields(data)
    return [f for f in found if f.offset >= 0 and f.offset + f.width <= len(data)]


def _png_fields(data: bytes) -> list[LengthField]:
    found = []
    i = 8
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        found.append(LengthField(i, 4, "big", f"PNG {kind!r} length"))
        found.append(LengthField(i + 8 + length, 4, "big", f"PNG {kind!r} CRC"))
        if kind == b"IHDR":
            found.append(LengthField(i + 8, 4, "big", "PNG width"))
            found.append(LengthField(i + 12, 4, "big", "PNG height"))
        i += 12 + length
    return found


def _riff_fields(data: bytes) -> list[LengthField]:
    found = [LengthField(4, 4, "little", "RIFF size")]
    i = 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        found.append(LengthField(i + 4, 4, "little", f"RIFF {kind!r} size"))
        if kind == b"VP8X":
            found.append(LengthField(i + 12, 3, "little", "VP8X canvas width"))
            found.append(LengthField(i + 15, 3, "little", "VP8X canvas height"))
        elif kind == b"VP8 ":
            found.append(LengthField(i + 14, 2, "little", "VP8 width"))
            found.append(LengthField(i + 16, 2, "little", "VP8 height"))
        i += 8 + size + (size & 1)
    return found


def _iloc_fields(data: bytes) -> list[LengthField]:
    """The extent offsets and lengths of HEIF's item locations (where each item's bytes are)."""
    at = data.find(b"iloc")
    if at < 0 or at + 12 > len(data):
        return []
    version = data[at + 4]
    offset_size, length_size = data[at + 8] >> 4, data[at + 8] & 0x0F
    base_size, index_size = data[at + 9] >> 4, (data[at + 9] & 0x0F if version else 0)
    number = 2 if version < 2 else 4
    i = at + 10
    items = int.from_bytes(data[i : i + number], "big")
    i += number
    found = []
    for _ in range(min(items, 64)):
        i += number + (2 if version else 0) + 2 + base_size  # id, method, reference, base
        extents = int.from_bytes(data[i : i + 2], "big")
        i += 2
        for _ in range(min(extents, 16)):
            i += index_size
            if offset_size:
                found.append(LengthField(i, offset_size, "big", "iloc extent offset"))
            i += offset_size
            if length_size:
                found.append(LengthField(i, length_size, "big", "iloc extent length"))
            i += length_size
        if i >= len(data):
            break
    return found


def corrupt_length_field(
    rng: random.Random, data: bytes, seeds: Mapping[str, bytes]
) -> tuple[bytes, str]:
    fields = length_fields(data)
    if not fields:
        return flip_bits(rng, data, seeds)
    target = rng.choice(fields)
    top = (1 << (8 * target.width)) - 1
    old = int.from_bytes(data[target.offset : target.offset + target.width], target.order)
    new = rng.choice(
        (
            0,
            1,
            old + 1,
            old - 1,
            old + rng.randint(2, 64),
            old - rng.randint(2, 64),
            old * 2,
            old // 2,
            top,
            top >> 1,
            (top >> 1) + 1,
            rng.randint(0, top),
        )
    )
    new &= top
    raw = new.to_bytes(target.width, target.order)
    out = data[: target.offset] + raw + data[target.offset + target.width :]
    return out, f"{target.label} at {target.offset}: {old} -> {new}"


def with_png_crcs_fixed(data: bytes) -> bytes:
    """Every walkable PNG chunk with its CRC recomputed, so corruption reaches the decoder."""
    out = bytearray(data)
    i = 8
    while i + 12 <= len(out):
        length = int.from_bytes(out[i : i + 4], "big")
        end = i + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(out[i + 4 : end]) & 0xFFFFFFFF)
        i = end + 4
    return bytes(out)


MUTATIONS: tuple[tuple[Mutation, int], ...] = (
    (flip_bits, 3),
    (interesting_bytes, 2),
    (truncate, 2),
    (duplicate_range, 1),
    (remove_range, 1),
    (splice, 1),
    (corrupt_length_field, 4),
)


@dataclass(frozen=True)
class Mutant:
    seed: int
    index: int
    parent: str
    steps: tuple[str, ...]
    data: bytes

    def describe(self) -> str:
        return f"mutant {self.index} of seed {self.seed}: {self.parent}, " + "; ".join(self.steps)


def mutant(seeds: Mapping[str, bytes], seed: int, index: int) -> Mutant:
    """Mutant ``index`` of fuzzing seed ``seed``: the same bytes every time."""
    rng = random.Random(f"showme-picture-fuzz:{seed}:{index}")
    parent = rng.choice(sorted(seeds))
    data = seeds[parent]
    steps = []
    mutations, weights = zip(*MUTATIONS, strict=True)
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        (mutation,) = rng.choices(mutations, weights)
        data, step = mutation(rng, data, seeds)
        steps.append(step)
    if data.startswith(PNG_SIGNATURE) and rng.random() < 0.5:
        data = with_png_crcs_fixed(data)
        steps.append("PNG CRCs fixed")
    return Mutant(seed, index, parent, tuple(steps), data)


# ---- The property ------------------------------------------------------------------------------


def verdict(data: bytes, max_pixels: int = MAX_PIXELS, pipeline: Any = None) -> Verdict:
    """Run the pipeline on ``data``: the outcome, and what broke the property if anything did.

    ``pipeline`` stands in for ``process_picture`` in the tests that prove this check can fail.
    """
    from showme_core.imaging import DECODER_ERRORS, CleanPicture, PictureRejected, process_picture

    try:
        picture = (pipeline or process_picture)(data, max_pixels)
    except PictureRejected as exc:
        outcome = f"{exc.status} {exc.code}"
        cause = exc.__cause__
        foreseen = (
            *DECODER_ERRORS,
            PictureRejected,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        )
        if cause is not None and not isinstance(cause, foreseen):
            outcome += f" after {type(cause).__name__}"
        if not 400 <= exc.status < 500:
            return outcome, f"refused with status {exc.status}, not a 4xx"
        return outcome, None
    except Exception:
        return "exception", traceback.format_exc()
    if not isinstance(picture, CleanPicture):
        return "stored", f"the pipeline returned {picture!r}"
    return "stored", stored_problem(picture)


def stored_problem(picture: Any) -> str | None:
    """What is wrong with a stored picture: its bytes must decode as JPEGs of the stated size,
    with none of the original's metadata."""
    for kept in METADATA_MARKERS:
        if kept in picture.data or kept in picture.thumbnail:
            return f"the stored bytes still carry {kept!r}"
    try:
        full = _decoded_jpeg(picture.data)
        if full.size != (picture.width, picture.height):
            return f"the picture is {full.size}, not the stated {picture.width}x{picture.height}"
        thumb = _decoded_jpeg(picture.thumbnail)
        expected = _thumbnail_size(picture.width, picture.height)
        if abs(thumb.width - expected[0]) > 1 or abs(thumb.height - expected[1]) > 1:
            return f"the thumbnail is {thumb.size}, not about {expected}"
    except Exception:
        return "the stored bytes do not decode:\n" + traceback.format_exc()
    return None


def _decoded_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=["JPEG"])
    image.load()
    return image


def _thumbnail_size(width: int, height: int, bound: int = 320) -> tuple[int, int]:
    scale = min(1.0, bound / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# ---- Running mutants in worker processes -------------------------------------------------------

Target = Callable[[Mutant, int], Verdict]


def check_mutant(item: Mutant, max_pixels: int) -> Verdict:
    """The worker's default target: the property, on one mutant."""
    return verdict(item.data, max_pixels)


def misbehaving_check(item: Mutant, max_pixels: int) -> Verdict:
    """A target that misbehaves on purpose on mutants 1 (a broken property), 2 (a hang) and
    3 (its process dies), for the test that proves the runner reports each of them."""
    if item.index == 1:
        return "stored", "a broken property, on purpose"
    if item.index == 2:
        time.sleep(3600)  # a hang: the runner must give up on it after its time limit
    if item.index == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return check_mutant(item, max_pixels)


def _serve(
    conn: Connection, seeds: dict[str, bytes], seed: int, max_pixels: int, target: str
) -> None:
    """A worker: mutant indexes in, verdicts out, until told to stop."""
    # Pillow warns about odd metadata; the service shows such warnings and goes on, and so do the
    # workers (without filling the test's output). The bomb warning stays an error.
    warnings.filterwarnings("ignore", category=UserWarning)
    module, name = target.split(":")
    check: Target = getattr(importlib.import_module(module), name)
    import showme_core.imaging  # noqa: F401 - the decoders load before the first deadline runs

    conn.send(("ready", "pillow_heif" in sys.modules))
    while (index := conn.recv()) is not None:
        item = mutant(seeds, seed, index)
        conn.send((index, item.parent, *check(item, max_pixels)))


@dataclass
class Failure:
    mutant: Mutant
    problem: str


@dataclass
class FuzzRun:
    seed: int
    count: int
    seconds: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)
    seen: collections.Counter[str] = field(default_factory=collections.Counter)  # by seed picture
    stored: collections.Counter[str] = field(default_factory=collections.Counter)

    def summary(self) -> str:
        lines = [f"{self.count} mutants of seed {self.seed} in {self.seconds:.1f} s:"]
        lines += [f"  {n:6d}  {outcome}" for outcome, n in self.outcomes.most_common()]
        lines += ["stored, by seed picture:"]
        lines += [f"  {self.stored[p]:6d} of {n:6d}  {p}" for p, n in sorted(self.seen.items())]
        return "\n".join(lines)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    index: int | None = None
    deadline: float = 0.0


def fuzz(
    seed: int,
    count: int,
    *,
    start: int = 0,
    workers: int | None = None,
    time_limit: float = TIME_LIMIT_SECONDS,
    max_pixels: int = MAX_PIXELS,
    target: str = "tests.picture_mutants:check_mutant",
) -> FuzzRun:
    """Run mutants ``start`` to ``start + count`` of ``seed`` in worker processes.

    A mutant that breaks the property, runs past ``time_limit`` seconds, or takes its worker down
    (a crash in a decoder library) is a failure; its worker is replaced and the run goes on.
    """
    seeds = seed_pictures()
    context = multiprocessing.get_context("spawn")
    run = FuzzRun(seed, count)
    began = time.monotonic()
    pending = collections.deque(range(start, start + count))
    pool: list[_Worker] = []

    def started() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, seeds, seed, max_pixels, target), daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def ready(worker: _Worker) -> _Worker:
        if not worker.conn.poll(WORKER_START_SECONDS):
            raise RuntimeError("a fuzzing worker did not start")
        tag, heic_encoder_loaded = worker.conn.recv()
        if tag != "ready" or heic_encoder_loaded:
            raise RuntimeError("a fuzzing worker loaded pillow-heif, which the service never does")
        return worker

    def fail(worker: _Worker, problem: str) -> None:
        assert worker.index is not None
        run.outcomes["failed"] += 1
        run.failures.append(Failure(mutant(seeds, seed, worker.index), problem))

    def replaced(worker: _Worker) -> _Worker:
        worker.process.kill()
        worker.process.join()
        worker.conn.close()
        return ready(started())

    try:
        pool = [started() for _ in range(workers or _cores())]
        pool = [ready(worker) for worker in pool]
        while True:
            for worker in pool:
                if worker.index is None and pending:
                    worker.index = pending.popleft()
                    worker.deadline = time.monotonic() + time_limit
                    worker.conn.send(worker.index)
            busy = [worker for worker in pool if worker.index is not None]
            if not busy:
                break
            timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            wait([worker.conn for worker in busy], timeout)
            for slot, worker in enumerate(pool):
                if worker.index is None:
                    continue
                if worker.conn.poll():
                    try:
                        index, parent, outcome, problem = worker.conn.recv()
                    except EOFError:
                        worker.process.join()
                        fail(worker, f"the worker died (exit code {worker.process.exitcode})")
                        pool[slot] = replaced(worker)
                        continue
                    if index != worker.index:
                        raise RuntimeError(f"worker answered {index}, was given {worker.index}")
                    run.stored[parent] += outcome == "stored"
                    run.seen[parent] += 1
                    if problem is None:
                        run.outcomes[outcome] += 1
                    else:
                        fail(worker, problem)
                    worker.index = None
                elif time.monotonic() > worker.deadline:
                    fail(worker, f"no answer within {time_limit} s (a hang)")
                    pool[slot] = replaced(worker)
    finally:
        for worker in pool:
            _stop(worker)
    run.seconds = time.monotonic() - began
    return run


def _stop(worker: _Worker) -> None:
    with contextlib.suppress(OSError):  # a dead worker's pipe is broken
        worker.conn.send(None)
    worker.process.join(5)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join()
    worker.conn.close()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---- Replaying a failure -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Replay one mutant in this process, with the full traceback of whatever goes wrong."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--index", type=int, help="the mutant's index")
    parser.add_argument("--file", help="a mutant's bytes saved by a failed test")
    args = parser.parse_args(argv)
    if args.file:
        with open(args.file, "rb") as saved:
            data = saved.read()
        print(f"{args.file}: {len(data)} bytes")
    elif args.index is not None:
        item = mutant(seed_pictures(), args.seed, args.index)
        data = item.data
        print(item.describe())
    else:
        parser.error("give --index (with --seed) or --file")
    outcome, problem = verdict(data)
    print(outcome)
    if problem:
        print(problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
