"""Reading image files (orientation, bit depth, size limit, reduced JPEG decode); writing them."""

from __future__ import annotations

import errno
import io
import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from posecli.core.errors import ImageError
from posecli.core.filekinds import special_kind
from posecli.core.files import write_bytes_atomic
from posecli.media import headers

DEFAULT_MAX_PIXELS = 150_000_000
# Files are read whole; 512 MiB holds any image of DEFAULT_MAX_PIXELS, even uncompressed.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# JPEG DCT scales, largest first. A reduced decode must stay MARGIN times the size the image is
# finally resized to: the bilinear resize then still shrinks by 2x or more, as for full-size
# photos. Reducing to just cover the model input blurred it and cost keypoint AP50 (docs/speed.md).
REDUCED_DECODES = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
MARGIN = 2.0
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Header:
    """What the file says before decoding: format, upright size and EXIF orientation."""

    format: str
    width: int
    height: int
    orientation: int


@dataclass(frozen=True)
class LoadedImage:
    """A decoded BGR image, possibly at 1/`reduction` scale, and the file's true upright size."""

    bgr: np.ndarray
    width: int
    height: int
    reduction: int = 1

    @classmethod
    def whole(cls, bgr: np.ndarray) -> LoadedImage:
        """An image already decoded at full size: its size is the array's."""
        return cls(bgr, bgr.shape[1], bgr.shape[0])


def read_bytes(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a regular file of at most max_bytes, turning OS errors into one-line reasons.

    Anything else (a FIFO, a device such as /dev/zero, a socket) is refused before it is
    opened; the open is non-blocking in case the path is swapped for a FIFO meanwhile.
    """
    try:
        _check_regular(os.stat(path), max_bytes)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            _check_regular(os.fstat(fd), max_bytes)
            data = f.read(max_bytes + 1)
    except IsADirectoryError as exc:
        raise ImageError("is a directory") from exc
    except FileNotFoundError as exc:
        raise ImageError("no such file or directory") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from exc
    if not data:
        raise ImageError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise too_many_bytes(f"more than {max_bytes}", max_bytes)
    return data


def _check_regular(st: os.stat_result, max_bytes: int) -> None:
    """Refuse what is not a regular file, or is larger than max_bytes."""
    kind = special_kind(st.st_mode)
    if kind == "directory":
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    if kind:
        raise ImageError(f"not a regular file but a {kind}")
    if st.st_size > max_bytes:
        raise too_many_bytes(str(st.st_size), max_bytes)


def too_many_bytes(size: str, max_bytes: int) -> ImageError:
    """The error for a file over the size limit."""
    return ImageError(f"file has {size} bytes, above the limit of {max_bytes} (--max-bytes)")


def too_large(pixels: str, max_pixels: int) -> ImageError:
    """The error for an image over the pixel limit."""
    return ImageError(f"image has {pixels} pixels, above the limit of {max_pixels} (--max-pixels)")


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Format, upright size and orientation from the header alone, never decoding pixels.

    Images over max_pixels (or over Pillow's own hard limit), JPEGs too short for the size
    their header claims, and files whose size cannot be read are refused.
    """
    stored = _stored_header(data, max_pixels)
    width, height = stored.width, stored.height
    if width * height > max_pixels:
        raise too_large(f"{width}x{height} = {width * height}", max_pixels)
    if stored.data_bytes < stored.min_data_bytes:
        raise ImageError(
            f"cannot decode: truncated {stored.format} file (its header says {width}x{height}, "
            f"but only {max(stored.data_bytes, 0)} bytes of image data follow)"
        )
    if stored.orientation in (5, 6, 7, 8):
        width, height = height, width
    return Header(stored.format, width, height, stored.orientation)


def _stored_header(data: bytes, max_pixels: int) -> headers.StoredHeader:
    """PNG and JPEG headers from our own readers, the other formats' from Pillow's."""
    if data.startswith(headers.PNG_SIGNATURE):
        return headers.png_header(data)
    if data.startswith(headers.JPEG_SIGNATURE):
        return headers.jpeg_header(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return headers.StoredHeader(
                im.format or "image", *im.size, headers.exif_orientation(im)
            )
    except Image.DecompressionBombError as exc:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        if limit < max_pixels:
            raise ImageError(f"image has more than {limit} pixels, too many for Pillow") from exc
        raise too_large(f"more than {limit}", max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as exc:
        fmt = headers.signature_format(data)
        reason = f"unreadable {fmt} header" if fmt else "not an image"
        raise ImageError(f"cannot decode: {reason}") from exc


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a decoded image upright according to its EXIF orientation tag (1-8)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def pick_reduction(header: Header, max_reduction: float) -> tuple[int, int]:
    """The largest JPEG scale-down (and its OpenCV flag) that keeps MARGIN; else full size."""
    if header.format == "JPEG":
        for reduction, flag in REDUCED_DECODES:
            if max_reduction >= MARGIN * reduction:
                return reduction, flag
    return 1, cv2.IMREAD_COLOR


def decode(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_reduction: Callable[[int, int], float] | None = None,
) -> LoadedImage:
    """Decode encoded image bytes to upright 8-bit BGR, scaled down by up to max_reduction(w, h)."""
    header = read_header(data, max_pixels)
    reduction, flag = 1, cv2.IMREAD_COLOR
    if max_reduction is not None:
        reduction, flag = pick_reduction(header, max_reduction(header.width, header.height))
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise ImageError(f"cannot decode image ({exc.err or 'OpenCV error'})") from exc
    if img is None or img.size == 0:
        raise ImageError(f"cannot decode: corrupt or truncated {header.format} file")
    img = apply_orientation(img, header.orientation)
    return LoadedImage(img, header.width, header.height, reduction)


def load(
    path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_reduction: Callable[[int, int], float] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Read and decode an image file (see `read_bytes` and `decode`)."""
    return decode(read_bytes(path, max_bytes), max_pixels, max_reduction)


def write_atomic(path: Path, bgr: np.ndarray) -> None:
    """Encode by the file's extension and write through a temporary file and a rename."""
    ok, encoded = cv2.imencode(path.suffix or ".jpg", bgr)
    if not ok:
        raise ImageError(f"{path}: cannot encode as {path.suffix}")
    write_bytes_atomic(path, encoded.tobytes())
