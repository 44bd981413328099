"""Drawing poses on an image: the spec's skeleton, keypoints, boxes, and scores or track IDs
(a colour per ID)."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .keypoints import DEFAULT_LABEL, KeypointSpec
from .pose import Pose

KEYPOINT_COLOR = (0, 0, 255)
BOX_COLOR = (60, 200, 60)
GOLDEN_RATIO = (5**0.5 - 1) / 2  # hue step between successive track IDs: each far from the last
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX


def line_width(image: np.ndarray) -> int:
    """Stroke width that scales with the image: about 0.3 % of its mean side, at least 1."""
    return max(1, round(sum(image.shape[:2]) / 2 * 0.003))


def draw_poses(
    image: np.ndarray, poses: list[Pose], kpt_conf: float, spec: KeypointSpec | None
) -> np.ndarray:
    """A copy of the BGR image with every pose drawn; keypoints under kpt_conf are left out.

    Limbs are the spec's skeleton in its colours; without a spec (or skeleton), keypoints alone.
    """
    canvas = image.copy()
    lw = line_width(canvas)
    limbs = spec.limbs() if spec else []
    name = spec.label if spec else DEFAULT_LABEL
    for pose in poses:
        _draw_box(canvas, pose, lw)
        visible = pose.keypoints[:, 2] >= kpt_conf
        points = np.round(pose.keypoints[:, :2]).astype(np.int32)
        for (a, b), color in limbs:
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(points[a]), tuple(points[b]), color, lw, cv2.LINE_AA)
        for x, y in points[visible]:
            cv2.circle(canvas, (int(x), int(y)), lw + 1, KEYPOINT_COLOR, -1, cv2.LINE_AA)
    _draw_labels(canvas, poses, lw, name)
    return canvas


def box_color(pose: Pose) -> tuple[int, int, int]:
    """The colour of a person's box and label: one per track ID, else BOX_COLOR."""
    if pose.track_id is None:
        return BOX_COLOR
    red, green, blue = colorsys.hsv_to_rgb(pose.track_id * GOLDEN_RATIO % 1.0, 0.9, 0.8)
    return round(blue * 255), round(green * 255), round(red * 255)


def _draw_box(canvas: np.ndarray, pose: Pose, lw: int) -> None:
    """The person's box."""
    x1, y1, x2, y2 = (round(float(v)) for v in pose.box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), box_color(pose), lw)


def _label(pose: Pose, name: str) -> str:
    """The text written by a box: the track ID, else the class name and score."""
    return f"{name} {pose.score:.2f}" if pose.track_id is None else f"id {pose.track_id}"


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
    poses: list[Pose], image_shape: tuple[int, ...], lw: int, name: str = DEFAULT_LABEL
) -> np.ndarray:
    """(N, 4) int x1, y1, x2, y2 of each pose's label, inside the image, placed greedily (poses
    in order) at the first spot by its box, else the nearest in the image, that is still free."""
    height, width = image_shape[:2]
    rects = np.zeros((len(poses), 4), np.int64)
    for i, pose in enumerate(poses):
        _, _, w, h = label_style(image_shape, lw, _label(pose, name))
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


def _draw_labels(canvas: np.ndarray, poses: list[Pose], lw: int, name: str) -> None:
    """Each pose's label on a filled tag, on top of everything else, inside the image."""
    rects = label_rects(poses, canvas.shape, lw, name)
    for pose, (x1, y1, x2, y2) in zip(poses, rects, strict=True):
        text = _label(pose, name)
        scale, thickness, _, _ = label_style(canvas.shape, lw, text)
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), box_color(pose), -1)
        (_, th), _ = cv2.getTextSize(text, LABEL_FONT, scale, thickness)
        cv2.putText(canvas, text, (int(x1) + lw // 2, int(y1) + lw // 2 + th), LABEL_FONT, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)  # fmt: skip
