"""CPU time of the tracker, the smoother and the models, and of a numpy add to compare
machines by."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.tracking.scoring import run_tracker
from posecli import PoseEstimator
from posecli.core.results import Pose
from posecli.tracking.tracker import TrackerSettings

WALKERS, WALK_FRAMES, WALK_RUNS = 10, 600, 3  # the synthetic timing: people, frames, best of
ADD_SIZE, ADD_RUNS = 10, 5  # the numpy add: elements, best of
MODEL_FRAMES = 30  # frames a model is timed on


def walking_people(people: int, frames: int) -> list[list[Pose]]:
    """Detections of people walking in straight lines with a little noise, frame by frame."""
    rng = np.random.default_rng(0)
    shapes = rng.uniform(0, 1, (people, 17, 2))
    start = rng.uniform([0, 100], [1200, 500], (people, 2))
    speed = rng.normal(0, 3, (people, 2))
    detections = []
    for f in range(frames):
        poses = []
        for i in range(people):
            cx, cy = start[i] + speed[i] * f + rng.normal(0, 1, 2)
            box = np.array([cx - 50, cy - 100, cx + 50, cy + 100], np.float32)
            kpts = np.column_stack((box[:2] + shapes[i] * [100, 200], np.full(17, 0.9)))
            poses.append(Pose(0.9, box, kpts.astype(np.float32)))
        detections.append(poses)
    return detections


def tracking_ms(smooth: bool) -> float:
    """Best-of-WALK_RUNS CPU ms per frame of tracking (and smoothing) WALKERS walking people."""
    detections = walking_people(WALKERS, WALK_FRAMES)
    best = float("inf")
    for _ in range(WALK_RUNS):
        _, spent = run_tracker(detections, TrackerSettings(), smooth)
        best = min(best, spent)
    return 1000 * best / WALK_FRAMES


def numpy_add_us() -> float:
    """Best-of-ADD_RUNS CPU microseconds of one add of two ADD_SIZE-element arrays: how fast
    and how busy the machine is."""
    a = np.ones(ADD_SIZE)
    best = float("inf")
    for _ in range(ADD_RUNS):
        start = time.thread_time()
        for _ in range(100_000):
            a + a
        best = min(best, (time.thread_time() - start) / 100_000)
    return 1e6 * best


def model_ms(estimator: PoseEstimator, frames: list[np.ndarray]) -> float:
    """CPU ms per frame of an estimator (preprocessing and decoding included), after three
    frames to warm up."""
    for frame in frames[:3]:
        estimator.predict(frame)
    start = time.process_time()
    for frame in frames:
        estimator.predict(frame)
    return 1000 * (time.process_time() - start) / len(frames)
