"""Drawing poses on an image: COCO skeleton coloured by body part, keypoints, boxes and scores."""

from __future__ import annotations

import cv2
import numpy as np

from .pose import Pose

# The 19 COCO limbs as 0-based keypoint index pairs, each with its body part.
LIMBS: tuple[tuple[int, int, str], ...] = (
    (15, 13, "left_leg"), (13, 11, "left_leg"), (16, 14, "right_leg"), (14, 12, "right_leg"),
    (11, 12, "torso"), (5, 11, "torso"), (6, 12, "torso"), (5, 6, "torso"),
    (5, 7, "left_arm"), (6, 8, "right_arm"), (7, 9, "left_arm"), (8, 10, "right_arm"),
    (1, 2, "head"), (0, 1, "head"), (0, 2, "head"), (1, 3, "head"), (2, 4, "head"),
    (3, 5, "head"), (4, 6, "head"),
)  # fmt: skip
PART_COLORS: dict[str, tuple[int, int, int]] = {  # BGR
    "head": (255, 180, 0),
    "torso": (0, 220, 255),
    "left_arm": (0, 140, 255),
    "right_arm": (255, 64, 192),
    "left_leg": (0, 200, 0),
    "right_leg": (255, 96, 64),
}
KEYPOINT_COLOR = (0, 0, 255)
BOX_COLOR = (60, 200, 60)


def line_width(image: np.ndarray) -> int:
    """Stroke width that scales with the image: about 0.3 % of its mean side, at least 1."""
    return max(1, round(sum(image.shape[:2]) / 2 * 0.003))


def draw_poses(image: np.ndarray, poses: list[Pose], kpt_conf: float = 0.5) -> np.ndarray:
    """A copy of the BGR image with every pose drawn; keypoints under kpt_conf are left out."""
    canvas = image.copy()
    lw = line_width(canvas)
    for pose in poses:
        _draw_box(canvas, pose, lw)
        visible = pose.keypoints[:, 2] >= kpt_conf
        points = np.round(pose.keypoints[:, :2]).astype(np.int32)
        for a, b, part in LIMBS:
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(points[a]), tuple(points[b]), PART_COLORS[part], lw,
                         cv2.LINE_AA)  # fmt: skip
        for x, y in points[visible]:
            cv2.circle(canvas, (int(x), int(y)), lw + 1, KEYPOINT_COLOR, -1, cv2.LINE_AA)
    return canvas


def _draw_box(canvas: np.ndarray, pose: Pose, lw: int) -> None:
    """Person box with its score written above it."""
    x1, y1, x2, y2 = (round(float(v)) for v in pose.box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, lw)
    scale = lw / 3
    label = f"person {pose.score:.2f}"
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, lw // 2))
    top = max(y1 - th - lw, 0)
    cv2.rectangle(canvas, (x1, top), (x1 + tw + lw, top + th + lw), BOX_COLOR, -1)
    cv2.putText(canvas, label, (x1 + lw // 2, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, lw // 2), cv2.LINE_AA)  # fmt: skip
