"""Person IDs across video frames: ByteTrack's two-stage matching on a box Kalman filter, with
keypoint similarity (OKS) in the matching cost, and optional One Euro keypoint smoothing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from posecli.core.geometry import (
    box_areas,
    box_iou_matrix,
    inside,
    match,
    oks_matrix,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from posecli.core.keypoints import COCO17
from posecli.core.results import People, Pose
from posecli.tracking.kalman import kalman_predict, kalman_start, kalman_update
from posecli.tracking.smoothing import KeypointSmoother

EXTENT_AGE = 1.0  # seconds a person's extent is kept while their boxes are smaller
LOW_MATCH = 0.5  # ByteTrack's cost limit for its second stage (low-score detections)
UNCONFIRMED_MATCH = 0.7  # and for a new track's second frame
MASK_AREA = 0.53  # a person's area over their box's area, for the OKS scale (as Ultralytics)
MAX_ZOOM = 100.0  # a camera transform zooming more than this either way is taken as broken
MAX_STEP = 1e6  # frames the Kalman filter predicts over at most (a longer gap: as long as this)
KEYPOINTS_SHAPE = "keypoints must be (K, 3) arrays, with one K for all poses of a frame"


@dataclass(frozen=True)
class TrackerSettings:
    """Association settings; the thresholds and buffer default to ByteTrack's values."""

    high: float = 0.25  # detections at least this sure are matched first
    low: float = 0.1  # detections from low up to high are matched to tracked people second
    new_track: float = 0.25  # an unmatched detection at least this sure starts a track
    buffer: int = 30  # frames at 30 fps (so 1 s at any rate) that a lost track is kept
    match: float = 0.8  # the highest first-stage cost, 1 - similarity x score, still matched
    keypoint_weight: float = 0.3  # similarity = (1 - w) box IoU + w OKS of the keypoints
    keypoint_scale: float = 6.0  # OKS sigmas times this (1: COCO's; 6 tolerates moving cameras)
    use_keypoints: bool = True  # False: box IoU only, ByteTrack's own association
    refind: float = 0.7  # a detection this much inside a lost person's extent finds them (1: off)
    low_refind: float = 0.85  # and one under `high` this much inside (1: off)
    duplicate: float = 0.3  # no new track on a detection at this IoU with a matched or surer one

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 1 or not 0 <= self.new_track <= 1:
            raise ValueError("thresholds must satisfy 0 <= low <= high <= 1, new_track in 0..1")
        if not 0 <= self.match <= 1 or not 0 <= self.keypoint_weight <= 1:
            raise ValueError("match and keypoint_weight must be in 0..1")
        if not (math.isfinite(self.buffer) and self.buffer >= 0):
            raise ValueError("buffer must be finite and >= 0")
        if not all(0 < v <= 1 for v in (self.duplicate, self.refind, self.low_refind)):
            raise ValueError("duplicate, refind and low_refind must be in (0, 1]")
        if not (math.isfinite(self.keypoint_scale) and self.keypoint_scale > 0):
            raise ValueError("keypoint_scale must be positive and finite")


def default_sigmas(k: int) -> np.ndarray:
    """OKS sigmas for K keypoints: COCO's for 17, otherwise 1/K each (as Ultralytics)."""
    return COCO17.oks_sigmas() if k == COCO17.count else np.full(k, 1.0 / max(k, 1))


@dataclass
class _Tracks:
    """The people being tracked, one row each."""

    ids: np.ndarray  # (N,) int64, 0 until the track is confirmed
    mean: np.ndarray  # (N, 8) Kalman state: box centre, width, height, and their velocities
    var: np.ndarray  # (N, 3, 4) variance of each box coordinate, covariance with its
    # velocity, variance of the velocity (ByteTrack's 8x8 covariance, which stays that sparse)
    keypoints: np.ndarray  # (N, K, 3) at the last match
    anchor: np.ndarray  # (N, 4) the filtered box (centre, size) at the last match
    seen: np.ndarray  # (N,) time of the last match, seconds
    tracked: np.ndarray  # (N,) bool, matched in the latest frame
    extent: np.ndarray  # (N, 4) xyxy, the person's box before the latest occlusion shrank it
    extent_time: np.ndarray  # (N,) when the extent was last renewed, seconds

    @classmethod
    def empty(cls, k: int) -> _Tracks:
        """No tracks, for K keypoints."""
        return cls(
            np.empty(0, np.int64), np.empty((0, 8)), np.empty((0, 3, 4)),
            np.empty((0, k, 3)), np.empty((0, 4)), np.empty(0), np.empty(0, bool),
            np.empty((0, 4)), np.empty(0),
        )  # fmt: skip

    def take(self, index: np.ndarray) -> _Tracks:
        """The tracks at `index` (integer or boolean)."""
        return _Tracks(*(getattr(self, f.name)[index] for f in fields(self)))

    def __add__(self, other: _Tracks) -> _Tracks:
        return _Tracks(
            *(np.concatenate((getattr(self, f.name), getattr(other, f.name))) for f in fields(self))
        )

    def __len__(self) -> int:
        return len(self.ids)


class PoseTracker:
    """Gives each person a track ID that stays with them from frame to frame.

    `update(poses, time)` takes one frame's poses (all of a model's output down to `low`) and
    returns those that belong to a confirmed track, in input order, each with its `track_id`;
    with `smooth`, their keypoints are One Euro filtered. IDs count up from 1 and are never
    reused. Detections that start no track are dropped: under `low`, unmatched ones under
    `new_track` or overlapping a matched or surer one (`duplicate`), and a new track's first
    frame after the first (it is output from its second frame on, when it is matched again).
    Use one tracker per video.
    """

    def __init__(
        self,
        settings: TrackerSettings | None = None,
        *,
        fps: float = 30.0,
        sigmas: np.ndarray | None = None,
        smooth: bool | KeypointSmoother = False,
    ):
        if not (math.isfinite(fps) and fps > 0 and math.isfinite(1 / fps)):
            raise ValueError("fps must be positive and finite")
        self.settings = settings or TrackerSettings()
        self.fps = fps
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64).ravel()
        if self.sigmas is not None and not (np.isfinite(self.sigmas) & (self.sigmas > 0)).all():
            raise ValueError("sigmas must be positive and finite")
        self.smoother = KeypointSmoother() if smooth is True else smooth or None
        self._tracks: _Tracks | None = None
        self._time: float | None = None
        self._next_id = 1

    def update(
        self,
        poses: People | Iterable[Pose],
        time: float | None = None,
        camera: np.ndarray | None = None,
    ) -> People:
        """The poses of one frame at `time` seconds that belong to tracks, with their IDs.

        A missing or non-finite time, or one that does not increase, is taken as one frame after
        the last. `camera`, a 2x3 transform of the last frame's pixels to this one's (see
        `posecli.camera_motion`), moves the tracks with a moving camera; one that is not finite
        or zooms by more than MAX_ZOOM either way is ignored. Boxes and scores must be finite;
        keypoints that are not count as unseen. A frame refused with ValueError changes nothing.
        """
        people = poses if isinstance(poses, People) else _people(list(poses))
        boxes, scores, kpts = _arrays(people)
        if len(people):
            self._check_keypoints(kpts.shape[1])
        camera = usable_camera(camera)
        first = self._time is None
        now = self._advance(time)
        if camera is not None and self._tracks is not None:
            self._move_with_camera(camera)
        if self._tracks is None:
            if not len(people):
                return people
            self._tracks = _Tracks.empty(kpts.shape[1])
        elif not len(people):
            kpts = np.empty((0, *self._tracks.keypoints.shape[1:]))
        owner = self._associate(boxes, scores, unseen_zeroed(kpts), now, first,
                                refind=camera is not None)  # fmt: skip
        return self._output(people, owner, kpts, boxes, now)

    def _check_keypoints(self, k: int) -> None:
        """Refuse a frame whose poses have a number of keypoints that the tracks or the sigmas
        do not."""
        if self._tracks is not None and k != self._tracks.keypoints.shape[1]:
            raise ValueError("the number of keypoints changed between frames")
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"{len(self.sigmas)} sigmas given for {k} keypoints")

    def _advance(self, time: float | None) -> float:
        """The frame's time, and every track's Kalman state moved on to it."""
        last = self._time
        usable = time is not None and math.isfinite(time) and (last is None or time > last)
        now = time if usable else None
        if now is None:
            now = 0.0 if last is None else last + 1.0 / self.fps
        if last is not None and self._tracks is not None and len(self._tracks):
            self._expire(now)
            tracks = self._tracks
            if not tracks.tracked.all():
                tracks.mean[~tracks.tracked, 6:] = 0.0  # a lost person's box stops changing size
            kalman_predict(tracks.mean, tracks.var, min((now - last) * self.fps, MAX_STEP))
        self._time = now
        return now

    def _expire(self, now: float) -> None:
        """Drop the lost tracks missed for longer than the buffer by `now`, before matching (the
        one place tracks run out), so that a jump in time (dropped frames, a seek) ends them as
        the frames between would; a track matched in the last frame stays, however long ago."""
        assert self._tracks is not None
        missed = now - self._tracks.seen - 1.0 / self.fps
        keep = self._tracks.tracked | (missed <= self.settings.buffer / 30.0 + 1e-6)
        if not keep.all():
            self._tracks = self._tracks.take(keep)

    def _associate(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        kpts: np.ndarray,
        now: float,
        first: bool,
        refind: bool,
    ) -> np.ndarray:
        """Match this frame's detections to tracks in stages (confirmed tracks to sure
        detections, tracked ones to unsure, lost people in their extents, new tracks, and new
        people); the (M,) track ID of each (0: none). Lost people are looked for only with
        `refind` (the camera's motion is known, so the extents are where those people are)."""
        s = self.settings
        high = np.nonzero(scores >= s.high)[0]
        low = np.nonzero((scores >= s.low) & (scores < s.high))[0]
        track_of = np.full(len(scores), -1)  # row in the tracks of each detection's track
        missed = self._match_confirmed(high, boxes, scores, kpts, track_of)
        self._match_tracked_to_low(missed, low, boxes, kpts, track_of)
        high = high[track_of[high] < 0]
        if refind:
            self._refind_lost(missed, high, low, boxes, scores, track_of)
        self._renew_extents(track_of, boxes, now)
        high = high[track_of[high] < 0]
        self._match_unconfirmed(high, boxes, scores, kpts, track_of)
        fresh = self._not_duplicates(high[(track_of[high] < 0) & (scores[high] >= s.new_track)],
                                     np.nonzero(track_of >= 0)[0], boxes, scores)  # fmt: skip
        owner = np.zeros(len(scores), dtype=np.int64)
        owner[track_of >= 0] = self._correct(track_of, boxes, kpts, now)
        owner[fresh] = self._start(fresh, boxes, kpts, now, confirm=first)
        return owner

    def _match_confirmed(self, high: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                         kpts: np.ndarray, track_of: np.ndarray) -> np.ndarray:  # fmt: skip
        """Stage 1: confirmed tracks to sure detections, by similarity times score; the rows of
        the confirmed tracks left unmatched."""
        assert self._tracks is not None
        confirmed = np.nonzero(self._tracks.ids > 0)[0]
        fused = 1 - self._similarity(confirmed, high, boxes, kpts) * scores[high]
        rows, cols = match(fused, self.settings.match)
        track_of[high[cols]] = confirmed[rows]
        unmatched = np.ones(len(confirmed), bool)
        unmatched[rows] = False
        return confirmed[unmatched]

    def _match_tracked_to_low(self, missed: np.ndarray, low: np.ndarray, boxes: np.ndarray,
                              kpts: np.ndarray, track_of: np.ndarray) -> None:  # fmt: skip
        """Stage 2 (ByteTrack's second): people tracked in the last frame and still unmatched to
        unsure detections, by similarity alone."""
        assert self._tracks is not None
        left = missed[self._tracks.tracked[missed]]
        if len(left) and len(low):
            rows, cols = match(1 - self._similarity(left, low, boxes, kpts), LOW_MATCH)
            track_of[low[cols]] = left[rows]

    def _refind_lost(self, missed: np.ndarray, high: np.ndarray, low: np.ndarray,
                     boxes: np.ndarray, scores: np.ndarray,
                     track_of: np.ndarray) -> None:  # fmt: skip
        """Stages 3 and 4: lost people found again in their extents, by the sure detections
        that could start a track, then by unsure ones."""
        assert self._tracks is not None
        s = self.settings
        lost = missed[~self._tracks.tracked[missed]]
        self._refind(lost, high[scores[high] >= s.new_track], boxes, track_of, s.refind)
        lost = lost[~np.isin(lost, track_of)]
        self._refind(lost, low[track_of[low] < 0], boxes, track_of, s.low_refind)

    def _match_unconfirmed(self, high: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                           kpts: np.ndarray, track_of: np.ndarray) -> None:  # fmt: skip
        """Stage 5: tracks seen in one frame so far to the sure detections left."""
        assert self._tracks is not None
        unconfirmed = np.nonzero(self._tracks.ids == 0)[0]
        if len(unconfirmed) and len(high):
            fused = 1 - self._similarity(unconfirmed, high, boxes, kpts) * scores[high]
            rows, cols = match(fused, UNCONFIRMED_MATCH)
            track_of[high[cols]] = unconfirmed[rows]

    def _renew_extents(self, track_of: np.ndarray, boxes: np.ndarray, now: float) -> None:
        """A matched person's extent becomes their box unless it shrank (a person being hidden),
        and in any case once the extent is over a second old."""
        assert self._tracks is not None
        tracks = self._tracks
        dets = np.nonzero(track_of >= 0)[0]
        rows = track_of[dets]
        renew = box_areas(boxes[dets]) >= box_areas(tracks.extent[rows])
        renew |= now - tracks.extent_time[rows] > EXTENT_AGE
        tracks.extent[rows[renew]] = boxes[dets[renew]]
        tracks.extent_time[rows[renew]] = now

    def _refind(
        self,
        lost: np.ndarray,
        dets: np.ndarray,
        boxes: np.ndarray,
        track_of: np.ndarray,
        least: float,
    ) -> None:
        """Match lost tracks to unmatched detections that lie at least `least` inside the lost
        person's extent: someone seen again on the other side of what hid them."""
        assert self._tracks is not None
        if len(lost) and len(dets) and least < 1:
            share = inside(boxes[dets], self._tracks.extent[lost]).T
            rows, cols = match(1 - share, 1 - least)
            track_of[dets[cols]] = lost[rows]

    def _move_with_camera(self, camera: np.ndarray) -> None:
        """Move every track (boxes, velocities, keypoints, extents) by the camera's 2x3
        transform from the last frame to this one."""
        assert self._tracks is not None
        t = self._tracks
        turn, shift = camera[:, :2], camera[:, 2]
        zoom = math.sqrt(abs(float(np.linalg.det(turn))))
        for boxes in (t.mean, t.anchor):
            boxes[:, :2] = boxes[:, :2] @ turn.T + shift
            boxes[:, 2:4] *= zoom
        t.mean[:, 4:6] = t.mean[:, 4:6] @ turn.T
        t.mean[:, 6:] *= zoom
        t.var *= zoom**2
        t.keypoints[..., :2] = t.keypoints[..., :2] @ turn.T + shift
        corners = t.extent.reshape(-1, 2, 2) @ turn.T + shift
        t.extent[:] = np.concatenate((corners.min(axis=1), corners.max(axis=1)), axis=1)

    def _not_duplicates(
        self, fresh: np.ndarray, taken: np.ndarray, boxes: np.ndarray, scores: np.ndarray
    ) -> np.ndarray:
        """The unmatched detections that may start tracks: not a second box on a person matched
        in this frame or on one of a surer new detection (box IoU >= `duplicate`, such as an
        upper-body box NMS left beside a whole-body one), which would make two tracks that take
        turns on one person. Equal scores go to the earlier detection; `duplicate` 1 is off."""
        if not len(fresh) or self.settings.duplicate >= 1:
            return fresh
        fresh = fresh[np.lexsort((fresh, -scores[fresh]))]
        others = np.concatenate((taken, fresh))
        overlap = box_iou_matrix(boxes[fresh], boxes[others]) >= self.settings.duplicate
        surer = np.ones((len(fresh), len(others)), bool)
        surer[:, len(taken) :] = np.tri(len(fresh), k=-1, dtype=bool)
        return np.sort(fresh[~(overlap & surer).any(axis=1)])

    def _similarity(
        self, rows: np.ndarray, dets: np.ndarray, boxes: np.ndarray, kpts: np.ndarray
    ) -> np.ndarray:
        """(len(rows), len(dets)) similarity of tracks to detections: IoU, or IoU and OKS."""
        assert self._tracks is not None
        if not len(rows) or not len(dets):
            return np.zeros((len(rows), len(dets)))
        mean = self._tracks.mean[rows, :4]
        iou = box_iou_matrix(xywh_to_xyxy(mean), boxes[dets])
        if not self.settings.use_keypoints:
            return iou
        anchor = self._tracks.anchor[rows]
        scale = (mean[:, 2:] / np.maximum(anchor[:, 2:], 1e-6))[:, None, :]
        predicted = self._tracks.keypoints[rows].copy()
        predicted[..., :2] = mean[:, None, :2] + (predicted[..., :2] - anchor[:, None, :2]) * scale
        sigmas = default_sigmas(kpts.shape[1]) if self.sigmas is None else self.sigmas
        areas = MASK_AREA * mean[:, 2] * mean[:, 3]
        oks, weight = oks_matrix(
            predicted, kpts[dets], areas, sigmas * self.settings.keypoint_scale
        )
        w = self.settings.keypoint_weight
        return np.where(weight > 0, (1 - w) * iou + w * oks, iou)

    def _correct(
        self, track_of: np.ndarray, boxes: np.ndarray, kpts: np.ndarray, now: float
    ) -> np.ndarray:
        """Update matched tracks, confirm new ones seen twice, mark the unmatched lost (they run
        out in `_expire`) and drop unconfirmed ones not matched again; the IDs of the matched
        detections' tracks."""
        assert self._tracks is not None
        tracks = self._tracks
        dets = np.nonzero(track_of >= 0)[0]
        rows = track_of[dets]
        mean, var = tracks.mean[rows], tracks.var[rows]
        kalman_update(mean, var, xyxy_to_xywh(boxes[dets]))
        tracks.mean[rows], tracks.var[rows] = mean, var
        tracks.anchor[rows] = mean[:, :4]
        tracks.keypoints[rows] = kpts[dets]
        tracks.seen[rows] = now
        tracks.tracked[:] = False
        tracks.tracked[rows] = True
        new = rows[tracks.ids[rows] == 0]
        tracks.ids[new] = self._take_ids(len(new))
        matched_ids = tracks.ids[rows]
        if not (tracks.ids > 0).all():  # an unconfirmed track not matched again is dropped
            self._tracks = tracks.take(tracks.ids > 0)
        return matched_ids

    def _start(
        self, dets: np.ndarray, boxes: np.ndarray, kpts: np.ndarray, now: float, confirm: bool
    ) -> np.ndarray:
        """New tracks for detections `dets`, confirmed at once in a sequence's first frame; their
        IDs (0 while unconfirmed)."""
        assert self._tracks is not None
        if not len(dets):
            return np.empty(0, np.int64)
        xywh = xyxy_to_xywh(boxes[dets])
        mean, var = kalman_start(xywh)
        ids = self._take_ids(len(dets)) if confirm else np.zeros(len(dets), np.int64)
        times = np.full(len(dets), now)
        new = _Tracks(ids, mean, var, kpts[dets], xywh, times, np.ones(len(dets), bool),
                      boxes[dets].copy(), times.copy())  # fmt: skip
        self._tracks = self._tracks + new
        return ids

    def _take_ids(self, n: int) -> np.ndarray:
        """The next n IDs."""
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _output(
        self, people: People, owner: np.ndarray, kpts: np.ndarray, boxes: np.ndarray, now: float
    ) -> People:
        """The people whose track is confirmed, with their IDs (and smoothed keypoints), their
        boxes' corners in order."""
        out = np.nonzero(owner > 0)[0]
        ids = owner[out]
        chosen = people.take(out)
        keypoints = chosen.keypoints
        if self.smoother is not None:
            sizes = (boxes[out, 2] - boxes[out, 0] + boxes[out, 3] - boxes[out, 1]) / 2
            keypoints = self.smoother(ids, kpts[out], sizes, now).astype(np.float32)
        return People(boxes[out], chosen.scores, keypoints, ids, chosen.classes,
                      chosen.class_names)  # fmt: skip


def usable_camera(camera: np.ndarray | None) -> np.ndarray | None:
    """The 2x3 camera transform as floats, or None if there is none or it is broken (not finite,
    or zooming by more than MAX_ZOOM either way); ValueError if it is not 2x3."""
    if camera is None:
        return None
    camera = np.asarray(camera, np.float64)
    if camera.size != 6:
        raise ValueError(f"camera must be a 2x3 transform, not {camera.shape}")
    camera = camera.reshape(2, 3)
    turn = camera[:, :2]
    if not np.isfinite(camera).all() or np.abs(turn).max() > MAX_ZOOM:
        return None
    return camera if abs(float(np.linalg.det(turn))) >= MAX_ZOOM**-2 else None


def unseen_zeroed(kpts: np.ndarray) -> np.ndarray:
    """(M, K, 3) keypoints with the unseen (not finite) ones all zero: no weight in matching."""
    return np.where(np.isfinite(kpts).all(axis=2, keepdims=True), kpts, 0.0)


def _people(poses: list[Pose]) -> People:
    """The people of a frame given as Pose objects, their shapes checked."""
    if poses:
        boxes = _stacked([p.box for p in poses], "boxes must be (x1, y1, x2, y2)")
        if boxes.shape[1:] != (4,):
            raise ValueError("boxes must be (x1, y1, x2, y2)")
        _stacked([p.keypoints for p in poses], KEYPOINTS_SHAPE)
    return People.from_poses(poses)


def _arrays(people: People) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (M, 4) with their corners in order, scores (M,) and keypoints (M, K, 3), in float64
    and checked (finite boxes and scores)."""
    kpts = people.keypoints.astype(np.float64)
    if kpts.shape[2] != 3:
        raise ValueError(KEYPOINTS_SHAPE)
    boxes = people.boxes.astype(np.float64)
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    corners = boxes.reshape(-1, 2, 2)
    boxes = np.concatenate((corners.min(axis=1), corners.max(axis=1)), axis=1)  # x2 < x1 too
    scores = people.scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return boxes, scores, kpts


def _stacked(arrays: list, reason: str) -> np.ndarray:
    """The arrays of a frame's poses as one float64 array; `reason` if their shapes differ."""
    try:
        return np.array(arrays, dtype=np.float64)
    except ValueError:
        raise ValueError(reason) from None
