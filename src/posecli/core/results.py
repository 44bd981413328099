"""The result types: one detected person and one processed image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posecli.core.text import printable_path


@dataclass(frozen=True)
class People:
    """Detections as arrays, in image pixels: boxes (N, 4) x1 y1 x2 y2, scores (N,), keypoints
    (N, K, 3), all float64, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    classes: np.ndarray | None = None  # (N,) class indices, for a model of several classes

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> People:
        """The people at `index`, in its order."""
        classes = None if self.classes is None else self.classes[index]
        return People(self.boxes[index], self.scores[index], self.keypoints[index], classes)

    @staticmethod
    def concat(parts: list[People]) -> People:
        """All parts' people, in order."""
        boxes, scores, keypoints = (np.concatenate([getattr(p, f) for p in parts])
                                    for f in ("boxes", "scores", "keypoints"))  # fmt: skip
        classes = [p.classes for p in parts if p.classes is not None]
        joined = np.concatenate(classes) if len(classes) == len(parts) else None
        return People(boxes, scores, keypoints, joined)


@dataclass(frozen=True)
class Pose:
    """One person: score, box (x1, y1, x2, y2), keypoints (K, 3) as x, y, conf, and track ID.

    `track_id` is set only by a tracker; it is the record's "id". `class_id` and `class_name`
    are set for a model of several classes; they are the record's "class".
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray
    track_id: int | None = None
    class_id: int | None = None  # with class_name, for a model of several classes
    class_name: str | None = None

    def to_dict(self) -> dict:
        """Plain-JSON form: rounded floats, lists instead of arrays."""
        return pose_records([self])[0]


def pose_records(poses: list[Pose]) -> list[dict]:
    """The plain-JSON form of poses (of one model): "id" when tracked, score, box and keypoints,
    rounded to 5 places (scores, confidences) or 2 (pixels), all poses' arrays at once."""
    if not poses:
        return []
    boxes = np.round(np.array([p.box for p in poses], np.float64), 2).tolist()
    kpts = np.array([p.keypoints for p in poses], np.float64)
    kpts = np.concatenate((np.round(kpts[..., :2], 2), np.round(kpts[..., 2:], 5)), axis=2)
    return [
        {
            **({} if p.track_id is None else {"id": p.track_id}),
            **({} if p.class_id is None else {"class": class_record(p)}),
            "score": round(float(p.score), 5),
            "box": box,
            "keypoints": keypoints,
        }
        for p, box, keypoints in zip(poses, boxes, kpts.tolist(), strict=True)
    ]


def class_record(pose: Pose) -> dict:
    """A pose's "class": its index and name."""
    return {"index": pose.class_id, "name": pose.class_name}


@dataclass(frozen=True)
class ImageResult:
    """What one input (an image, or one frame of a video) gave: size and poses, or why it failed.

    `frame` (0-based index of the decoded frame) and `time` (seconds) are set for video frames.
    """

    path: str
    width: int = 0
    height: int = 0
    poses: list[Pose] = field(default_factory=list)
    error: str | None = None
    frame: int | None = None
    time: float | None = None

    @property
    def ok(self) -> bool:
        """True when the image was read and run through the model."""
        return self.error is None

    def to_dict(self) -> dict:
        """The JSON/JSONL record for this image (see pose-result.schema.json); a failed one's
        has the error instead of the size and poses."""
        video = {} if self.frame is None else {"frame": self.frame, "time": self.time}
        where = {"image": printable_path(self.path), **video}
        if self.error is not None:
            return {**where, "error": self.error}
        return {
            **where,
            "width": self.width,
            "height": self.height,
            "poses": pose_records(self.poses),
        }
