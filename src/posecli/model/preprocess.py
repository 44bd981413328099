"""Fitting an image to the model's N x M input (letterbox or stretch) and mapping points back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114
RESIZE_MODES = ("letterbox", "stretch")
INTERPOLATIONS = ("linear", "nearest")
# Bilinear in OpenCV's fixed-point "exact" form. OpenCV's arm64 wheels hand plain INTER_LINEAR
# to their own kernels (the carotene and KleidiCV HALs), which round some pixels one grey level
# away from x86's, enough for the int8 model to find other people; INTER_LINEAR_EXACT gives the
# same pixels on every CPU. The rest of the image path (libjpeg-turbo decoding at any scale,
# flips, rotations, borders, BGR to RGB, the nearest indices) is exact already.
# scripts/check_arm64.sh checks it.
BILINEAR = cv2.INTER_LINEAR_EXACT


@dataclass(frozen=True)
class Transform:
    """Model-input pixels = image pixels * scale + pad, per axis; `inverse_points` undoes it."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def inverse_points(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) model-input pixel coordinates back to image pixels."""
        scale = np.array([self.scale_x, self.scale_y])
        pad = np.array([self.pad_x, self.pad_y])
        return (xy - pad) / scale


def resized_shape(width: int, height: int, size: tuple[int, int], mode: str) -> tuple[int, int]:
    """The (width, height) an image takes inside the (width, height) model input before padding."""
    if mode == "stretch":
        return size
    ratio = min(size[0] / width, size[1] / height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def max_reduction(width: int, height: int, size: tuple[int, int], mode: str) -> float:
    """How far an image can be scaled down first and still be downscaled to the model input."""
    new_w, new_h = resized_shape(width, height, size, mode)
    return min(width / new_w, height / new_h)


def resize(bgr: np.ndarray, width: int, height: int, interp: str) -> np.ndarray:
    """Bilinear (OpenCV) or nearest-neighbour resize as TensorFlow's `tf.image.resize` does it."""
    if interp == "nearest":
        rows = half_pixel_nearest(bgr.shape[0], height)
        return bgr[np.ix_(rows, half_pixel_nearest(bgr.shape[1], width))]
    return cv2.resize(bgr, (width, height), interpolation=BILINEAR)


def half_pixel_nearest(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output pixel: floor((i + 0.5) * in / out), in float32 as TensorFlow.

    OpenCV's INTER_NEAREST_EXACT uses fixed point and picks the pixel before at exact integers
    (37 of 192 columns for 640 -> 192), so it is not used.
    """
    scale = np.float32(size_in) / np.float32(size_out)
    centres = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(centres).astype(np.intp), size_in - 1)


def to_model_input(
    bgr: np.ndarray, size: tuple[int, int], mode: str = "letterbox", interp: str = "linear"
) -> tuple[np.ndarray, Transform]:
    """Resize (bilinear or nearest) into a (width, height) = size RGB canvas padded with 114."""
    height, width = bgr.shape[:2]
    new_w, new_h = resized_shape(width, height, size, mode)
    resized = bgr if (new_w, new_h) == (width, height) else resize(bgr, new_w, new_h, interp)
    left, top = (size[0] - new_w) // 2, (size[1] - new_h) // 2
    canvas = cv2.copyMakeBorder(
        resized, top, size[1] - new_h - top, left, size[0] - new_w - left,
        cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )  # fmt: skip
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    return rgb, Transform(new_w / width, new_h / height, left, top)
