"""The camera's motion from one video frame to the next: sparse optical flow from corners spread
over a small grey copy of each frame, and a robust fit of a similarity (shift, zoom, turn), as
BoT-SORT's GMC does."""

from __future__ import annotations

import cv2
import numpy as np

WIDTH = 320  # the frames are measured at this width (or their own, if narrower)
CORNERS, QUALITY, SPACING = 1000, 1e-4, 8  # Shi-Tomasi corners looked for in a thumbnail
CELL = 16  # and of them, the strongest in each square of this many pixels is followed: spread
# over the frame, so that a textured object moving across it is not taken for the background
MIN_POINTS = 10  # fewer followed points than this: no motion is estimated
RANSAC_PX = 0.5  # thumbnail pixels a point may stray from the fit and still agree: tight, so
# that what moves on its own (people, a passing object) is not taken for the camera


def grey_thumbnail(bgr: np.ndarray) -> np.ndarray:
    """A frame as the small grey image that camera motion is measured on."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    if grey.shape[1] <= WIDTH:
        return grey.copy()  # not the caller's buffer, which may be reused for the next frame
    height = max(round(grey.shape[0] * WIDTH / grey.shape[1]), 1)
    return cv2.resize(grey, (WIDTH, height), interpolation=cv2.INTER_AREA)


class CameraMotion:
    """Feed it each frame's thumbnail and the frame's width; it returns the 2x3 transform that
    takes the last frame's pixels to this one's (identity for the first, after a change of
    the frame's shape, or when unsure); a frame of the same shape at another size is zoomed."""

    def __init__(self) -> None:
        self._last: tuple[np.ndarray, int] | None = None

    def __call__(self, thumbnail: np.ndarray, frame_width: int) -> np.ndarray:
        last, self._last = self._last, (thumbnail, frame_width)
        if last is None or last[0].shape != thumbnail.shape:
            return identity()
        fit = similarity(last[0], thumbnail)
        if fit is None:
            return identity()
        before, after = (width / thumbnail.shape[1] for width in (last[1], frame_width))
        fit[:, :2] *= after / before  # frame pixels to thumbnail pixels and back, per frame
        fit[:, 2] *= after
        return fit


def identity() -> np.ndarray:
    """The 2x3 transform that moves nothing."""
    return np.eye(2, 3)


def similarity(before: np.ndarray, after: np.ndarray) -> np.ndarray | None:
    """The 2x3 similarity fitted (RANSAC) to corners of `before` followed into `after` by
    pyramidal Lucas-Kanade flow; None when too few points are followed or the fit fails."""
    points = spread_corners(before)
    if points is None or len(points) < MIN_POINTS:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(before, after, points, None)
    ok = status.ravel() == 1
    if ok.sum() < MIN_POINTS:
        return None
    fit, _ = cv2.estimateAffinePartial2D(
        points[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX
    )
    return None if fit is None else fit.astype(np.float64)


def spread_corners(grey: np.ndarray) -> np.ndarray | None:
    """(N, 1, 2) float32 Shi-Tomasi corners of a grey image, the strongest in each CELL-pixel
    square; None if there are none."""
    points = cv2.goodFeaturesToTrack(grey, CORNERS, QUALITY, SPACING)  # strongest first
    if points is None:
        return None
    columns = -(-grey.shape[1] // CELL)
    cells = (points[:, 0, 1] // CELL).astype(np.int64) * columns + points[:, 0, 0] // CELL
    _, first = np.unique(cells, return_index=True)
    return points[np.sort(first)]
