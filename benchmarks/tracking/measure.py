"""Everything the report states, measured in one run: the trackers' scores, the bounds, the
models' reach and cost, the camera motion, timings and smoothing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.tracking.clips import LARGER, MODEL, Clip, detector, larger_clips, seen_at
from benchmarks.tracking.scoring import (
    Bound,
    Row,
    camera_errors,
    evaluate,
    found_by_height,
    reference_row,
    run_tracker,
    total_bound,
)
from benchmarks.tracking.smoothing import keypoint_ap50, lag_frames, still_jitter
from benchmarks.tracking.timing import MODEL_FRAMES, model_ms, numpy_add_us, tracking_ms
from posecli.tracking.tracker import TrackerSettings

DEFAULT = TrackerSettings()
BOX_ONLY = TrackerSettings(use_keypoints=False, duplicate=1.0)  # ByteTrack's association
NO_KEYPOINTS = TrackerSettings(use_keypoints=False)
LONG_BUFFER = 90
LONG = TrackerSettings(buffer=LONG_BUFFER)
ULTRALYTICS = "Ultralytics `yolo pose track` (ByteTrack)"
LIBRARIES = ("av", "opencv-python-headless", "numpy", "ai-edge-litert")  # make and see frames


@dataclass
class SetSize:
    """How many videos, frames and people a set of clips has."""

    videos: int
    frames: int
    people: int

    @staticmethod
    def of(clips: list[Clip]) -> SetSize:
        return SetSize(len(clips), sum(len(c.sequence.frames) for c in clips),
                       sum(c.sequence.people for c in clips))  # fmt: skip


@dataclass
class Measurements:
    """What one run measured, by set ("tuning", "held-out") where it applies."""

    sizes: dict[str, SetSize]
    rows: dict[str, dict[str, Row]]  # per set, per tracker: "ours", "box", "larger", ...
    dev_rows: dict[bool, Row]  # the dev videos, with camera motion and without
    dev_videos: int
    bounds: dict[str, Bound]
    larger_bound: Bound  # held-out, with the LARGER model's detections
    by_height: dict[str, tuple[np.ndarray, np.ndarray]]  # per model: boxes, share found
    model_ms: dict[str, float]  # per model, one thread
    seen_at: dict[str, tuple[int, int]]  # per model: the frame's size in its input
    tracking_ms: dict[bool, float]  # without and with smoothing, synthetic walkers
    camera_ms: float  # per frame
    camera_errors: np.ndarray  # px, per frame step of all videos
    add_us: float
    lag: dict[bool, float]  # frames, without and with smoothing
    ap: dict[bool, float]  # keypoint AP50 of the tracked poses, without and with smoothing
    raw_ap: float  # of the detections
    jitter: tuple[float, float]  # px, without and with smoothing
    still_videos: int
    reference: str | None  # what made the reference tracks, from their version.txt
    libraries: str  # versions of the libraries that make the frames and run the model

    @property
    def found(self) -> float:
        """The share (%) of scored people in all videos that the model finds."""
        boxes, share = self.by_height[MODEL]
        return 100 * float((boxes * share).sum() / boxes.sum())


def tracker_rows(clips: list[Clip], larger: list[Clip], reference: Path | None) -> dict[str, Row]:
    """The rows of posecli's tracker and its variants (and of the reference tracks) on clips."""
    rows = {
        "ours": evaluate("posecli (box + keypoints + camera motion)", DEFAULT, clips),
        "box": evaluate("box only (ByteTrack association)", BOX_ONLY, clips, camera=False),
        "no keypoints": evaluate("posecli without keypoints", NO_KEYPOINTS, clips),
        "long": evaluate(f"posecli, buffer {LONG_BUFFER} frames", LONG, clips),
        "no camera": evaluate("posecli without camera motion", DEFAULT, clips, camera=False),
        "larger": evaluate(f"posecli on {LARGER}", DEFAULT, larger),
    }
    if reference:
        rows["ultralytics"] = reference_row(ULTRALYTICS, clips, reference)
    return rows


def tracked_keypoint_scores(clips: list[Clip]) -> tuple[dict[bool, float], dict[bool, float]]:
    """The lag and keypoint AP50 of the default tracker's poses, without and with smoothing."""
    sequences = [c.sequence for c in clips]
    lag, ap = {}, {}
    for smooth in (False, True):
        tracked = [run_tracker(c.detections, DEFAULT, smooth, c.camera.transforms)[0]
                   for c in clips]  # fmt: skip
        lag[smooth], ap[smooth] = lag_frames(sequences, tracked), keypoint_ap50(sequences, tracked)
    return lag, ap


def library_versions() -> str:
    """The versions of the LIBRARIES installed."""
    found = []
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def measure(tune: list[Clip], test: list[Clip], dev: list[Clip], stills: list[Clip],
            cache: Path | None, reference: Path | None) -> Measurements:  # fmt: skip
    """Score and time everything the report states (progress printed as it goes)."""
    both = tune + test
    larger = larger_clips(both, cache)
    sets = {"tuning": (tune, larger[: len(tune)]), "held-out": (test, larger[len(tune) :])}
    rows = {}
    for label, (clips, on_larger) in sets.items():
        rows[label] = tracker_rows(clips, on_larger, reference)
        for row in rows[label].values():
            print(label, row.name, row.counts, flush=True)
    frames = tune[0].sequence.frames[:MODEL_FRAMES]
    one_thread = {model: detector(model, threads=1) for model in (MODEL, LARGER)}
    bounds = {label: total_bound(clips, DEFAULT) for label, (clips, _) in sets.items()}
    print("bounds", bounds, flush=True)
    tracking = {smooth: tracking_ms(smooth) for smooth in (False, True)}
    print("ms per frame, 10 people:", tracking, flush=True)
    lag, ap = tracked_keypoint_scores(both)
    raw_ap = keypoint_ap50([c.sequence for c in both], [c.detections for c in both])
    jitter = still_jitter(stills)
    print("lag", lag, "AP50", ap, raw_ap, "jitter", jitter, flush=True)
    return Measurements(
        sizes={label: SetSize.of(clips) for label, (clips, _) in sets.items()},
        rows=rows,
        dev_rows={True: evaluate("posecli", DEFAULT, dev),
                  False: evaluate("no camera motion", DEFAULT, dev, camera=False)},
        dev_videos=len(dev),
        bounds=bounds,
        larger_bound=total_bound(sets["held-out"][1], DEFAULT),
        by_height={MODEL: found_by_height(both), LARGER: found_by_height(larger)},
        model_ms={model: model_ms(e, frames) for model, e in one_thread.items()},
        seen_at={model: seen_at(e) for model, e in one_thread.items()},
        tracking_ms=tracking,
        camera_ms=1000 * sum(c.camera.seconds for c in both) / SetSize.of(both).frames,
        camera_errors=camera_errors(both + dev),
        add_us=numpy_add_us(),
        lag=lag,
        ap=ap,
        raw_ap=raw_ap,
        jitter=jitter,
        still_videos=len(stills),
        reference=(reference / "version.txt").read_text().strip() if reference else None,
        libraries=library_versions(),
    )  # fmt: skip
