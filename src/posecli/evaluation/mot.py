"""The CLEAR-MOT and ID scores of a tracking run against ground truth."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np

from posecli.core.geometry import box_iou_matrix, match


def iou_distances(gt_boxes: np.ndarray, boxes: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """(G, H) distances 1 - IoU of xyxy boxes, NaN (no match possible) where IoU < min_iou."""
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    iou = box_iou_matrix(gt_boxes, np.asarray(boxes, np.float64).reshape(-1, 4))
    return np.where(iou >= min_iou, 1 - iou, np.nan)


@dataclass
class MotCounts:
    """Event counts of a run; they add up over sequences (MOTChallenge's combined scores)."""

    frames: int = 0
    objects: int = 0  # ground-truth boxes
    predictions: int = 0  # tracker boxes
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    switches: int = 0
    distance: float = 0.0  # summed over matches
    id_true_positives: int = 0
    switch_gaps: list[int] = field(default_factory=list)  # frames each switching object had
    # gone unmatched just before its switch (0: matched in the previous frame)

    def __add__(self, other: MotCounts) -> MotCounts:
        return MotCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def mota(self) -> float:
        """CLEAR-MOT accuracy, 1 - (misses + false positives + switches) / objects."""
        errors = self.misses + self.false_positives + self.switches
        return 1 - errors / self.objects if self.objects else float("nan")

    @property
    def motp(self) -> float:
        """Mean distance of the matched pairs (CLEAR-MOT precision, lower is better)."""
        return self.distance / self.matches if self.matches else float("nan")

    @property
    def idf1(self) -> float:
        """ID F1: the share of boxes on the same identity under the best global ID mapping."""
        total = self.objects + self.predictions
        return 2 * self.id_true_positives / total if total else float("nan")


class MotAccumulator:
    """CLEAR-MOT (Bernardin & Stiefelhagen 2008) and ID (Ristani et al. 2016) scoring, frame by
    frame, with MOTChallenge's rules: a pair matched in the previous frame stays matched while
    it is possible; an object matched to another track than at its last match is a switch."""

    def __init__(self) -> None:
        self.counts = MotCounts()
        self._previous: dict[int, int] = {}  # object -> track, matched in the previous frame
        self._last: dict[int, int] = {}  # object -> track at its last match
        self._last_frame: dict[int, int] = {}  # object -> frame index of its last match
        self._pairs: defaultdict[tuple[int, int], int] = defaultdict(int)  # frames possible

    def update(self, objects: np.ndarray, tracks: np.ndarray, distances: np.ndarray) -> None:
        """One frame: object IDs (G,), track IDs (H,), distances (G, H), NaN where no match."""
        objects, tracks = np.asarray(objects, np.int64), np.asarray(tracks, np.int64)
        dist = np.asarray(distances, np.float64).reshape(len(objects), len(tracks))
        valid = np.isfinite(dist)
        for i, j in zip(*np.nonzero(valid), strict=True):
            self._pairs[int(objects[i]), int(tracks[j])] += 1
        rows, cols = self._frame_matches(objects, tracks, dist, valid)
        c = self.counts
        c.frames += 1
        c.objects += len(objects)
        c.predictions += len(tracks)
        c.matches += len(rows)
        c.misses += len(objects) - len(rows)
        c.false_positives += len(tracks) - len(rows)
        c.distance += float(dist[rows, cols].sum())
        matched = dict(zip(objects[rows].tolist(), tracks[cols].tolist(), strict=True))
        switched = [o for o, t in matched.items() if self._last.get(o, t) != t]
        c.switches += len(switched)
        c.switch_gaps += [c.frames - 2 - self._last_frame[o] for o in switched]
        self._last.update(matched)
        self._last_frame.update(dict.fromkeys(matched, c.frames - 1))
        self._previous = matched

    def _frame_matches(
        self, objects: np.ndarray, tracks: np.ndarray, dist: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """This frame's one-to-one pairs: previous pairs first, then the least total distance."""
        if not valid.any():
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        kept = np.array([self._previous.get(int(o), -1) for o in objects])[:, None] == tracks
        gain = np.where(valid, 1000.0 * kept + (np.nanmax(dist) + 1 - dist), 0.0)
        return match(-gain, -1e-9)  # every possible pair gains 1 or more

    def finish(self) -> MotCounts:
        """The counts with the ID true positives of the best one-to-one object-track mapping."""
        counts = MotCounts(**{f.name: getattr(self.counts, f.name) for f in fields(self.counts)})
        counts.switch_gaps = list(counts.switch_gaps)
        if self._pairs:
            objects = sorted({o for o, _ in self._pairs})
            tracks = sorted({t for _, t in self._pairs})
            together = np.zeros((len(objects), len(tracks)))
            row, col = {o: i for i, o in enumerate(objects)}, {t: j for j, t in enumerate(tracks)}
            for (o, t), n in self._pairs.items():
                together[row[o], col[t]] = n
            rows, cols = match(-together, -1e-9)
            counts.id_true_positives = int(together[rows, cols].sum())
        return counts
