"""The picture pipeline: untrusted bytes in, a clean JPEG, its thumbnail and what EXIF said out.

Everything here is synchronous CPU work, called from a thread pool (see :mod:`showme_core.media`).
Each step closes a known hole; ``docs/media.md`` ("The pipeline, and why") explains them. Whatever
the bytes, the only exception that leaves :func:`process_picture` or :func:`inspect_picture` is
:class:`PictureRejected`, a 4xx: a decoder library failing in a way nobody foresaw is a picture
that could not be read, never a server error.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pi_heif
import structlog
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from showme_core.errors import ShowMeError
from showme_core.picture_containers import (
    claimed_format,
    heif_items_described_in_text,
    image_end,
    jpeg_layout,
    png_pixel_data_complete,
    webp_canvas_size,
)
from showme_core.polyglots import hidden_document

log = structlog.get_logger("showme.imaging")

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Capture times outside these years are nonsense (and near year 1 they overflow in arithmetic).
MIN_YEAR, MAX_YEAR = 1900, 2100
THUMBNAIL_PX = 320
JPEG_QUALITY = 85
# The plausibility bound (docs/media.md, "Pixels the file cannot carry"): above this many pixels,
# a picture must bring at least one byte of its own per MAX_PIXELS_PER_BYTE pixels. Every phone
# and tablet screenshot is below it, so a blank screenshot is never judged.
SMALL_PICTURE_PIXELS = 8_000_000
MAX_PIXELS_PER_BYTE = 4096

# HEIC/HEIF through the decoder-only libheif build. Thumbnails, depth maps and auxiliary images
# are never shown, so pi-heif is not asked to read them: less of its C code meets hostile bytes.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
# A truncated file is an error, never a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own bomb check is the second line of defence (ours runs first, from the header): make
# its warning an error for the whole process.
warnings.simplefilter("error", Image.DecompressionBombWarning)

# How the pixels turn for each EXIF orientation (1 is upright). Applied to the pixels alone:
# ImageOps.exif_transpose also rewrites the EXIF block, and fails on oddly typed entries, but the
# metadata is dropped anyway.
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What decoders raise for a damaged file as a matter of course (libheif raises RuntimeError). Any
# other exception is a library failing in a way nobody foresaw: still a refusal, but logged.
DECODER_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    MemoryError,
    RuntimeError,
    struct.error,
    zlib.error,
)


class PictureRejected(ShowMeError):
    """The bytes are not a picture ShowMe accepts; ``code`` says why, ``message`` says it to a
    caller in plain words."""

    status = 422


class FormatNotAllowed(PictureRejected):
    status = 415


@dataclass(frozen=True)
class PictureHeader:
    """What a picture's header declares, learnt without decoding a pixel."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


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


def inspect_picture(data: bytes, max_pixels: int) -> PictureHeader:
    """The format and size a picture's header declares, learnt without decoding a pixel.

    Cheap enough to run before a picture is admitted to decoding, so that the memory decoding
    takes can be budgeted by pixels. ``data`` may be just the first bytes of the file, as long as
    they hold the header (for HEIF, the ``meta`` box).

    :raises PictureRejected: with the code :func:`process_picture` gives the same file for not
        being an accepted picture (415 ``picture_format_not_allowed``, or 422
        ``picture_unreadable`` when it claims to be one but cannot be opened) or for having more
        than ``max_pixels`` pixels (422 ``picture_too_many_pixels``). The checks that need the
        whole file (polyglots, completeness, the full decode) are left to process_picture.
    """
    with _refusals_only():
        if claimed_format(data) == "WEBP":
            size = webp_canvas_size(data)
            if size is None:
                raise _unreadable()
            header = PictureHeader("WEBP", *size)
        else:
            with _open(data) as image:
                header = _header_of(image)
        _check_size(header, max_pixels)
        return header


def process_picture(data: bytes, max_pixels: int) -> CleanPicture:
    """Decode, check, orient, read EXIF, and re-encode ``data`` from pixels as a clean JPEG.

    :param data: the uploaded bytes, already bounded in size.
    :param max_pixels: the largest width times height accepted.
    :raises PictureRejected: with a machine code and a caller-facing message; for any bytes at
        all, nothing else.
    """
    with _refusals_only(), _open(data) as image:
        header = _header_of(image)
        _check_size(header, max_pixels)
        _check_contents(data, header)
        image.load()  # every pixel: verify() alone passes a truncated JPEG
        if image.size != (header.width, header.height):
            raise _unreadable()  # libheif may decode another size than the header declared
        exif = _exif_facts(image)
        orientation = _orientation(image)  # read before _flattened drops the metadata
        clean = _oriented(_flattened(image), orientation)
        width, height = clean.size
        picture = _encode(clean)
        clean.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BICUBIC, 2.0)
        thumbnail = _encode(clean)
    return CleanPicture(
        data=picture,
        thumbnail=thumbnail,
        width=width,
        height=height,
        source_format=header.format,
        exif=exif,
    )


@contextmanager
def _refusals_only() -> Iterator[None]:
    """Turn whatever the decoders raise into a refusal: the caller learns the picture could not
    be read, and the service goes on (docs/media.md, "The pipeline, and why")."""
    try:
        yield
    except PictureRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels() from exc
    except Exception as exc:
        if not isinstance(exc, DECODER_ERRORS):
            log.warning("picture decoder failed unexpectedly", error=repr(exc)[:300])
        raise _unreadable() from exc


def _unreadable() -> PictureRejected:
    return PictureRejected(
        "The picture could not be read completely; it may be damaged. Try another one.",
        code="picture_unreadable",
    )


def _too_many_pixels() -> PictureRejected:
    return PictureRejected(
        "The picture has too many pixels to be accepted. Choose a smaller one, or a screenshot.",
        code="picture_too_many_pixels",
    )


def _open(data: bytes) -> Image.Image:
    if claimed_format(data) == "HEIF" and not heif_items_described_in_text(data):
        raise _unreadable()  # would crash pi-heif, and the whole service with it
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        if claimed_format(data) is not None:
            # It starts as a JPEG, PNG, WebP or HEIC would, but is too damaged to open.
            raise _unreadable() from exc
        raise FormatNotAllowed(
            "This file is not a picture ShowMe can take (JPEG, PNG, WebP or HEIC).",
            code="picture_format_not_allowed",
        ) from exc


def _header_of(image: Image.Image) -> PictureHeader:
    width, height = image.size
    return PictureHeader(str(image.format), width, height)


def _check_size(header: PictureHeader, max_pixels: int) -> None:
    if header.width <= 0 or header.height <= 0:
        raise _unreadable()
    if header.pixels > max_pixels:
        raise _too_many_pixels()


def _check_contents(data: bytes, header: PictureHeader) -> None:
    """Refuse, before decoding, a file that hides another document after the picture or that
    cannot carry every pixel its header declares (a decoder would fill the rest with grey)."""
    if header.format in ("JPEG", "MPO"):
        layout = jpeg_layout(data)
        if layout.scans_too_short():
            raise _unreadable()
        end = layout.end
    else:
        end = image_end(data, header.format)
    if end is not None and end < len(data) and hidden_document(data[end:]) is not None:
        raise PictureRejected(
            "This file hides another document after the picture. Send the picture on its own.",
            code="picture_polyglot",
        )
    own_bytes = len(data) if end is None else min(end, len(data))
    if header.pixels > SMALL_PICTURE_PIXELS and header.pixels > MAX_PIXELS_PER_BYTE * own_bytes:
        raise _unreadable()
    if header.format == "PNG" and not png_pixel_data_complete(data):
        raise _unreadable()


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block is not a broken picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _flattened(image: Image.Image) -> Image.Image:
    """The decoded pixels in RGB (or greyscale), with nothing else attached: no EXIF, XMP,
    comment or ICC profile survives, because none of it is pixels; a payload appended after the
    image was never decoded at all. Transparency is laid on white. (Copying 12 MP of pixels into
    a fresh image would cost a fifth of the ingest time; clearing ``info`` and saving with
    explicit empty metadata does the same, and tests check the bytes.)

    When a converted image replaces ``image``, ``image`` is closed at once, so that two full
    copies of the pixels are held only while the conversion runs.
    """
    mode = image.mode
    if mode in ("RGB", "L"):
        flat = image
    elif mode.startswith("I"):
        # 16-bit greyscale (PNG): scaled to 8 bits, not clipped to white as convert() would.
        scaled = image.point(lambda value: value / 256)
        flat = scaled.convert("L")
        scaled.close()
    elif mode in ("1", "P") and "transparency" not in image.info:
        flat = image.convert("L" if mode == "1" else "RGB")
    elif "A" in image.getbands() or mode in ("P", "PA") or "transparency" in image.info:
        flat = _on_white(image)
    else:
        flat = image.convert("RGB")
    if flat is not image:
        image.close()
    flat.info = {}
    return flat


def _on_white(image: Image.Image) -> Image.Image:
    """``image`` laid on a white background, by its alpha channel or transparent colour."""
    with_alpha = image
    if image.mode not in ("RGBA", "LA"):
        with_alpha = image.convert("RGBA")
    flat = Image.new("L" if with_alpha.mode == "LA" else "RGB", image.size, "white")
    flat.paste(with_alpha, mask=with_alpha)  # the alpha band of an RGBA or LA mask is used
    if with_alpha is not image:
        with_alpha.close()
    return flat


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    """The pixels turned upright; ``image`` is closed once the turned copy exists."""
    method = ORIENTATIONS.get(orientation)
    if method is None:
        return image
    turned = image.transpose(method)
    image.close()
    return turned


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
