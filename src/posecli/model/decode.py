"""Turning the canonical model output into poses: score filter, NMS, to image pixels.

The output is (4 + nc + K*D, F), rows x anchors (ST's files: nc = 1), or end-to-end (N, 6 + K*D)
after the model's own NMS; coordinates 0..1 (`PoseModel` normalises the other layouts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecli.core.geometry import box_iou
from posecli.core.results import People
from posecli.model.preprocess import Transform

# What a model with 2 values per keypoint (x, y) reports as each keypoint's confidence.
NO_CONFIDENCE = 1.0
# What an infinite keypoint value becomes: the largest float32, so scaling it cannot overflow.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_det: int) -> np.ndarray:
    """Greedy class-agnostic NMS: indices of kept boxes, best first, at most max_det."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


@dataclass(frozen=True)
class Head:
    """What decode needs of a model's output besides D: nc, whether it is end-to-end, the
    classes kept (None: all) and the class names poses carry (None: one class, none)."""

    classes: int = 1
    end2end: bool = False
    keep: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None

    @property
    def by_class(self) -> bool:
        """Whether classes matter: several of them, or some filtered out."""
        return self.classes > 1 or self.keep is not None


ONE_CLASS = Head()


def candidates(
    output: np.ndarray, conf: float, head: Head = ONE_CLASS
) -> tuple[np.ndarray, np.ndarray | None]:
    """Columns (N, 5 + K*D) in float64 whose score (the best of the kept class scores) beats
    conf and whose box and score are finite; and their classes when `head.by_class`."""
    classes = None
    if head.by_class:
        kept = np.arange(head.classes) if head.keep is None else np.array(head.keep)
        by_class = output[4 + kept]
        best = by_class.argmax(axis=0)
        score = np.take_along_axis(by_class, best[None], axis=0)
        output = np.concatenate((output[:4], score, output[4 + head.classes :]))
        classes = kept[best]
    chosen = output[4] > conf
    rows = output[:, chosen].T.astype(np.float64)
    finite = np.isfinite(rows[:, :5]).all(axis=1)
    return rows[finite], None if classes is None else classes[chosen][finite]


def keypoint_triples(values: np.ndarray, dims: int) -> np.ndarray:
    """(N, K*D) keypoint values to (N, K, 3) x, y, conf; NaN becomes 0 and infinity the largest
    float32; D = 2 gets NO_CONFIDENCE."""
    kpts = values.reshape(len(values), values.shape[1] // dims, dims)
    kpts = np.nan_to_num(kpts, posinf=FLOAT32_MAX, neginf=-FLOAT32_MAX)
    if dims == 3:
        return kpts
    return np.concatenate((kpts, np.full((*kpts.shape[:2], 1), NO_CONFIDENCE)), axis=2)


def decode_people(
    output: np.ndarray,
    size: tuple[int, int],
    transform: Transform,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 100,
    dims: int = 3,
    head: Head = ONE_CLASS,
) -> People:
    """The people a (width, height) = size model found, D values a keypoint, through NMS (or,
    end-to-end, the score threshold alone) and mapped to image pixels (not yet clipped to the
    image). NMS is class-agnostic, as for one class.

    Coordinates in the output are normalised: x by the input width, y by its height.
    """
    scale = np.array(size, dtype=np.float64)
    if head.end2end:
        rows, boxes, classes = end_to_end_rows(output, conf, max_det, scale, head)
    else:
        rows, classes = candidates(output, conf, head)
        cxcy, half_wh = rows[:, 0:2] * scale, np.abs(rows[:, 2:4]) * scale / 2
        boxes = np.concatenate((cxcy - half_wh, cxcy + half_wh), axis=1)
        keep = nms(boxes, rows[:, 4], iou, max_det)
        rows, boxes = rows[keep], boxes[keep]
        classes = None if classes is None else classes[keep]
    boxes = transform.inverse_points(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
    kpts = keypoint_triples(rows[:, 5:], dims)
    kpts[..., :2] = transform.inverse_points(kpts[..., :2] * scale)
    return People(boxes, rows[:, 4], kpts, classes=classes)


def end_to_end_rows(
    output: np.ndarray, conf: float, max_det: int, scale: np.ndarray, head: Head
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """From (N, 6 + K*D) x1 y1 x2 y2 score class keypoints: the best max_det rows over conf of
    the kept classes as (N, 5 + K*D) float64, their boxes in input pixels, and their classes
    when `head.by_class`."""
    rows = output[output[:, 4] > conf].astype(np.float64)
    rows = rows[np.isfinite(rows[:, :6]).all(axis=1)]
    if head.keep is not None:
        rows = rows[np.isin(rows[:, 5], head.keep)]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")[:max_det]]
    boxes = (rows[:, :4].reshape(-1, 2, 2) * scale).reshape(-1, 4)
    classes = rows[:, 5].astype(np.intp) if head.by_class else None
    return np.delete(rows, 5, axis=1), boxes, classes


def clipped_people(
    people: People, image_size: tuple[int, int], names: tuple[str, ...] | None = None
) -> People:
    """The people as results: boxes and keypoints clipped to the (width, height) image (float32),
    scores and confidences to 0..1; with class `names`, each person's class."""
    limit = np.array(image_size, dtype=np.float64)
    boxes = np.clip(people.boxes.reshape(-1, 2, 2), 0, limit).reshape(-1, 4)
    kpts = people.keypoints.copy()
    kpts[..., :2] = np.clip(kpts[..., :2], 0, limit)
    kpts[..., 2] = np.clip(kpts[..., 2], 0, 1)
    scores = np.clip(people.scores, 0, 1)
    classes = None if names is None else people.classes
    return People(boxes.astype(np.float32), scores, kpts.astype(np.float32), None, classes,
                  None if classes is None else names)  # fmt: skip


def decode_poses(
    output: np.ndarray,
    size: tuple[int, int],
    transform: Transform,
    image_size: tuple[int, int],
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 100,
    dims: int = 3,
    head: Head = ONE_CLASS,
) -> People:
    """Decode the output of a (width, height) = size model, D values a keypoint, to poses in
    the pixels of a (width, height) = image_size image."""
    people = decode_people(output, size, transform, conf, iou, max_det, dims, head)
    return clipped_people(people, image_size, head.names)
