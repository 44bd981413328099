"""The result types: a frame's people as arrays, one person's view of them, one processed image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from posecli.core.text import printable_path

PEOPLE_SHAPES = "people need boxes (N, 4), scores (N,) and keypoints (N, K, D)"


def _frozen(values: object) -> np.ndarray:
    """`values` as an array that cannot be written: itself if it already cannot be, else a copy."""
    array = np.asarray(values)
    if array.flags.writeable:
        array = array.copy()
        array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Pose:
    """One person: score, box (x1, y1, x2, y2), keypoints (K, D) as x, y(, conf), and track ID.

    `track_id` is set only by a tracker; it is the record's "id". `class_id` and `class_name`
    are set for a model of several classes; they are the record's "class". The arrays are
    read-only; poses are equal when every field is.
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray
    track_id: int | None = None
    class_id: int | None = None  # with class_name, for a model of several classes
    class_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", _frozen(self.box))
        object.__setattr__(self, "keypoints", _frozen(self.keypoints))

    def _key(self) -> tuple:
        """The fields as plain values, for equality and hashing."""
        return (float(self.score), tuple(self.box.ravel().tolist()), self.keypoints.shape,
                tuple(self.keypoints.ravel().tolist()), self.track_id, self.class_id,
                self.class_name)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pose) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict:
        """Plain-JSON form: rounded floats, lists instead of arrays."""
        return pose_records(People.from_poses([self]))[0]


@dataclass(frozen=True, eq=False)
class People:
    """A frame's people as read-only arrays, in image pixels: boxes (N, 4) x1 y1 x2 y2, scores
    (N,), keypoints (N, K, D); track `ids` (N,) once tracked; `classes` (N,) with the model's
    `class_names` for a model of several classes.

    `people[i]` is one person (a Pose), `people[mask]`, `people[2:]` or `people[index_array]`
    the People chosen; iterating gives each person's Pose, best first as decoded.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    ids: np.ndarray | None = None
    classes: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("boxes", "scores", "keypoints", "ids", "classes"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _frozen(getattr(self, name)))
        count = len(self.scores) if self.scores.ndim == 1 else -1
        shapes = (self.boxes.shape == (count, 4) and self.keypoints.ndim == 3
                  and len(self.keypoints) == count)  # fmt: skip
        if not shapes:
            raise ValueError(f"{PEOPLE_SHAPES}, not {self.boxes.shape}, {self.scores.shape} and "
                             f"{self.keypoints.shape}")  # fmt: skip
        for name in ("ids", "classes"):
            values = getattr(self, name)
            if values is not None and values.shape != (count,):
                raise ValueError(f"{name} must be ({count},) for {count} people, not "
                                 f"{values.shape}")  # fmt: skip

    @classmethod
    def empty(cls, keypoints: int = 0, dims: int = 3) -> People:
        """No people, of K = `keypoints` keypoints with D = `dims` values each."""
        return cls(np.empty((0, 4)), np.empty(0), np.empty((0, keypoints, dims)))

    @classmethod
    def from_poses(cls, poses: Iterable[Pose]) -> People:
        """The people of Pose objects; ValueError when their shapes differ."""
        poses = list(poses)
        if not poses:
            return cls.empty()
        try:
            boxes = np.array([p.box for p in poses], np.float64)
            keypoints = np.array([p.keypoints for p in poses], np.float64)
        except ValueError:
            raise ValueError(f"{PEOPLE_SHAPES}: poses of one frame differ in shape") from None
        if not keypoints.size:
            keypoints = keypoints.reshape(len(poses), 0, 3)
        ids = [p.track_id for p in poses]
        classes = [p.class_id for p in poses]
        names = {p.class_id: p.class_name for p in poses if p.class_id is not None}
        return cls(boxes, np.array([p.score for p in poses], np.float64), keypoints,
                   None if None in ids else np.array(ids, np.int64),
                   None if None in classes else np.array(classes, np.intp),
                   _class_names(names))  # fmt: skip

    def __len__(self) -> int:
        return len(self.scores)

    @overload
    def __getitem__(self, index: int | np.integer) -> Pose: ...

    @overload
    def __getitem__(self, index: slice | np.ndarray | list) -> People: ...

    def __getitem__(self, index: int | np.integer | slice | np.ndarray | list) -> Pose | People:
        if isinstance(index, int | np.integer):
            return self.pose(int(index))
        return self.take(index)

    def __iter__(self) -> Iterator[Pose]:
        return (self.pose(i) for i in range(len(self)))

    def __add__(self, other: People) -> People:
        return People.concat([self, other])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):  # as the list of Poses it reads as
            return list(self) == other
        if not isinstance(other, People):
            return NotImplemented
        arrays = ("boxes", "scores", "keypoints", "ids", "classes")
        return self.class_names == other.class_names and all(
            _same(getattr(self, name), getattr(other, name)) for name in arrays
        )

    __hash__ = None  # type: ignore[assignment]  # arrays: equal by value, not hashable

    def pose(self, i: int) -> Pose:
        """Person `i` (negative counts from the end) as a Pose over the same arrays."""
        i = range(len(self))[i]
        class_id = None if self.classes is None else int(self.classes[i])
        name = None if class_id is None or self.class_names is None else self.class_names[class_id]
        track = None if self.ids is None else int(self.ids[i])
        return Pose(float(self.scores[i]), self.boxes[i], self.keypoints[i], track, class_id, name)

    def take(self, index: slice | np.ndarray | list) -> People:
        """The people at `index` (a slice, a boolean mask or indices), in its order."""
        ids = None if self.ids is None else self.ids[index]
        classes = None if self.classes is None else self.classes[index]
        return People(self.boxes[index], self.scores[index], self.keypoints[index], ids, classes,
                      self.class_names)  # fmt: skip

    @staticmethod
    def concat(parts: list[People]) -> People:
        """All parts' people, in order (ids and classes kept when every part has them)."""
        boxes, scores, keypoints = (np.concatenate([getattr(p, f) for p in parts])
                                    for f in ("boxes", "scores", "keypoints"))  # fmt: skip
        ids, classes = (_joined([getattr(p, f) for p in parts]) for f in ("ids", "classes"))
        return People(boxes, scores, keypoints, ids, classes, parts[0].class_names)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two optional arrays are both absent, or equal in shape and values."""
    return a is b is None or (a is not None and b is not None and np.array_equal(a, b))


def _joined(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    """The arrays end to end, or None when any is absent."""
    return None if any(a is None for a in arrays) else np.concatenate(arrays)  # type: ignore[arg-type]


def _class_names(names: dict[int, str | None]) -> tuple[str, ...] | None:
    """Class names by index, from the poses that name theirs (None when none does)."""
    if not names or None in names.values():
        return None
    return tuple(str(names.get(i, "")) for i in range(max(names) + 1))


def pose_records(people: People) -> list[dict]:
    """The plain-JSON form of people (of one model): "id" when tracked, "class" for a model of
    several classes, score, box and keypoints, rounded to 5 places (scores, confidences) or 2
    (pixels), all people's arrays at once."""
    if not len(people):
        return []
    boxes = np.round(people.boxes.astype(np.float64), 2).tolist()
    kpts = people.keypoints.astype(np.float64)
    kpts = np.concatenate((np.round(kpts[..., :2], 2), np.round(kpts[..., 2:], 5)), axis=2)
    ids = [None] * len(people) if people.ids is None else people.ids.tolist()
    return [
        {
            **({} if track is None else {"id": track}),
            **({} if kind is None else {"class": kind}),
            "score": round(score, 5),
            "box": box,
            "keypoints": keypoints,
        }
        for track, kind, score, box, keypoints in zip(
            ids, class_records(people), people.scores.tolist(), boxes, kpts.tolist(), strict=True
        )
    ]


def class_records(people: People) -> list[dict | None]:
    """Each person's "class", its index and name (None for a model of one class)."""
    if people.classes is None:
        return [None] * len(people)
    names = people.class_names
    return [{"index": c, "name": None if names is None else names[c]}
            for c in people.classes.tolist()]  # fmt: skip


@dataclass(frozen=True)
class ImageResult:
    """What one input (an image, or one frame of a video) gave: size and people, or why it failed.

    `poses` are the People found (a list of Pose objects given is turned into People); `frame`
    (0-based index of the decoded frame) and `time` (seconds) are set for video frames.
    """

    path: str
    width: int = 0
    height: int = 0
    poses: People = field(default_factory=People.empty)
    error: str | None = None
    frame: int | None = None
    time: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.poses, People):
            object.__setattr__(self, "poses", People.from_poses(self.poses))

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
