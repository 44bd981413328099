"""Trackers run on the clips and scored against the ground truth (CLEAR-MOT and IDF1), the best
any tracker could score with the same detections, and how well the camera motion is measured."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.tracking.clips import Clip
from benchmarks.tracking.synthesis import FPS, HEIGHT, MIN_HEIGHT, WIDTH, Truth
from posecli.core.geometry import box_iou_matrix
from posecli.core.results import Pose
from posecli.evaluation.mot import MotAccumulator, MotCounts, iou_distances
from posecli.tracking.tracker import PoseTracker, TrackerSettings

MATCH_IOU = 0.5  # box IoU at which a box finds a person (MOTChallenge's)
INSIDE = 0.5  # share of an unmatched box inside an ignore region that makes it ignored
EVIDENCE = 0.3  # box IoU at which a detection keeps a person's track alive, for the bound
HEIGHT_BINS = (MIN_HEIGHT, 60, 80, 120, 200)  # px, lower edges of the detection-rate bands
CORNER_OFF = 3.0  # px: a measured camera motion this far off at a corner counts as wrong


def run_tracker(
    detections: list[list[Pose]],
    settings: TrackerSettings,
    smooth: bool = False,
    cameras: list[np.ndarray] | None = None,
) -> tuple[list[list[Pose]], float]:
    """Tracked poses per frame (moved with the camera's measured motion when given), and the
    tracker's CPU seconds in all (this thread's time, so other processes do not count)."""
    tracker = PoseTracker(settings, fps=FPS, smooth=smooth)
    out, spent = [], 0.0
    for i, poses in enumerate(detections):
        start = time.thread_time()
        out.append(tracker.update(poses, i / FPS, None if cameras is None else cameras[i]))
        spent += time.thread_time() - start
    return out, spent


def boxes_of(poses: list[Pose]) -> np.ndarray:
    """(N, 4) the poses' boxes."""
    return np.array([p.box for p in poses], np.float64).reshape(-1, 4)


def above_low(poses: list[Pose]) -> list[Pose]:
    """The poses the tracker takes (score at least its `low`)."""
    low = TrackerSettings().low
    return [p for p in poses if p.score >= low]


def scored_poses(poses: list[Pose], truth: Truth) -> list[Pose]:
    """Poses minus those on ignore regions: matched to one at MATCH_IOU (against all people at
    once, as MOTChallenge), or unmatched and at least INSIDE inside one or a crowd region."""
    boxes = boxes_of(poses)
    if not len(poses):
        return poses
    drop = np.zeros(len(poses), bool)
    matched = np.zeros(len(poses), bool)
    everyone = np.concatenate((truth.boxes, truth.ignore))
    if len(everyone):
        iou = box_iou_matrix(everyone, boxes)
        rows, cols = linear_sum_assignment(iou, maximize=True)
        hit = iou[rows, cols] >= MATCH_IOU
        matched[cols[hit]] = True
        drop[cols[hit & (rows >= len(truth.boxes))]] = True
    regions = np.concatenate((truth.ignore, truth.crowd))
    if len(regions):
        lo = np.maximum(boxes[:, None, :2], regions[None, :, :2])
        hi = np.minimum(boxes[:, None, 2:], regions[None, :, 2:])
        inside = np.prod(np.clip(hi - lo, 0, None), axis=2)
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        drop |= ~matched & (inside / np.maximum(area, 1e-9)[:, None] >= INSIDE).any(axis=1)
    return [p for p, d in zip(poses, drop, strict=True) if not d]


def found_people(truth: Truth, detections: list[Pose]) -> np.ndarray:
    """(G,) whether a detection finds each scored person of the frame (at MATCH_IOU)."""
    distances = iou_distances(truth.boxes, boxes_of(detections), MATCH_IOU)
    return np.isfinite(distances).any(axis=1)


def detected_truth(truth: Truth, detections: list[Pose]) -> Truth:
    """The frame's ground truth with the people that no detection finds turned into ignore
    regions: what is left is what association alone decides."""
    found = found_people(truth, detections)
    return replace(
        truth, ids=truth.ids[found], boxes=truth.boxes[found], keypoints=truth.keypoints[found],
        areas=truth.areas[found], ignore=np.concatenate((truth.ignore, truth.boxes[~found])),
        ignore_ids=np.concatenate((truth.ignore_ids, truth.ids[~found])),
    )  # fmt: skip


def mot_counts(outputs: list[list[Pose]], truth: list[Truth]) -> MotCounts:
    """CLEAR-MOT and ID counts of one tracked sequence."""
    acc = MotAccumulator()
    for poses, t in zip(outputs, truth, strict=True):
        poses = scored_poses(poses, t)
        ids = np.array([p.track_id for p in poses], np.int64)
        acc.update(t.ids, ids, iou_distances(t.boxes, boxes_of(poses), MATCH_IOU))
    return acc.finish()


@dataclass
class Row:
    """One tracker on one set of clips: against all people, and against detected ones."""

    name: str
    counts: MotCounts
    detected: MotCounts
    people: int
    frames: int
    seconds: float | None  # tracker CPU time, None when not measured

    @property
    def switches_per_10(self) -> float:
        """ID switches per 10 people."""
        return 10 * self.counts.switches / self.people


def evaluate(name: str, settings: TrackerSettings, clips: list[Clip], camera: bool = True) -> Row:
    """One tracker over clips, with the camera's measured motion or not."""
    outputs, seconds = [], 0.0
    for clip in clips:
        cameras = clip.camera.transforms if camera else None
        out, spent = run_tracker(clip.detections, settings, cameras=cameras)
        outputs.append(out)
        seconds += spent
    return score_row(name, clips, outputs, seconds)


def score_row(name: str, clips: list[Clip], outputs: list[list[list[Pose]]],
              seconds: float | None) -> Row:  # fmt: skip
    """The row of one tracker's outputs on clips, against all people and against those the
    clips' detections (score >= low) find."""
    total, detected = MotCounts(), MotCounts()
    for clip, out in zip(clips, outputs, strict=True):
        truth = clip.sequence.truth
        total += mot_counts(out, truth)
        found = [detected_truth(t, above_low(d)) for t, d in zip(truth, clip.detections,
                                                                   strict=True)]  # fmt: skip
        detected += mot_counts(out, found)
    people = sum(clip.sequence.people for clip in clips)
    return Row(name, total, detected, people, total.frames, seconds)


def read_mot(path: Path, frames: int) -> list[list[Pose]]:
    """The tracked boxes of a MOTChallenge file, per frame, as poses without keypoints."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2).reshape(-1, 10)
    out: list[list[Pose]] = [[] for _ in range(frames)]
    for frame, track, x, y, w, h, score in rows[:, :7]:
        box = np.array([x, y, x + w, y + h])
        out[int(frame) - 1].append(Pose(float(score), box, np.zeros((0, 3)), int(track)))
    return out


def reference_row(name: str, clips: list[Clip], directory: Path) -> Row:
    """The row of the MOTChallenge files `directory/<video>.txt` written by another tracker."""
    outputs = [read_mot(directory / f"{Path(c.sequence.name).stem}.txt", len(c.sequence.frames))
               for c in clips]  # fmt: skip
    return score_row(name, clips, outputs, None)


@dataclass
class Bound:
    """The best scores any tracker can reach with the model's detections under the issue's rules:
    it outputs only detections, gives an ID to one person only, and gives a new ID to a person
    that no detection has found for longer than the buffer."""

    objects: int  # scored ground-truth boxes
    longest: int  # of them, those on each person's longest run of detections within the buffer
    forced: int  # ID switches no such tracker avoids: runs after each person's first
    people: int

    def __add__(self, other: Bound) -> Bound:
        return Bound(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def idf1(self) -> float:
        """With no false positives and each person's longest run on one ID, the rest left out."""
        return 2 * self.longest / (self.objects + self.longest)

    @property
    def forced_per_10(self) -> float:
        """Forced ID switches per 10 people."""
        return 10 * self.forced / self.people


def frames_found_and_seen(clip: Clip, low: float, evidence: float):
    """Per person, the frames where a detection (score >= low) finds them at MATCH_IOU, and
    those where one sees them at IoU `evidence` (hidden or small ones included)."""
    found: defaultdict[int, list[int]] = defaultdict(list)
    seen: defaultdict[int, list[int]] = defaultdict(list)
    for f, (t, d) in enumerate(zip(clip.sequence.truth, clip.detections, strict=True)):
        boxes = boxes_of([p for p in d if p.score >= low])
        iou = box_iou_matrix(np.concatenate((t.boxes, t.ignore)), boxes).max(axis=1, initial=0)
        everyone = np.concatenate((t.ids, t.ignore_ids))
        for person in t.ids[iou[: len(t.ids)] >= MATCH_IOU]:
            found[int(person)].append(f)
        for person in everyone[iou >= evidence]:
            seen[int(person)].append(f)
    return found, seen


def best_possible(clip: Clip, settings: TrackerSettings, evidence: float = EVIDENCE) -> Bound:
    """The bound of one clip: each person's detections split into runs by gaps longer than the
    buffer (a detection at IoU `evidence` keeps a run going)."""
    found, seen = frames_found_and_seen(clip, settings.low, evidence)
    bound = Bound(sum(len(t.ids) for t in clip.sequence.truth), 0, 0, clip.sequence.people)
    for person, frames in found.items():
        alive = np.unique(frames + seen[person])
        runs = np.cumsum(np.diff(alive, prepend=alive[0]) > settings.buffer + 1)
        per_run = np.bincount(runs[np.searchsorted(alive, frames)])
        bound.longest += int(per_run.max())
        bound.forced += int((per_run > 0).sum()) - 1
    return bound


def total_bound(clips: list[Clip], settings: TrackerSettings) -> Bound:
    """The bound summed over clips."""
    return sum((best_possible(clip, settings) for clip in clips), Bound(0, 0, 0, 0))


def found_by_height(clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Scored boxes per HEIGHT_BINS band and the share of them the detections find (one at
    the tracker's `low` score or more at MATCH_IOU)."""
    heights, found = [], []
    for clip in clips:
        for t, d in zip(clip.sequence.truth, clip.detections, strict=True):
            heights.append(t.boxes[:, 3] - t.boxes[:, 1])
            found.append(found_people(t, above_low(d)))
    band = np.digitize(np.concatenate(heights), HEIGHT_BINS[1:])
    hits = np.concatenate(found)
    boxes = np.bincount(band, minlength=len(HEIGHT_BINS))
    return boxes, np.bincount(band, hits, minlength=len(HEIGHT_BINS)) / np.maximum(boxes, 1)


def camera_errors(clips: list[Clip]) -> np.ndarray:
    """Per frame after the first, how far (px) the measured camera motion puts the frame's
    farthest-off corner from where the true motion puts it."""
    corners = np.array([[0, 0], [WIDTH, 0], [0, HEIGHT], [WIDTH, HEIGHT]], np.float64)
    errors = []
    for clip in clips:
        mats = clip.sequence.mats
        full = np.concatenate((mats, np.tile([[[0.0, 0.0, 1.0]]], (len(mats), 1, 1))), 1)
        for f, found in enumerate(clip.camera.transforms[1:], start=1):
            true = (full[f] @ np.linalg.inv(full[f - 1]))[:2]
            off = corners @ (found[:, :2] - true[:, :2]).T + (found[:, 2] - true[:, 2])
            errors.append(np.linalg.norm(off, axis=1).max())
    return np.array(errors)
