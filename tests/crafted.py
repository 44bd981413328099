"""Hostile image files made in the tests: pixel bombs, lying headers, damaged data."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zlib_zeros(length: int, rows: int) -> bytes:
    """A zlib stream of rows * length zero bytes, made without compressing them all.

    Each row is one deflate block ending on a byte boundary, so the blocks can be repeated;
    the Adler-32 of n zeros is (n mod 65521) << 16 | 1.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(b"\0" * length) + deflate.flush(zlib.Z_SYNC_FLUSH)
    adler = ((length * rows) % 65521) << 16 | 1
    return b"\x78\x9c" + block * rows + b"\x03\x00" + struct.pack(">I", adler)


def png_bomb(path: Path, width: int, height: int, text_bytes: int = 0) -> None:
    """A real, decodable black RGB PNG of width x height, optionally with a zTXt chunk before
    IDAT that inflates to text_bytes (more than Pillow reads, so Pillow cannot open it)."""
    body = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if text_bytes:
        body += png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"a" * text_bytes, 9))
    body += png_chunk(b"IDAT", zlib_zeros(1 + 3 * width, height)) + png_chunk(b"IEND", b"")
    path.write_bytes(PNG_SIGNATURE + body)


def small_image(fmt: str, mode: str = "RGB", **options) -> bytearray:
    """A 16x16 image encoded by Pillow in fmt."""
    buffer = io.BytesIO()
    Image.new(mode, (16, 16), 90).save(buffer, fmt, **options)
    return bytearray(buffer.getvalue())


def jpeg_claiming_size(path: Path, width: int, height: int) -> None:
    """A 16x16 JPEG whose frame header claims width x height (a few hundred bytes in all)."""
    data = small_image("JPEG")
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(data)


def gif_claiming_size(path: Path, width: int, height: int) -> None:
    """A 16x16 GIF whose screen and frame descriptors claim width x height."""
    data = small_image("GIF", "P")
    data[6:10] = struct.pack("<HH", width, height)
    frame = data.find(b",", 13)
    data[frame + 5 : frame + 9] = struct.pack("<HH", width, height)
    path.write_bytes(data)


def tiff_claiming_size(path: Path, width: int, height: int) -> None:
    """A 16x16 little-endian TIFF whose ImageWidth and ImageLength tags claim width x height."""
    data = small_image("TIFF")
    ifd = struct.unpack("<I", data[4:8])[0]
    for n in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * n
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        value = {256: width, 257: height}.get(tag)
        if value is not None:
            layout = "<H" if kind == 3 else "<I"
            data[entry + 8 : entry + 8 + struct.calcsize(layout)] = struct.pack(layout, value)
    path.write_bytes(data)


def png_with_bad_crc(path: Path, source: Path) -> None:
    """source saved as PNG with one byte of its pixel data flipped (libpng: CRC error)."""
    ok, encoded = cv2.imencode(".png", cv2.imread(str(source)))
    assert ok
    data = bytearray(encoded.tobytes())
    data[data.find(b"IDAT") + 100] ^= 0xFF
    path.write_bytes(data)


def jpeg_cut_short(path: Path, source: Path, keep: int) -> None:
    """The first `keep` bytes of a JPEG, then an end-of-image marker (libjpeg: premature end)."""
    path.write_bytes(source.read_bytes()[:keep] + b"\xff\xd9")
