"""Pictures made for tests: real encoders, real metadata, in every format the pipeline accepts."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pillow_heif
from PIL import ExifTags, Image, ImageDraw

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Jane'
    b' Caller"/></rdf:RDF></x:xmpmeta>'
)
# A minimal but valid ICC profile is not needed: Pillow carries any bytes it is given.
ICC = b"\x00\x00\x02\x0cSECRET-ICC-PROFILE" + b"\x00" * 100
COMMENT = b"caller-phone-serial-123456"
TRAILER = b"<script>alert('polyglot')</script>PK\x03\x04trailing-payload"
SECRETS = (b"Jane Caller", b"SECRET-ICC-PROFILE", COMMENT, b"polyglot", b"trailing-payload")


def scene(width: int = 640, height: int = 480) -> Image.Image:
    """A picture with structure (so encoders work for real), not a flat colour."""
    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    step = max(width, height) // 12 or 1
    for i in range(0, max(width, height), step):
        draw.line([(i, 0), (0, i)], fill=(250, 200, 40), width=max(1, step // 6))
        draw.rectangle([i, i // 2, i + step // 2, i // 2 + step // 3], fill=(200, 30, 30))
    return image


def dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return (float(degrees), float(minutes), seconds)


def gps_exif(
    lat: float | None = None,
    lon: float | None = None,
    *,
    accuracy_m: float | None = None,
    taken: str | None = None,
    offset: str | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    exif[ExifTags.Base.Model] = "Serial 123456"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if lat is not None and lon is not None:
        gps: dict[int, Any] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
            ExifTags.GPS.GPSLatitude: dms(lat),
            ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
            ExifTags.GPS.GPSLongitude: dms(lon),
        }
        if accuracy_m is not None:
            gps[ExifTags.GPS.GPSHPositioningError] = accuracy_m
        exif[ExifTags.IFD.GPSInfo] = gps
    if taken is not None:
        details: dict[int, Any] = {ExifTags.Base.DateTimeOriginal: taken}
        if offset is not None:
            details[ExifTags.Base.OffsetTimeOriginal] = offset
        exif[ExifTags.IFD.Exif] = details
    return exif


def jpeg(
    image: Image.Image | None = None,
    exif: Image.Exif | None = None,
    *,
    comment: bytes | None = None,
    icc: bytes | None = None,
    xmp: bytes | None = None,
    quality: int = 90,
) -> bytes:
    image = image or scene()
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": quality}
    if exif is not None:
        options["exif"] = exif
    if comment is not None:
        options["comment"] = comment
    if icc is not None:
        options["icc_profile"] = icc
    if xmp is not None:
        options["xmp"] = xmp
    image.save(out, "JPEG", **options)
    return out.getvalue()


def png(image: Image.Image | None = None, *, icc: bytes | None = None, text: str = "") -> bytes:
    from PIL import PngImagePlugin

    image = image or scene()
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", text)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, icc_profile=icc)
    return out.getvalue()


def webp(image: Image.Image | None = None, exif: Image.Exif | None = None) -> bytes:
    image = image or scene()
    out = io.BytesIO()
    if exif is not None:
        image.save(out, "WEBP", quality=85, exif=exif)
    else:
        image.save(out, "WEBP", quality=85)
    return out.getvalue()


def heic(image: Image.Image | None = None, exif: Image.Exif | None = None) -> bytes:
    """HEIC as an iPhone sends it, encoded by pillow-heif (a test-only dependency)."""
    image = image or scene()
    heif = pillow_heif.from_pillow(image)
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": 80}
    if exif is not None:
        options["exif"] = exif.tobytes()
    heif.save(out, **options)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    scene(64, 64).convert("P").save(out, "GIF")
    return out.getvalue()


def png_bomb(width: int = 10000, height: int = 10000) -> bytes:
    """A tiny PNG claiming a huge canvas: all-zero rows compress to almost nothing."""
    raw_row = b"\x00" + b"\x00" * width  # filter byte + one byte per pixel (greyscale)
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(raw_row) for _ in range(height)]
    data = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
