"""The picture pipeline: untrusted bytes in, a clean JPEG, its thumbnail and what EXIF said out.

Everything here is synchronous CPU work, called from a thread pool (see :mod:`showme_core.media`).
Each step closes a known hole; ``docs/media.md`` ("The pipeline, and why") explains them.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pi_heif
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from showme_core.errors import ShowMeError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Capture times outside these years are nonsense (and near year 1 they overflow in arithmetic).
MIN_YEAR, MAX_YEAR = 1900, 2100
THUMBNAIL_PX = 320
JPEG_QUALITY = 85

# HEIC/HEIF through the decoder-only libheif build.
pi_heif.register_heif_opener()
# A truncated file is an error, never a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own bomb check is the second line of defence (ours runs first, from the header): make
# its warning an error for the whole process.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class PictureRejected(ShowMeError):
    """The bytes are not a picture ShowMe accepts; ``code`` says why, ``message`` says it to a
    caller in plain words."""

    status = 422


class FormatNotAllowed(PictureRejected):
    status = 415


@dataclass(frozen=True)
class ExifFacts:
    """What the original bytes said, read before they were stripped."""

    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    captured_at: datetime | None = None


@dataclass(frozen=True)
class CleanPicture:
    data: bytes
    thumbnail: bytes
    width: int
    height: int
    source_format: str
    exif: ExifFacts


def process_picture(data: bytes, max_pixels: int) -> CleanPicture:
    """Decode, check, orient, read EXIF, and re-encode ``data`` from pixels as a clean JPEG.

    :param data: the uploaded bytes, already bounded in size.
    :param max_pixels: the largest width times height accepted.
    :raises PictureRejected: with a machine code and a caller-facing message.
    """
    try:
        image = _open(data, max_pixels)
        with image:
            _refuse_polyglot(data, str(image.format))
            exif = _exif_facts(image)
            orientation = _orientation(image)
            image.load()  # every pixel: verify() alone passes a truncated JPEG
            oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
            clean = _pixels_only(oriented)
            width, height = clean.size
            picture = _encode(clean)
            clean.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BICUBIC, 2.0)
            thumbnail = _encode(clean)
    except PictureRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels() from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct.error) as exc:
        raise PictureRejected(
            "The picture could not be read completely; it may be damaged. Try another one.",
            code="picture_unreadable",
        ) from exc
    return CleanPicture(
        data=picture,
        thumbnail=thumbnail,
        width=width,
        height=height,
        source_format=str(image.format),
        exif=exif,
    )


def _too_many_pixels() -> PictureRejected:
    return PictureRejected(
        "The picture has too many pixels to be accepted. Choose a smaller one, or a screenshot.",
        code="picture_too_many_pixels",
    )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise FormatNotAllowed(
            "This file is not a picture ShowMe can take (JPEG, PNG, WebP or HEIC).",
            code="picture_format_not_allowed",
        ) from exc
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        image.close()
        raise _too_many_pixels()
    return image


# What a second file format hidden after the picture starts with: archives, documents, markup,
# scripts and executables. Phones append other things (a motion photo's video, padding), which
# re-encoding drops like everything else that is not pixels.
POLYGLOT_SIGNATURES = (
    b"PK\x03\x04",
    b"%PDF",
    b"<script",
    b"<html",
    b"<svg",
    b"<?php",
    b"<?xml",
    b"\x7fELF",
    b"#!/",
)


ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
ZIP_TAIL = 22 + 65535  # the record and the longest comment it may carry


def _refuse_polyglot(data: bytes, image_format: str) -> None:
    """Refuse a file that is a picture and, after it, another document (a polyglot)."""
    end = image_end(data, image_format)
    if end is None or end >= len(data):
        return
    trailer = data[end:]
    start = trailer.lstrip(b"\x00\xff \t\r\n").lower()
    starts_another = start.startswith(b"mz") or any(
        start.startswith(signature.lower()) for signature in POLYGLOT_SIGNATURES
    )
    # A ZIP is read from its end: its directory record may follow any bytes at all.
    zip_directory = ZIP_END_OF_DIRECTORY in trailer[-ZIP_TAIL:]
    if starts_another or zip_directory:
        raise PictureRejected(
            "This file hides another document after the picture. Send the picture on its own.",
            code="picture_polyglot",
        )


def image_end(data: bytes, image_format: str) -> int | None:
    """Where the picture's own bytes end, or None when the container cannot be walked."""
    try:
        if image_format in ("JPEG", "MPO"):  # MPO: a JPEG with more pictures appended
            return _jpeg_end(data)
        if image_format == "PNG":
            return _png_end(data)
        if image_format == "WEBP":
            size = int.from_bytes(data[4:8], "little") + 8
            return size + (size & 1)
        if image_format == "HEIF":
            return _bmff_end(data)
    except (IndexError, ValueError):
        return None
    return None


def _jpeg_end(data: bytes) -> int | None:
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker == 0xD9:
            return i + 2
        elif marker == 0xDA or 0xD0 <= marker <= 0xD7:
            if marker == 0xDA:
                i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
            else:
                i += 2
            # Entropy-coded data: 0xFF is only ever followed by 0x00 (stuffing) or a marker.
            while True:
                i = data.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    return None
                if data[i + 1] == 0x00:
                    i += 2
                elif data[i + 1] == 0xFF:
                    i += 1
                else:
                    break
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _png_end(data: bytes) -> int | None:
    i, n = 8, len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        i += 12 + length
        if kind == b"IEND":
            return i
    return None


def _bmff_end(data: bytes) -> int | None:
    i, n = 0, len(data)
    while i + 8 <= n:
        size = int.from_bytes(data[i : i + 4], "big")
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:
            return n
        if size < 8 or i + size > n or not data[i + 4 : i + 8].isascii():
            return i
        i += size
    return i


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block is not a broken picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _pixels_only(image: Image.Image) -> Image.Image:
    """The decoded pixels in RGB (or greyscale), with nothing else attached: no EXIF, XMP,
    comment or ICC profile survives, because none of it is pixels; a payload appended after the
    image was never decoded at all. (Copying 12 MP of pixels into a fresh image would cost a
    fifth of the ingest time; clearing ``info`` and saving with explicit empty metadata does the
    same, and tests check the bytes.)"""
    if image.mode not in ("RGB", "L"):
        if "A" in image.getbands() or image.mode in ("P", "PA"):
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
    image.info = {}
    return image


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=JPEG_QUALITY,
        exif=b"",
        comment=b"",
        xmp=b"",
        icc_profile=None,
    )
    return out.getvalue()


# ---- EXIF --------------------------------------------------------------------------------------


def _exif_facts(image: Image.Image) -> ExifFacts:
    """The GPS position and capture time from the bytes' EXIF; anything malformed is ignored."""
    try:
        exif = image.getexif()
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # a broken EXIF block is not a broken picture
        return ExifFacts()
    lat = _coordinate(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    lon = _coordinate(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    accuracy = _number(gps.get(ExifTags.GPS.GPSHPositioningError))
    if accuracy is not None and not 0 <= accuracy < 1_000_000:
        accuracy = None
    captured = _capture_time(
        details.get(ExifTags.Base.DateTimeOriginal), details.get(ExifTags.Base.OffsetTimeOriginal)
    )
    return ExifFacts(
        lat=lat,
        lon=lon,
        accuracy_m=accuracy if lat is not None else None,
        captured_at=captured,
    )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _coordinate(value: Any, ref: Any) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_number(part) for part in value]
    if any(part is None or part < 0 for part in parts):
        return None
    degrees, minutes, seconds = (float(part) for part in parts)  # type: ignore[arg-type]
    decimal = degrees + minutes / 60 + seconds / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    ref = str(ref or "").strip("\x00 ").upper()
    if ref in ("S", "W"):
        decimal = -decimal
    elif ref not in ("N", "E"):
        return None
    return round(decimal, 7)


def _capture_time(value: Any, offset: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if isinstance(offset, str) and MIN_YEAR <= moment.year <= MAX_YEAR:
        try:
            sign = -1 if offset.startswith("-") else 1
            hours, minutes = offset.strip("\x00 +-").split(":")
            delta = timedelta(hours=int(hours), minutes=int(minutes))
            return moment.replace(tzinfo=timezone(sign * delta))
        except (ValueError, OverflowError):
            pass
    # No offset recorded: a local time in an unknown zone. Saying nothing beats being hours off;
    # the caller page sends the time with the phone's own offset instead.
    return None
