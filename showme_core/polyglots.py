"""Recognising another document hidden after a picture (a polyglot), from the bytes that follow it.

Phones append things of their own after a picture: a motion photo's video (an MP4 that starts
with its ``ftyp`` box), a second picture (MPO, a gain map), padding of zeros or 0xFF. Documents
that other programs would open are refused instead. Signatures are matched only at the start of
the trailer (after padding): matched anywhere, a short signature turns up by chance in a few
hundred kilobytes of video. The one exception is a ZIP, which readers find from its end.
"""

from __future__ import annotations

# What padding between a picture and a trailer is made of.
PADDING = b"\x00\xff \t\r\n"
# Binary formats, matched byte for byte. The name is what a reader of the code needs to know.
BINARY_SIGNATURES: dict[bytes, str] = {
    b"PK\x03\x04": "ZIP (and JAR, DOCX, ODT, APK)",
    b"\x1f\x8b": "gzip",
    b"Rar!\x1a\x07": "RAR",
    b"7z\xbc\xaf\x27\x1c": "7-Zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "Zstandard",
    b"MSCF": "Windows cabinet",
    b"%PDF": "PDF",
    b"%!PS": "PostScript",
    b"{\\rtf": "RTF",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "OLE compound file (DOC, XLS, MSI)",
    b"\x7fELF": "ELF executable",
    b"MZ": "Windows executable",
    b"\xfe\xed\xfa\xce": "Mach-O executable",
    b"\xfe\xed\xfa\xcf": "Mach-O executable",
    b"\xce\xfa\xed\xfe": "Mach-O executable",
    b"\xcf\xfa\xed\xfe": "Mach-O executable",
    b"\xca\xfe\xba\xbe": "Mach-O universal binary or Java class",
}
# Text is looked at past a byte-order mark, in UTF-8 or UTF-16.
UTF8_BOM = b"\xef\xbb\xbf"
TEXT_PROBE = 64
# Markup is "<" followed by a tag name, "!" (<!DOCTYPE, <!--), "?" (<?xml, <?php), "/" or "%"
# (<%@ server pages): HTML, SVG, XML, scripts and server pages all start so.
MARKUP_AFTER_LT = frozenset(b"!?/%abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
SHEBANG = b"#!"
ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
ZIP_TAIL = 22 + 65535  # the record and the longest comment it may carry


def hidden_document(trailer: bytes) -> str | None:
    """What kind of document ``trailer`` (the bytes after a picture) is, or None for a trailer
    a phone could have written."""
    start = trailer.lstrip(PADDING)
    for signature, kind in BINARY_SIGNATURES.items():
        if start.startswith(signature):
            return kind
    text = _as_ascii(start[:TEXT_PROBE])
    if len(text) >= 2 and text[0] == ord("<") and text[1] in MARKUP_AFTER_LT:
        return "markup (HTML, SVG, XML, script or server page)"
    if text.startswith(SHEBANG):
        return "script"
    # A ZIP is read from its end: its directory record may follow any bytes at all.
    if ZIP_END_OF_DIRECTORY in trailer[-ZIP_TAIL:]:
        return "ZIP (found from its end)"
    return None


def _as_ascii(head: bytes) -> bytes:
    """The first characters of ``head`` as ASCII, past a byte-order mark and leading blanks, when
    it is text in UTF-8 or UTF-16 (either byte order, with or without a mark)."""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    elif head.startswith(b"\xfe"):
        # FE FF starts UTF-16BE text; FF FE (little-endian) reaches here as FE, since 0xFF is
        # padding to the caller.
        head = head.lstrip(b"\xfe\xff")
    if head[:1] == b"\x00" or head[1:2] == b"\x00":
        # UTF-16: each ASCII character comes with a zero byte before or after it.
        head = head.replace(b"\x00", b"")
    return head.lstrip(b" \t\r\n\x0c")
