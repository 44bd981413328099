"""Drawing poses on an image: the spec's skeleton, keypoints, boxes, and scores or track IDs,
each person in a colour of their own (by index, or by track ID)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from posecli.core.keypoints import DEFAULT_LABEL, KeypointSpec
from posecli.core.results import People, Pose

GOLDEN_RATIO = (5**0.5 - 1) / 2  # hue step between successive people: each far from the last
# Relative luminance of every person's colour: 4.6:1 contrast with black and with white (WCAG's
# 4.5:1 for text), so boxes, dots and the white label text read on dark and light pictures.
LUMINANCE = 0.18
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class DrawStyle:
    """Ultralytics' drawing switches: line width in pixels (None: scaled to the image), and
    whether boxes, labels and the scores in labels are drawn."""

    line_width: int | None = None
    boxes: bool = True
    labels: bool = True
    conf: bool = True


def line_width(image: np.ndarray) -> int:
    """Stroke width that scales with the image: about 0.3 % of its mean side, at least 1."""
    return max(1, round(sum(image.shape[:2]) / 2 * 0.003))


def draw_poses(
    image: np.ndarray,
    poses: People,
    kpt_conf: float,
    spec: KeypointSpec | None,
    style: DrawStyle = DrawStyle(),
) -> np.ndarray:
    """A copy of the BGR image with every pose drawn; keypoints under kpt_conf are left out.

    Limbs are the spec's skeleton in its colours; without a spec (or skeleton), keypoints alone.
    Each person's box, keypoints and label are in their colour (box_color).
    """
    canvas = image.copy()
    lw = style.line_width or line_width(canvas)
    limbs = spec.limbs() if spec else []
    name = spec.label if spec else DEFAULT_LABEL
    for index, pose in enumerate(poses):
        color = box_color(pose, index)
        if style.boxes:
            x1, y1, x2, y2 = (round(float(v)) for v in pose.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, lw)
        visible = pose.keypoints[:, 2] >= kpt_conf
        points = np.round(pose.keypoints[:, :2]).astype(np.int32)
        for (a, b), limb_color in limbs:
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(points[a]), tuple(points[b]), limb_color, lw, cv2.LINE_AA)
        for x, y in points[visible]:
            cv2.circle(canvas, (int(x), int(y)), lw + 1, color, -1, cv2.LINE_AA)
    if style.labels:
        _draw_labels(canvas, poses, lw, name, style.conf)
    return canvas


def box_color(pose: Pose, index: int = 0) -> tuple[int, int, int]:
    """The BGR colour of a person's box, keypoints and label: by track ID when tracked, else by
    their index in the image."""
    return person_color(index if pose.track_id is None else pose.track_id)


@lru_cache(maxsize=1024)
def person_color(key: int) -> tuple[int, int, int]:
    """The BGR colour of person `key`: hues a golden-ratio turn apart, each as light or dark
    as gives LUMINANCE (found by bisection on HLS lightness)."""
    hue, low, high = key * GOLDEN_RATIO % 1.0, 0.0, 1.0
    for _ in range(20):
        lightness = (low + high) / 2
        rgb = colorsys.hls_to_rgb(hue, lightness, 1.0)
        low, high = (lightness, high) if luminance(rgb) < LUMINANCE else (low, lightness)
    red, green, blue = colorsys.hls_to_rgb(hue, (low + high) / 2, 1.0)
    return round(blue * 255), round(green * 255), round(red * 255)


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG relative luminance of an sRGB colour in 0..1."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _label(pose: Pose, name: str, conf: bool = True) -> str:
    """The text written by a box: the track ID, else the class name and (with `conf`) score."""
    if pose.track_id is not None:
        return f"id {pose.track_id}"
    return f"{name} {pose.score:.2f}" if conf else name


def label_style(image_shape: tuple[int, ...], lw: int, text: str) -> tuple[float, int, int, int]:
    """Font scale, thickness, and the label's width and height; shrunk to fit a narrow image."""
    scale, thickness = lw / 3, max(1, lw // 2)
    (tw, th), baseline = cv2.getTextSize(text, LABEL_FONT, scale, thickness)
    width = image_shape[1]
    if tw + lw > width:
        scale *= (width - lw) / (tw + lw)
        (tw, th), baseline = cv2.getTextSize(text, LABEL_FONT, scale, thickness)
    return scale, thickness, tw + lw, th + baseline + lw


def label_rects(
    poses: People,
    image_shape: tuple[int, ...],
    lw: int,
    name: str = DEFAULT_LABEL,
    conf: bool = True,
) -> np.ndarray:
    """(N, 4) int x1, y1, x2, y2 of each pose's label, inside the image, placed greedily (poses
    in order) at the first spot by its box, else the nearest in the image, that is still free."""
    height, width = image_shape[:2]
    rects = np.zeros((len(poses), 4), np.int64)
    for i, pose in enumerate(poses):
        _, _, w, h = label_style(image_shape, lw, _label(pose, name, conf))
        size = np.array([w, h])
        limit = np.maximum(np.array([width, height]) - size, 0)
        for corners in (_label_spots(pose.box, w, h), _spots_by_distance(pose.box, limit, w, h)):
            corners = np.clip(corners, 0, limit)
            spots = np.c_[corners, corners + size]
            overlap = _overlap_areas(spots, rects[:i]).sum(axis=1)
            rects[i] = spots[int(np.argmin(overlap))]
            if overlap.min() == 0:
                break
    return rects


def _label_spots(box: np.ndarray, w: int, h: int) -> np.ndarray:
    """Candidate top-left corners, best first: above the box, then inside it from the top down,
    then below it; each at the box's left edge, then at its right edge."""
    x1, y1, x2, y2 = np.round(box).astype(np.int64)
    rows = [y1 - h, *range(y1, max(y2 - h, y1) + 1, h), y2]
    return np.array([(x, y) for y in rows for x in (x1, x2 - w)], np.int64)


def _spots_by_distance(box: np.ndarray, limit: np.ndarray, w: int, h: int) -> np.ndarray:
    """Every corner on a (w/2, h) grid over the image, nearest the box's top-left first."""
    xs = np.arange(0, limit[0] + 1, max(w // 2, 1))
    ys = np.arange(0, limit[1] + 1, max(h, 1))
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    distance = np.abs(grid - np.round(box[:2]).astype(np.int64)).sum(axis=1)
    return grid[np.argsort(distance, kind="stable")]


def _overlap_areas(spots: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """(S, P) overlap area of each candidate rectangle with each placed one."""
    ix = np.minimum(spots[:, None, 2], placed[None, :, 2]) - np.maximum(
        spots[:, None, 0], placed[None, :, 0]
    )
    iy = np.minimum(spots[:, None, 3], placed[None, :, 3]) - np.maximum(
        spots[:, None, 1], placed[None, :, 1]
    )
    return np.clip(ix, 0, None) * np.clip(iy, 0, None)


def _draw_labels(canvas: np.ndarray, poses: People, lw: int, name: str, conf: bool) -> None:
    """Each pose's label on a filled tag in its colour, on top of everything else, inside the
    image."""
    rects = label_rects(poses, canvas.shape, lw, name, conf)
    for index, (pose, (x1, y1, x2, y2)) in enumerate(zip(poses, rects, strict=True)):
        text = _label(pose, name, conf)
        scale, thickness, _, _ = label_style(canvas.shape, lw, text)
        color = box_color(pose, index)
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), color, -1)
        (_, th), _ = cv2.getTextSize(text, LABEL_FONT, scale, thickness)
        cv2.putText(canvas, text, (int(x1) + lw // 2, int(y1) + lw // 2 + th), LABEL_FONT, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)  # fmt: skip
