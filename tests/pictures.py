"""Pictures made for tests: real encoders, real metadata, in every format the pipeline accepts."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pillow_heif
from PIL import ExifTags, Image, ImageDraw

from showme_core.picture_containers import ADAM7

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


# ---- More encodings, for the pipeline's edge cases and the fuzzer's seeds ----------------------


def progressive_jpeg(image: Image.Image | None = None, *, quality: int = 90) -> bytes:
    out = io.BytesIO()
    (image or scene()).save(out, "JPEG", quality=quality, progressive=True)
    return out.getvalue()


def webp_lossless(image: Image.Image | None = None) -> bytes:
    out = io.BytesIO()
    (image or scene()).save(out, "WEBP", lossless=True)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_written(
    width: int,
    height: int,
    *,
    depth: int = 8,
    colour_type: int = 2,
    interlaced: bool = False,
    rows: int | None = None,
    blank: bool = False,
) -> bytes:
    """A PNG written by hand, for what Pillow cannot save: 16-bit colour, Adam7 interlacing, or
    (with ``rows``) a zlib stream that ends, complete and valid, after that many rows. Greyscale
    (``colour_type`` 0) takes any depth from 1 to 16. ``blank`` makes every sample zero (black and,
    with alpha, transparent): one repeated byte, deflate's best case."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    top = (1 << depth) - 1

    def level(x: int, y: int, channel: int) -> int:
        if blank:
            return 0
        # A gradient with stripes: real structure for the encoder, the same bytes every run.
        value = (x * 255 // max(1, width - 1) + (y // 4 % 2) * 96 + channel * 50) % 256
        if channel == 3:
            value = 255 - (x + y) % 128
        return value * top // 255

    def scanline(columns: range, y: int) -> bytes:
        samples = [level(x, y, c) for x in columns for c in range(channels)]
        if depth >= 8:
            return b"\x00" + b"".join(v.to_bytes(depth // 8, "big") for v in samples)
        bits = "".join(format(v, f"0{depth}b") for v in samples)
        bits += "0" * (-len(bits) % 8)
        return b"\x00" + int(bits or "0", 2).to_bytes(len(bits) // 8, "big")

    lines = []
    blank_lines: dict[int, bytes] = {}
    for x0, y0, dx, dy in ADAM7 if interlaced else ((0, 0, 1, 1),):
        columns = range(x0, width, dx)
        for y in range(y0, height, dy) if columns else ():
            if rows is not None and len(lines) >= rows:
                break
            if blank:  # one line serves every row of a blank picture
                if len(columns) not in blank_lines:
                    blank_lines[len(columns)] = scanline(columns, y)
                lines.append(blank_lines[len(columns)])
            else:
                lines.append(scanline(columns, y))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlaced))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"".join(lines), 9))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small, valid JPEG whose frame header is rewritten to claim ``width`` x ``height``: a few
    kilobytes that a decoder turns into a huge grey picture."""
    data = jpeg(scene(64, 48))
    frame = data.index(b"\xff\xc0")
    return data[: frame + 5] + struct.pack(">HH", height, width) + data[frame + 9 :]


def heic_with_ispe(width: int, height: int) -> bytes:
    """A HEIC whose image spatial extents box declares another size than its pixels have."""
    data = heic()
    box = data.index(b"ispe")
    return data[: box + 8] + struct.pack(">II", width, height) + data[box + 16 :]


def jpeg_with_retyped_gps_entry(orientation: int = 6) -> bytes:
    """A JPEG turned by EXIF ``orientation`` whose first GPS entry (GPSVersionID, four BYTEs)
    claims type SHORT: readers accept it, but rewriting the EXIF block fails."""
    data = jpeg(scene(64, 48), gps_exif(50.8503, 4.3517, orientation=orientation))
    tiff = data.index(b"Exif\x00\x00") + 6
    order = "<" if data[tiff : tiff + 2] == b"II" else ">"

    def entries(ifd: int) -> list[int]:
        count = struct.unpack(order + "H", data[tiff + ifd : tiff + ifd + 2])[0]
        return [tiff + ifd + 2 + 12 * k for k in range(count)]

    first_ifd = struct.unpack(order + "I", data[tiff + 4 : tiff + 8])[0]
    gps = next(
        struct.unpack(order + "I", data[e + 8 : e + 12])[0]
        for e in entries(first_ifd)
        if struct.unpack(order + "H", data[e : e + 2])[0] == ExifTags.IFD.GPSInfo
    )
    entry = entries(gps)[0]
    return data[: entry + 2] + struct.pack(order + "H", 3) + data[entry + 4 :]


def dark_night_photo(width: int = 4032, height: int = 3024) -> Image.Image:
    """What a phone sends from a dark street: near-black with sensor noise and a few dim lights
    (photos are never flat: the sensor's noise survives the phone's denoising)."""
    dark = Image.effect_noise((width, height), 2.0).point(lambda v: max(0, v - 124))
    night = Image.merge("RGB", (dark, dark, dark.point(lambda v: v + 2)))
    draw = ImageDraw.Draw(night)
    for x in range(width // 20, width, max(1, width // 6)):
        draw.ellipse(
            [x, height // 3, x + width // 60, height // 3 + width // 60], fill=(90, 70, 30)
        )
    return night


def blank_screenshot(width: int = 1179, height: int = 2556) -> Image.Image:
    """A screenshot of an empty white screen under a light grey status bar."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(image).rectangle([0, 0, width, height // 20], fill=(240, 240, 240))
    return image


def heic_with_xmp(image: Image.Image | None = None) -> bytes:
    """HEIC carrying XMP, which HEIF stores as an item of type ``mime``."""
    heif = pillow_heif.from_pillow(image or scene(64, 48))
    out = io.BytesIO()
    heif.save(out, quality=80, xmp=XMP)
    return out.getvalue()


def heic_with_item(item_type: bytes, text: bytes = b"") -> bytes:
    """A HEIC whose EXIF item is described as ``item_type`` followed by ``text`` (the item name,
    then for ``mime`` its content type): for item descriptions that are not text."""
    data = heic(scene(64, 48), gps_exif(orientation=1))
    at = data.index(b"Exif\x00", data.index(b"iinf"))  # the EXIF item's type, then its empty name
    start = data.rindex(b"infe", 0, at) - 4
    old_size = int.from_bytes(data[start : start + 4], "big")
    body = data[start + 4 : at] + item_type + b"\x00" + text
    grown = 4 + len(body) - old_size
    data = data[:start] + struct.pack(">I", 4 + len(body)) + body + data[start + old_size :]
    for box in (b"iinf", b"meta"):  # the boxes around it grow as much
        size_at = data.index(box) - 4
        size = int.from_bytes(data[size_at : size_at + 4], "big") + grown
        data = data[:size_at] + struct.pack(">I", size) + data[size_at + 4 :]
    return data
