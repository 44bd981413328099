"""PNG and JPEG headers read from the bytes themselves: size, EXIF orientation, data size.

Pillow's header reader gives up on some files that the decoders still read (a PNG whose text
chunk is too large for it, say), and its PNG `getexif()` decodes every pixel; these readers
look only at chunk and marker headers, so a size is always known before any pixel is decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from PIL import Image

from posecli.core.errors import ImageError

EXIF_ORIENTATION = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Start-of-frame markers; those from 0xC9 on use arithmetic coding.
JPEG_FRAMES = frozenset([*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                         *range(0xCD, 0xD0)])  # fmt: skip
JPEG_ARITHMETIC = frozenset(m for m in JPEG_FRAMES if m >= 0xC9)
JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
JPEG_SOS = 0xDA
# Signatures of the other formats read, to tell a damaged header from a file that is no image.
SIGNATURES = {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"GIF8": "GIF"}


@dataclass(frozen=True)
class StoredHeader:
    """Format, stored (not yet EXIF-rotated) size, EXIF orientation (1-8).

    For JPEG also the bytes from the first scan on, and the fewest that the frame can take.
    """

    format: str
    width: int
    height: int
    orientation: int = 1
    data_bytes: int = 0
    min_data_bytes: int = 0


def exif_orientation(source: Image.Image | bytes | None) -> int:
    """The EXIF orientation tag (1-8) of an opened image (never a PNG: its `getexif()` decodes
    the pixels) or of an EXIF block; 1 when absent, unreadable or out of range."""
    if source is None:
        return 1
    try:
        if isinstance(source, bytes):
            exif = Image.Exif()
            exif.load(source)
        else:
            exif = source.getexif()
        value = int(exif.get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block only loses the orientation
        return 1
    return value if 1 <= value <= 8 else 1


def signature_format(data: bytes) -> str | None:
    """The format a file's first bytes announce, among those Pillow reads the header of."""
    return next((f for s, f in SIGNATURES.items() if data.startswith(s)), None)


def png_header(data: bytes) -> StoredHeader:
    """Size from IHDR and the eXIf chunk (which the PNG spec places before the first IDAT)."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("cannot decode: corrupt PNG header")
    width, height = struct.unpack(">II", data[16:24])
    exif, pos = None, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"eXIf":
            exif = data[pos + 8 : pos + 8 + length]
        if kind in (b"eXIf", b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return StoredHeader("PNG", width, height, exif_orientation(exif))


def jpeg_header(data: bytes) -> StoredHeader:
    """Size from the first frame header, orientation from the first EXIF APP1 segment."""
    exif, frame, pos = None, None, 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("cannot decode: corrupt JPEG header")
        marker = data[pos + 1]
        if marker == 0xFF or marker in JPEG_STANDALONE:
            pos += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and exif is None and segment.startswith(b"Exif\0\0"):
            exif = segment
        elif marker in JPEG_FRAMES and frame is None:
            frame = (marker, segment)
        elif marker == JPEG_SOS:
            break
        pos += 2 + length
    if frame is None:
        raise ImageError("cannot decode: corrupt or truncated JPEG file (no frame header)")
    marker, segment = frame
    width, height, blocks = _jpeg_frame(segment)
    least = 0 if marker in JPEG_ARITHMETIC else min_scan_bytes(blocks)
    return StoredHeader("JPEG", width, height, exif_orientation(exif), len(data) - pos, least)


def _jpeg_frame(segment: bytes) -> tuple[int, int, int]:
    """Width, height and the number of 8x8 blocks over all components, from a frame header."""
    if len(segment) < 6:
        raise ImageError("cannot decode: corrupt JPEG frame header")
    height, width, count = struct.unpack(">HHB", segment[1:6])
    factors = [(b >> 4, b & 15) for b in segment[7 : 6 + 3 * count : 3]]
    if not width or not height or len(factors) != count or not all(h and v for h, v in factors):
        raise ImageError("cannot decode: corrupt JPEG frame header")
    h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
    blocks = sum(
        _ceil_div(_ceil_div(width * h, h_max), 8) * _ceil_div(_ceil_div(height * v, v_max), 8)
        for h, v in factors
    )
    return width, height, blocks


def _ceil_div(a: int, b: int) -> int:
    """a / b rounded up."""
    return -(-a // b)


def min_scan_bytes(blocks: int) -> int:
    """Fewest bytes that can hold `blocks` Huffman-coded blocks: each has a DC code of >= 1 bit."""
    return blocks // 8
