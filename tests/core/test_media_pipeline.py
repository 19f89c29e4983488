"""The picture pipeline on real encoders' output: what it accepts, what it strips, what it reads
from EXIF, and every kind of hostile file it must refuse."""

from __future__ import annotations

import io
import random
import zipfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from PIL import Image

from showme_core.imaging import PictureRejected, image_end, process_picture
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
        half = data[: len(data) // 2]
        problem = refusal(half)
        assert problem.code in ("picture_unreadable", "picture_format_not_allowed"), problem.code
        assert problem.status in (415, 422)
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
    ],
    ids=["pdf", "html", "zeros", "gif", "bmp", "tiff"],
)
def test_other_formats_are_refused(data: bytes) -> None:
    problem = refusal(data)
    assert (problem.status, problem.code) == (415, "picture_format_not_allowed")
