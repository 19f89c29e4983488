"""The containers of the four accepted picture formats, walked as bytes without decoding a pixel.

The pipeline (:mod:`showme_core.imaging`) asks three questions of them: which format the first
bytes claim, where the picture's own bytes end (what follows is a trailer), and whether the file
can carry every pixel its header declares. Each answer is cheap next to a decode, and none of it
trusts a length field further than the bytes that are really there.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The brands pi-heif opens as HEIF. "mif1" and "msf1" only count as the major brand: AVIF files
# list them as compatible too, and AVIF is not a format ShowMe takes.
HEIF_MAJOR_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
HEIF_COMPATIBLE_BRANDS = HEIF_MAJOR_BRANDS - {b"mif1", b"msf1"}
FTYP_MAX = 4096  # no honest ftyp box lists more than a handful of brands

# JPEG start-of-frame markers by coding process, for the scan-length check.
JPEG_SEQUENTIAL_HUFFMAN = frozenset({0xC0, 0xC1})
JPEG_PROGRESSIVE_HUFFMAN = frozenset({0xC2})
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4, C8, CC are not frames

# Inflated PNG data is counted in slices this large, so the check itself holds no pixels.
INFLATE_SLICE = 1 << 20
# Honest encoders end the zlib stream right after the last row; a stream that goes on this far
# past it is not a picture's pixel data (and may be a zlib bomb).
PNG_EXCESS_ALLOWED = 1 << 16
# Adam7's seven passes: first column, first row, column step, row step.
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def claimed_format(data: bytes) -> str | None:
    """The accepted format whose signature ``data`` starts with, or None.

    Pillow identifies the same signatures; this answer lets a file that claims to be a JPEG, PNG,
    WebP or HEIC but cannot be opened be told apart from a file that is something else.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        if data[8:12] in HEIF_MAJOR_BRANDS:
            return "HEIF"
        box_end = min(int.from_bytes(data[:4], "big"), len(data), FTYP_MAX)
        brands = (data[i : i + 4] for i in range(16, box_end - 3, 4))
        if any(brand in HEIF_COMPATIBLE_BRANDS for brand in brands):
            return "HEIF"
    return None


def image_end(data: bytes, image_format: str) -> int | None:
    """Where the picture's own bytes end, or None when the container cannot be walked."""
    try:
        if image_format in ("JPEG", "MPO"):  # MPO: a JPEG with more pictures appended
            return jpeg_layout(data).end
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


# ---- JPEG --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JpegLayout:
    """What walking a JPEG's markers found, up to its first end-of-image marker."""

    end: int | None  # just after EOI, or None if the walk did not reach one
    frame: int | None  # the first start-of-frame marker (0xC0 baseline, 0xC2 progressive, ...)
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # per component: horizontal, vertical factor
    coded_bytes: int  # entropy-coded bytes of every scan, without stuffing and restart markers

    def blocks(self) -> int | None:
        """How many 8x8 blocks the frame's components hold (without MCU padding), or None if
        the frame header is missing or nonsensical."""
        if not self.sampling or self.width <= 0 or self.height <= 0:
            return None
        h_max = max(h for h, _ in self.sampling)
        v_max = max(v for _, v in self.sampling)
        if not all(1 <= h <= 4 and 1 <= v <= 4 for h, v in self.sampling):
            return None
        total = 0
        for h, v in self.sampling:
            columns = -(-self.width * h // h_max)
            rows = -(-self.height * v // v_max)
            total += -(-columns // 8) * -(-rows // 8)
        return total

    def scans_too_short(self) -> bool:
        """True when the scans cannot hold every block the frame declares.

        A Huffman code is at least one bit. In a sequential scan every block of every component
        needs two codes, its DC difference and either an end-of-block or an AC coefficient; in a
        progressive file every block still needs its DC code in the first DC scan. Decoders fill
        what is missing with grey, so without this check a short file passes as a big grey
        picture. Arithmetic and lossless coding have no such floor; the pipeline's bound on
        pixels per byte covers them.
        """
        if self.frame in JPEG_SEQUENTIAL_HUFFMAN:
            bits_per_block = 2
        elif self.frame in JPEG_PROGRESSIVE_HUFFMAN:
            bits_per_block = 1
        else:
            return False
        blocks = self.blocks()
        return blocks is not None and self.coded_bytes * 8 < blocks * bits_per_block


def jpeg_layout(data: bytes) -> JpegLayout:
    """Walk a JPEG's markers and scans (never trusting a length past the end of ``data``)."""
    i, n = 2, len(data)
    frame: int | None = None
    width = height = coded = 0
    sampling: tuple[tuple[int, int], ...] = ()
    end: int | None = None
    while i + 2 <= n:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:
            end = i + 2
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in JPEG_FRAMES and frame is None:
            frame = marker
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            count = data[i + 9] if i + 9 < n else 0
            factors = data[i + 10 : min(i + 10 + 3 * count, i + 2 + length)]
            sampling = tuple((b >> 4, b & 0x0F) for b in factors[1::3])
        i += 2 + length
        if marker == 0xDA:
            i, scan_bytes = _entropy_coded(data, i)
            coded += scan_bytes
    return JpegLayout(end, frame, width, height, sampling, coded)


def _entropy_coded(data: bytes, start: int) -> tuple[int, int]:
    """Skip a scan's entropy-coded data; returns the next marker's offset and the coded bytes.

    In entropy-coded data 0xFF is only ever followed by 0x00 (a stuffed 0xFF), a restart marker,
    or fill bytes before the marker that ends the scan.
    """
    n = len(data)
    i = start
    overhead = 0
    while True:
        i = data.find(b"\xff", i)
        if i < 0 or i + 1 >= n:
            return n, max(0, n - start - overhead)
        following = data[i + 1]
        if following == 0x00:
            overhead += 1
            i += 2
        elif 0xD0 <= following <= 0xD7:
            overhead += 2
            i += 2
        elif following == 0xFF:
            overhead += 1
            i += 1
        else:
            return i, max(0, i - start - overhead)


# ---- PNG ---------------------------------------------------------------------------------------


def _png_end(data: bytes) -> int | None:
    i, n = 8, len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        i += 12 + length
        if kind == b"IEND":
            return i
    return None


def png_pixel_data_complete(data: bytes) -> bool:
    """True when a PNG's image data is intact and holds every row its header declares.

    Pillow neither checks the CRC of image data nor notices a zlib stream that ends early: it
    leaves the missing rows black. So the chunks are walked, each IDAT's CRC checked, and the
    stream inflated (in slices that are counted and dropped) to its end, where zlib checks its
    Adler-32 as well.
    """
    header: bytes | None = None
    inflater = zlib.decompressobj()
    expected = produced = 0
    i, n = 8, len(data)
    seen_data = False
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        body_end = i + 8 + length
        if body_end + 4 > n:
            return False
        if kind == b"IHDR" and header is None:
            header = data[i + 8 : body_end]
            declared = _png_raw_size(header)
            if declared is None:
                return False
            expected = declared
        elif kind == b"IDAT":
            crc = int.from_bytes(data[body_end : body_end + 4], "big")
            if header is None or zlib.crc32(data[i + 4 : body_end]) != crc:
                return False
            seen_data = True
            # Data after the end of the stream is ignored by every decoder, as it is here.
            pending = b"" if inflater.eof else data[i + 8 : body_end]
            try:
                while pending and not inflater.eof:
                    produced += len(inflater.decompress(pending, INFLATE_SLICE))
                    pending = inflater.unconsumed_tail
                    if produced > expected + PNG_EXCESS_ALLOWED:
                        return False
            except zlib.error:
                return False
        elif seen_data:
            break  # image data is one run of IDAT chunks
        i = body_end + 4
    return seen_data and inflater.eof and produced >= expected


def _png_raw_size(header: bytes) -> int | None:
    """The bytes of filtered scanlines a PNG header declares, or None for a header Pillow would
    not decode either."""
    if len(header) != 13:
        return None
    width = int.from_bytes(header[0:4], "big")
    height = int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    channels = PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        return None
    bits = depth * channels
    if interlace == 0:
        passes: tuple[tuple[int, int, int, int], ...] = ((0, 0, 1, 1),)
    elif interlace == 1:
        passes = ADAM7
    else:
        return None
    total = 0
    for x0, y0, dx, dy in passes:
        columns = -(-(width - x0) // dx) if width > x0 else 0
        rows = -(-(height - y0) // dy) if height > y0 else 0
        if columns and rows:
            total += rows * (1 + -(-columns * bits // 8))
    return total


# ---- ISO-BMFF (HEIF) ---------------------------------------------------------------------------


def heif_items_described_in_text(data: bytes) -> bool:
    """False when a HEIF item's type, name or content type is not text.

    pi-heif 1.4 turns the item type and MIME content type of metadata items into Python strings
    without checking them, and a byte that is not UTF-8 there crashes the whole process
    (a segmentation fault, found by the fuzzer). So the item information is checked before
    pi-heif sees the file: every item type printable ASCII, every string UTF-8.
    """
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for child, body, child_end in _boxes(data, start + 4, end):  # meta is a full box
            if child != b"iinf" or body >= child_end:
                continue
            entries = body + 4 + (2 if data[body] == 0 else 4)
            for entry, info, entry_end in _boxes(data, entries, child_end):
                if entry == b"infe" and not _item_info_is_text(data[info:entry_end]):
                    return False
    return True


def _item_info_is_text(info: bytes) -> bool:
    """One ``infe`` box's body (version, flags, then the fields of that version)."""
    if len(info) < 4:
        return True  # libheif refuses it on its own
    version = info[0]
    if version >= 2:
        at = 4 + (2 if version == 2 else 4) + 2  # item id, protection index
        item_type = info[at : at + 4]
        if not all(0x20 <= byte < 0x7F for byte in item_type):
            return False
        text = info[at + 4 :]
    else:
        text = info[8:]
    try:
        for field in text.split(b"\x00"):
            field.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The ISO-BMFF boxes between ``start`` and ``end``: type, start of body, end of box."""
    i = start
    while i + 8 <= end:
        size = int.from_bytes(data[i : i + 4], "big")
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[i + 8 : i + 16], "big"), 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            return
        yield data[i + 4 : i + 8], i + header, i + size
        i += size


def _bmff_end(data: bytes) -> int | None:
    """Where the top-level boxes stop making sense: the end of the last well-formed one."""
    end = 0
    for kind, _body, box_end in _boxes(data, 0, len(data)):
        if not kind.isascii():
            break
        end = box_end
    return end


# ---- WebP --------------------------------------------------------------------------------------


def webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a WebP file's first chunk declares, or None.

    Read here rather than through Pillow, whose WebP opener sets up libwebp's decoder for the whole
    file, canvas included, just to learn the size.
    """
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
