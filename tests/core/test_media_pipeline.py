"""The picture pipeline on real encoders' output: what it accepts, what it strips, what it reads
from EXIF, and every kind of hostile file it must refuse."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from PIL import Image, ImageDraw, ImageOps

from showme_core.imaging import (
    PictureHeader,
    PictureRejected,
    image_end,
    inspect_picture,
    process_picture,
)
from showme_core.polyglots import hidden_document
from tests import pictures

LIMIT = 50_000_000


def assert_clean_jpeg(data: bytes) -> Image.Image:
    """The stored bytes are a bare JPEG: no EXIF, XMP, comment, ICC profile or trailing data."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert dict(image.getexif()) == {}
    assert set(image.info) <= {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
    for marker in (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"\xff\xfe"):
        assert marker not in data, marker
    for secret in pictures.SECRETS:
        assert secret not in data, secret
    assert image_end(data, "JPEG") == len(data)  # nothing after the end of the image
    image.load()
    return image


def all_metadata_exif() -> Image.Exif:
    return pictures.gps_exif(
        50.8503, 4.3517, accuracy_m=5.0, taken="2026:11:24 07:59:41", offset="+01:00"
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (
            "jpeg",
            pictures.jpeg(
                exif=all_metadata_exif(),
                comment=pictures.COMMENT,
                icc=pictures.ICC,
                xmp=pictures.XMP,
            ),
        ),
        ("png", pictures.png(icc=pictures.ICC, text="Jane Caller")),
        ("png-rgba", pictures.png(pictures.scene().convert("RGBA"))),
        ("webp", pictures.webp(exif=all_metadata_exif())),
        ("heic", pictures.heic(exif=all_metadata_exif())),
    ],
)
def test_each_accepted_format_comes_out_as_a_bare_jpeg(name: str, data: bytes) -> None:
    result = process_picture(data, LIMIT)
    image = assert_clean_jpeg(result.data)
    assert (result.width, result.height) == (640, 480) == image.size
    thumb = assert_clean_jpeg(result.thumbnail)
    assert max(thumb.size) == 320
    assert result.source_format == {"heic": "HEIF", "png-rgba": "PNG"}.get(name, name.upper())
    # The pixels survived: the re-encoded picture still looks like the scene.
    original = pictures.scene().convert("RGB")
    diff = sum(
        abs(a - b)
        for a, b in zip(
            image.convert("RGB").resize((32, 24)).tobytes(),
            original.resize((32, 24)).tobytes(),
            strict=True,
        )
    ) / (32 * 24 * 3)
    assert diff < 12, diff


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (50.8503, 4.3517),  # Brussels: north, east
        (40.7128, -74.0060),  # New York: north, west
        (-33.8688, 151.2093),  # Sydney: south, east
        (-34.6037, -58.3816),  # Buenos Aires: south, west
    ],
)
@pytest.mark.parametrize("encode", [pictures.jpeg, pictures.webp, pictures.heic])
def test_exif_location_has_the_right_signs_in_every_hemisphere(
    lat: float, lon: float, encode: object
) -> None:
    assert callable(encode)
    data = encode(None, pictures.gps_exif(lat, lon, accuracy_m=12.5))
    facts = process_picture(data, LIMIT).exif
    assert facts.lat == pytest.approx(lat, abs=1e-6)
    assert facts.lon == pytest.approx(lon, abs=1e-6)
    assert facts.accuracy_m == pytest.approx(12.5)


def test_capture_times_out_of_any_plausible_range_are_ignored() -> None:
    for taken in ("0001:01:01 00:00:00", "9999:12:31 23:59:59", "2026:13:45 99:00:00"):
        data = pictures.jpeg(exif=pictures.gps_exif(taken=taken, offset="+01:00"))
        assert process_picture(data, LIMIT).exif.captured_at is None


def test_capture_time_keeps_its_offset_and_is_dropped_without_one() -> None:
    data = pictures.jpeg(exif=pictures.gps_exif(taken="2026:11:24 07:59:41", offset="-05:30"))
    taken = process_picture(data, LIMIT).exif.captured_at
    assert taken == datetime(2026, 11, 24, 7, 59, 41, tzinfo=timezone(-timedelta(hours=5.5)))
    assert taken is not None and taken.astimezone(UTC).hour == 13
    # A local time in an unknown zone would be hours off: the server says nothing instead.
    bare = pictures.jpeg(exif=pictures.gps_exif(taken="2026:11:24 07:59:41"))
    assert process_picture(bare, LIMIT).exif.captured_at is None


def test_nonsense_gps_is_ignored_not_trusted() -> None:
    exif = pictures.gps_exif(50.0, 4.0)
    gps = exif[0x8825]
    gps[2] = (95.0, 0.0, 0.0)  # latitude 95°N does not exist
    facts = process_picture(pictures.jpeg(exif=exif), LIMIT).exif
    assert (facts.lat, facts.lon, facts.accuracy_m) == (None, None, None)
    gps[2] = (50.0, 0.0, 0.0)
    gps[1] = "Q"  # neither N nor S
    assert process_picture(pictures.jpeg(exif=exif), LIMIT).exif.lat is None


def test_orientation_is_applied_to_the_pixels() -> None:
    data = pictures.jpeg(pictures.scene(400, 200), pictures.gps_exif(orientation=6))
    result = process_picture(data, LIMIT)
    assert (result.width, result.height) == (200, 400)
    assert Image.open(io.BytesIO(result.data)).size == (200, 400)


def test_a_phone_trailer_is_dropped_but_a_hidden_document_is_refused() -> None:
    data = pictures.jpeg()
    for seed in range(40):
        # A "motion photo": a video appended after the picture, whose bytes look random.
        video = b"\x00\x00\x00\x18ftypmp42" + random.Random(seed).randbytes(300_000)
        assert_clean_jpeg(process_picture(data + video, LIMIT).data)
    # A second picture appended (MPO, as some cameras write) is not a document either.
    assert_clean_jpeg(process_picture(data + pictures.jpeg(pictures.scene(64, 48)), LIMIT).data)
    # A ZIP is read from its end, so junk before it does not hide it.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.html", "<script>alert(1)</script>")
    hidden = data + random.Random(1).randbytes(5000) + archive.getvalue()
    assert refusal(hidden).code == "picture_polyglot"
    for encode in (pictures.jpeg, pictures.png, pictures.webp, pictures.heic):
        polyglot = encode() + pictures.TRAILER
        with pytest.raises(PictureRejected) as refused:
            process_picture(polyglot, LIMIT)
        assert refused.value.code == "picture_polyglot"
        assert refused.value.status == 422


def refusal(data: bytes, limit: int = LIMIT) -> PictureRejected:
    with pytest.raises(PictureRejected) as refused:
        process_picture(data, limit)
    return refused.value


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = pictures.png_bomb()
    assert len(bomb) < 200_000
    problem = refusal(bomb)
    assert (problem.status, problem.code) == (422, "picture_too_many_pixels")
    # The limit is ours, not only Pillow's: a modest picture over a low limit is refused too.
    assert refusal(pictures.jpeg(), limit=640 * 480 - 1).code == "picture_too_many_pixels"


def test_truncated_files_are_refused_after_a_full_decode() -> None:
    for data in (pictures.jpeg(), pictures.png(), pictures.webp(), pictures.heic()):
        for cut in (len(data) // 2, len(data) - 100, 64):
            problem = refusal(data[:cut])
            assert (problem.status, problem.code) == (422, "picture_unreadable"), cut
    # The JPEG case is the subtle one: its header is intact, and verify() alone would pass it.
    assert refusal(pictures.jpeg()[:-2000]).code == "picture_unreadable"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj<<>>endobj\n",
        b"<html><body>not a picture</body></html>",
        b"\x00" * 1000,
        pictures.gif(),
        b"BM" + b"\x00" * 100,  # a BMP header
        b"II*\x00" + b"\x00" * 100,  # TIFF, which Pillow could open if asked
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 100,  # AVIF
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + b"\x00" * 100,  # a video
        b"\xff\xd8",  # too short to say
    ],
    ids=["pdf", "html", "zeros", "gif", "bmp", "tiff", "avif", "mp4", "two-bytes"],
)
def test_other_formats_are_refused(data: bytes) -> None:
    problem = refusal(data)
    assert (problem.status, problem.code) == (415, "picture_format_not_allowed")


# ---- Any input: a refusal, never a server error (issue 9, found by fuzzing) -------------------


@pytest.mark.parametrize(("width", "height"), [(320, 240), (639, 480), (1, 1), (0, 0), (1280, 960)])
def test_a_heic_whose_ispe_box_disagrees_with_its_pixels_is_unreadable(
    width: int, height: int
) -> None:
    # Fewer declared pixels than the image has made libheif raise RuntimeError (a 500).
    problem = refusal(pictures.heic_with_ispe(width, height))
    assert (problem.status, problem.code) == (422, "picture_unreadable")


def test_an_oddly_typed_gps_entry_does_not_stop_the_picture_from_being_turned() -> None:
    data = pictures.jpeg_with_retyped_gps_entry(orientation=6)
    # What made ImageOps.exif_transpose raise TypeError (a 500): it rewrites the EXIF block.
    with pytest.raises(TypeError):
        ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    result = process_picture(data, LIMIT)
    assert (result.width, result.height) == (48, 64)
    assert_clean_jpeg(result.data)


def quadrants(width: int = 64, height: int = 48) -> Image.Image:
    """Four colours in four corners: every turn and flip gives a different picture."""
    image = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width // 2 - 1, height // 2 - 1], fill=(220, 30, 30))
    draw.rectangle([width // 2, 0, width - 1, height // 2 - 1], fill=(30, 200, 30))
    draw.rectangle([0, height // 2, width // 2 - 1, height - 1], fill=(30, 30, 220))
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_the_pixels_as_pillow_would(orientation: int) -> None:
    data = pictures.jpeg(quadrants(), pictures.gps_exif(orientation=orientation), quality=95)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    result = Image.open(io.BytesIO(process_picture(data, LIMIT).data)).convert("RGB")
    assert result.size == expected.size
    diff = sum(abs(a - b) for a, b in zip(result.tobytes(), expected.tobytes(), strict=True)) / len(
        result.tobytes()
    )
    assert diff < 6, diff


@pytest.mark.parametrize(
    "data",
    [
        pictures.heic()[:200],
        pictures.heic()[:40],
        pictures.heic_with_ispe(0, 0),
        pictures.png()[:8] + random.Random(2).randbytes(300),
        b"\xff\xd8\xff" + random.Random(3).randbytes(300),
        b"RIFF\x00\x01\x00\x00WEBP" + random.Random(4).randbytes(300),
        # A brand among the compatible ones, after a major brand pi-heif does not open.
        b"\x00\x00\x00\x18ftypiso8\x00\x00\x00\x00iso8heic" + random.Random(5).randbytes(300),
    ],
    ids=["heic-200-bytes", "heic-40-bytes", "heic-no-size", "png", "jpeg", "webp", "heic-brand"],
)
def test_a_file_that_starts_as_an_accepted_format_but_cannot_be_opened_is_unreadable(
    data: bytes,
) -> None:
    # Not 415: the caller chose a picture, and it is damaged; "not a picture" would mislead.
    problem = refusal(data)
    assert (problem.status, problem.code) == (422, "picture_unreadable")


# Run in a child process: pi-heif 1.4 crashes on these with a segmentation fault, which would take
# the test run down with it (as it would take down the service) if the check before it failed.
CHILD = """
import sys
from showme_core.imaging import PictureRejected, process_picture
try:
    process_picture(open(sys.argv[1], "rb").read(), 50_000_000)
except PictureRejected as exc:
    print(exc.status, exc.code)
"""


@pytest.mark.parametrize(
    "data",
    [
        pictures.heic_with_item(b"Exi\xff"),
        pictures.heic_with_item(b"mime", b"image/\xffjpeg\x00"),
    ],
    ids=["item-type", "content-type"],
)
def test_a_heic_item_described_in_bytes_that_are_not_text_is_refused_without_a_crash(
    data: bytes, tmp_path: Path
) -> None:
    picture = tmp_path / "picture.heic"
    picture.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(picture)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.split() == ["422", "picture_unreadable"]


def test_a_heic_with_xmp_in_a_mime_item_is_still_taken() -> None:
    result = process_picture(pictures.heic_with_xmp(), LIMIT)
    assert (result.width, result.height) == (64, 48)
    assert pictures.XMP not in result.data


def test_whatever_a_decoder_library_raises_becomes_a_logged_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object) -> Image.Image:
        raise KeyError("a decoder failing in a way nobody foresaw")

    monkeypatch.setattr(Image.Image, "transpose", broken)
    with structlog.testing.capture_logs() as logs:
        problem = refusal(pictures.jpeg(exif=pictures.gps_exif(orientation=3)))
    assert (problem.status, problem.code) == (422, "picture_unreadable")
    assert [e["event"] for e in logs] == ["picture decoder failed unexpectedly"]
    assert "KeyError" in logs[0]["error"]


# ---- Pixels the file does not carry ------------------------------------------------------------


def progressive_claiming(width: int, height: int) -> bytes:
    data = pictures.progressive_jpeg(pictures.scene(64, 48))
    frame = data.index(b"\xff\xc2")
    return data[: frame + 5] + struct.pack(">HH", height, width) + data[frame + 9 :]


def png_with_bad_data_crc() -> bytes:
    data = bytearray(pictures.png())
    data[data.index(b"IDAT") + 40] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        pictures.jpeg_claiming(7000, 7000),  # 2 KB for 49 MP: a decoder fills it with grey
        pictures.jpeg_claiming(1000, 800),  # small, but still short of its blocks' bits
        progressive_claiming(7000, 7000),
        pictures.png_written(640, 480, rows=100),  # a valid stream that ends after 100 rows
        png_with_bad_data_crc(),
        pictures.png_written(7000, 7000, depth=1, colour_type=0, blank=True),  # 8,000 px/byte
        pictures.png_written(3000, 3000, depth=1, colour_type=0, blank=True),  # 7,700 px/byte
    ],
    ids=[
        "jpeg-49mp-in-2kb",
        "jpeg-short-scan",
        "progressive-49mp",
        "png-stream-ends-early",
        "png-data-crc",
        "png-49mp-in-6kb",
        "png-9mp-in-1kb",
    ],
)
def test_a_picture_whose_pixels_are_not_all_in_the_file_is_refused(data: bytes) -> None:
    problem = refusal(data)
    assert (problem.status, problem.code) == (422, "picture_unreadable")


def flat_black_jpeg(**options: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4032, 3024)).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def webp_of(image: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda: pictures.jpeg(pictures.dark_night_photo()), (4032, 3024)),
        # libwebp smooths the noise away: the densest real-looking picture measured, 500 px/byte.
        (lambda: webp_of(pictures.dark_night_photo(), quality=80), (4032, 3024)),
        # Optimised Huffman tables: exactly the two bits per block the scan check asks for.
        (lambda: flat_black_jpeg(optimize=True), (4032, 3024)),
        (lambda: flat_black_jpeg(progressive=True), (4032, 3024)),
        (lambda: pictures.progressive_jpeg(), (640, 480)),
        (lambda: pictures.png(pictures.blank_screenshot()), (1179, 2556)),
        # 15,000 px/byte, but screenshot-sized pictures are never judged by their density.
        (lambda: pictures.webp_lossless(pictures.blank_screenshot()), (1179, 2556)),
        (lambda: pictures.png(pictures.blank_screenshot(5120, 2880)), (5120, 2880)),
        # An 8-bit PNG at deflate's limit (1,030 px/byte) carries every pixel honestly.
        (lambda: pictures.png_written(7000, 7000, colour_type=0, blank=True), (7000, 7000)),
    ],
    ids=[
        "night-jpeg",
        "night-webp",
        "flat-black-jpeg-optimised",
        "flat-black-progressive",
        "progressive",
        "blank-screenshot-png",
        "blank-screenshot-webp-lossless",
        "blank-5k-screenshot-png",
        "blank-49mp-png",
    ],
)
def test_honest_pictures_at_the_edges_of_those_checks_pass(
    make: Callable[[], bytes], size: tuple[int, int]
) -> None:
    result = process_picture(make(), LIMIT)
    assert (result.width, result.height) == size
    assert Image.open(io.BytesIO(result.data)).size == size


def test_a_16_bit_greyscale_png_keeps_its_greys() -> None:
    result = process_picture(pictures.png_written(256, 8, depth=16, colour_type=0), LIMIT)
    image = Image.open(io.BytesIO(result.data))
    # A gradient from black to white, not clipped to white as a plain conversion would.
    assert image.mode == "L"
    assert image.getpixel((10, 0)) < 30 and 100 < image.getpixel((128, 0)) < 160  # type: ignore[operator]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_laid_on_white(mode: str) -> None:
    image = quadrants().convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 32, 24))  # the top-left quadrant becomes transparent
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        image.info["transparency"] = image.getpixel((0, 0))
    else:
        image = image.convert(mode)
    result = Image.open(io.BytesIO(process_picture(pictures.png(image), LIMIT).data))
    assert result.mode == ("L" if mode == "LA" else "RGB")
    corner = result.convert("RGB").getpixel((8, 8))
    assert min(corner) > 240, corner  # type: ignore[arg-type]


# ---- Polyglots -----------------------------------------------------------------------------------

OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
DOCUMENTS = {
    "html-utf8-bom": "\ufeff<!DOCTYPE html><html><body>".encode(),
    "html-utf16le-bom": "\ufeff<html><script>alert(1)</script>".encode("utf-16-le"),
    "html-utf16be-bom": "\ufeff<html><script>alert(1)</script>".encode("utf-16-be"),
    "html-utf16le": "<html><script>alert(1)</script>".encode("utf-16-le"),
    "doctype": b"<!doctype html><title>x</title>",
    "comment": b"\r\n<!-- hidden --><script>alert(1)</script>",
    "body": b"<BODY onload=alert(1)>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "xml": b'<?xml version="1.0"?><x/>',
    "php": b"<?php system($_GET['c']); ?>",
    "server-page": b'<%@ page language="java" %>',
    "closing-tag": b"</p><script>alert(1)</script>",
    "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x00" * 20,
    "rar4": b"Rar!\x1a\x07\x00" + b"\x00" * 20,
    "rar5": b"Rar!\x1a\x07\x01\x00" + b"\x00" * 20,
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 20,
    "bzip2": b"BZh91AY&SY" + b"\x00" * 20,
    "xz": b"\xfd7zXZ\x00\x00\x04" + b"\x00" * 20,
    "zstd": b"\x28\xb5\x2f\xfd" + b"\x00" * 20,
    "cab": b"MSCF\x00\x00\x00\x00" + b"\x00" * 20,
    "zip": b"PK\x03\x04\x14\x00" + b"\x00" * 20,
    "pdf": b"%PDF-1.7\n1 0 obj<<>>endobj",
    "postscript": b"%!PS-Adobe-3.0\n",
    "rtf": b"{\\rtf1\\ansi hidden}",
    "ole": OLE + b"\x00" * 20,
    "elf": b"\x7fELF\x02\x01\x01" + b"\x00" * 20,
    "windows-exe": b"MZ\x90\x00\x03" + b"\x00" * 20,
    "mach-o": b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + b"\x00" * 20,
    "mach-o-universal": b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + b"\x00" * 20,
    "shebang": b"#!/bin/sh\nrm -rf /\n",
    "shebang-env": b"#! /usr/bin/env python3\n",
    "padded-html": b"\x00" * 64 + b"\xff" * 16 + b"\n<html>",
}


@pytest.mark.parametrize("trailer", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_every_kind_of_document_after_a_picture_is_refused(trailer: bytes) -> None:
    problem = refusal(pictures.jpeg(pictures.scene(64, 48)) + trailer)
    assert (problem.status, problem.code) == (422, "picture_polyglot")


def test_phone_trailers_are_not_taken_for_documents() -> None:
    data = pictures.jpeg(pictures.scene(64, 48))
    samsung = (
        b"\x00\x00\x01\x0a\x0e\x00\x00\x00Image_UTC_Data1732431581000"
        + b"SEFH\x6a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x0a\x2a\x00\x00\x00"
        + b"\x1d\x00\x00\x00\x24\x00\x00\x00SEFT"
    )
    for trailer in (b"\x00" * 4096, b"\xff" * 512, b"\r\n", samsung):
        assert_clean_jpeg(process_picture(data + trailer, LIMIT).data)
    # Signatures are matched at the start only, so random bytes (a video) rarely match one.
    rng = random.Random(9)
    flagged = sum(hidden_document(rng.randbytes(64)) is not None for _ in range(20_000))
    assert flagged / 20_000 < 0.002, flagged


# ---- Learning the size before decoding ----------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "image_format"),
    [
        (pictures.jpeg, "JPEG"),
        (pictures.progressive_jpeg, "JPEG"),
        (pictures.png, "PNG"),
        (pictures.webp, "WEBP"),
        (pictures.webp_lossless, "WEBP"),
        (lambda image: pictures.webp(image, pictures.gps_exif(orientation=6)), "WEBP"),
        (pictures.heic, "HEIF"),
    ],
    ids=["jpeg", "progressive", "png", "webp", "webp-lossless", "webp-extended", "heic"],
)
def test_inspect_reads_the_size_from_the_first_bytes_alone(
    encode: Callable[[Image.Image], bytes], image_format: str
) -> None:
    data = encode(pictures.scene(700, 500))
    expected = PictureHeader(image_format, 700, 500)
    assert inspect_picture(data, LIMIT) == expected
    # The first 2 KB hold no pixels at all: whatever inspect learns, it did not decode.
    assert inspect_picture(data[:2048], LIMIT) == expected
    assert expected.pixels == 350_000


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj<<>>endobj\n",
        pictures.gif(),
        pictures.png_bomb(),
        pictures.heic()[:200],
        pictures.heic_with_ispe(100_000, 100_000),
        b"RIFF\x00\x01\x00\x00WEBPVP8X" + b"\xff" * 30,  # a 16 M x 16 M canvas
        b"RIFF\x00\x01\x00\x00WEBPJUNK" + b"\x00" * 30,
    ],
    ids=["pdf", "gif", "png-bomb", "heic-damaged", "heic-huge", "webp-huge", "webp-damaged"],
)
def test_inspect_refuses_with_the_code_process_picture_gives(data: bytes) -> None:
    with pytest.raises(PictureRejected) as inspected:
        inspect_picture(data, LIMIT)
    processed = refusal(data)
    assert (inspected.value.status, inspected.value.code) == (processed.status, processed.code)
    assert refusal(pictures.jpeg(), limit=1000).code == "picture_too_many_pixels"
    with pytest.raises(PictureRejected, match="too many pixels"):
        inspect_picture(pictures.jpeg(), 1000)
