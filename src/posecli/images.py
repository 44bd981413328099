"""Reading image files (orientation, bit depth, size limit, reduced JPEG decode); writing them."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .files import write_bytes_atomic

DEFAULT_MAX_PIXELS = 150_000_000
EXIF_ORIENTATION = 0x0112
JPEG_FORMATS = {"JPEG", "MPO"}
# JPEG DCT scales, largest first. A reduced decode must stay MARGIN times the size the image is
# finally resized to: the bilinear resize then still shrinks by 2x or more, as for full-size
# photos. Reducing to just cover the model input blurred it and cost keypoint AP50 (README).
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

    format: str | None
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


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file, turning OS errors into one-line reasons."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError as exc:
        raise ImageError("is a directory") from exc
    except FileNotFoundError as exc:
        raise ImageError("no such file") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from exc
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data


def too_large(pixels: str, max_pixels: int) -> ImageError:
    """The error for an image over the pixel limit."""
    return ImageError(f"image has {pixels} pixels, above the limit of {max_pixels} (--max-pixels)")


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header | None:
    """Format, upright size and orientation from the header alone; None if Pillow can't tell.

    Images over max_pixels (or over Pillow's own hard limit) are refused before any decoding.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            orientation = int(im.getexif().get(EXIF_ORIENTATION, 1))
            fmt = im.format
    except Image.DecompressionBombError as exc:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise too_large(f"more than {limit}", max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if width * height > max_pixels:
        raise too_large(f"{width}x{height} = {width * height}", max_pixels)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Header(fmt, width, height, orientation if 1 <= orientation <= 8 else 1)


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
    if header.format in JPEG_FORMATS:
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
    if header is not None and max_reduction is not None:
        reduction, flag = pick_reduction(header, max_reduction(header.width, header.height))
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise ImageError(f"cannot decode image ({exc.err or 'OpenCV error'})") from exc
    if img is None or img.size == 0:
        what = f"corrupt or truncated {header.format} file" if header else "not an image"
        raise ImageError(f"cannot decode: {what}")
    img = apply_orientation(img, header.orientation if header else 1)
    height, width = img.shape[:2]
    if header is not None:
        width, height = header.width, header.height
    return LoadedImage(img, width, height, reduction)


def load(
    path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_reduction: Callable[[int, int], float] | None = None,
) -> LoadedImage:
    """Read and decode an image file (see `decode`)."""
    return decode(read_bytes(path), max_pixels, max_reduction)


def write_atomic(path: Path, bgr: np.ndarray) -> None:
    """Encode by the file's extension and write through a temporary file and a rename."""
    ok, encoded = cv2.imencode(path.suffix or ".jpg", bgr)
    if not ok:
        raise ImageError(f"{path}: cannot encode as {path.suffix}")
    write_bytes_atomic(path, encoded.tobytes())
