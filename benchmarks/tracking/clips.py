"""The videos with the model's detections in every frame and the camera motion measured on
them, rendered and detected once and kept in the cache folder when one is given."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from benchmarks.tracking.cache import cached
from benchmarks.tracking.synthesis import HEIGHT, WIDTH, Sequence, make_sequence, still_sequence
from posecli import PoseEstimator
from posecli.core.results import Pose
from posecli.tracking.camera_motion import CameraMotion, grey_thumbnail
from posecli.tracking.tracker import TrackerSettings

MODEL = "yolov8n-pose-256"  # posecli's default model
LARGER = "yolov8n-pose-320"  # the larger of ST's stock models: how far the detector bounds


class CameraMotions:
    """The camera's motion into each frame of a video as `posecli track` measures it, measured
    on first use, and the CPU seconds that took."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self._frames = frames

    @cached_property
    def _measured(self) -> tuple[list[np.ndarray], float]:
        measure, found, spent = CameraMotion(), [], 0.0
        for frame in self._frames:
            start = time.thread_time()
            found.append(measure(grey_thumbnail(frame), frame.shape[1]))
            spent += time.thread_time() - start
        return found, spent

    @property
    def transforms(self) -> list[np.ndarray]:
        """Per frame, the (2, 3) transform of the previous frame's pixels to this one's."""
        return self._measured[0]

    @property
    def seconds(self) -> float:
        """The CPU seconds of this thread that measuring took (other processes do not count)."""
        return self._measured[1]


@dataclass
class Clip:
    """A video, a model's poses in each of its frames, and its camera motion."""

    sequence: Sequence
    detections: list[list[Pose]]
    camera: CameraMotions

    def redetected(self, detections: list[list[Pose]]) -> Clip:
        """The same video (and camera motion) with another model's detections."""
        return Clip(self.sequence, detections, self.camera)


def detector(model: str = MODEL, **options) -> PoseEstimator:
    """A model that keeps every detection the tracker takes (score down to its `low`)."""
    return PoseEstimator(model, conf=TrackerSettings().low, **options)


def detect(estimator: PoseEstimator, frames: list[np.ndarray]) -> list[list[Pose]]:
    """The model's poses in every frame."""
    return [estimator.predict(f) for f in frames]


def clip_of(sequence: Sequence, detections: list[list[Pose]]) -> Clip:
    """A clip whose camera motion is measured when first asked for."""
    return Clip(sequence, detections, CameraMotions(sequence.frames))


def rendered_and_detected(coco: COCO, estimator: PoseEstimator, image_id: int):
    """The video of one photo and the model's poses in it (the cache's tuple), logged."""
    sequence = make_sequence(coco, image_id)
    item = (sequence, detect(estimator, sequence.frames))
    print(f"  {sequence.name}: {len(sequence.frames)} frames, {sequence.people} people", flush=True)
    return item


def load_clips(coco: COCO, estimator: PoseEstimator, image_ids: list[int],
               cache: Path | None, still: bool = False) -> list[Clip]:  # fmt: skip
    """The videos of the photos (`still`: filmed by a still camera) with their detections, from
    `cache/<image id>.pkl` (`still-<image id>.pkl`) when there."""
    make = still_with_detections if still else rendered_and_detected
    prefix = "still-" if still else ""
    clips = []
    for image_id in image_ids:
        path = cache / f"{prefix}{image_id}.pkl" if cache else None
        item = cached(path, lambda i=image_id: make(coco, estimator, i))
        clips.append(clip_of(*item))
    return clips


def larger_clips(clips: list[Clip], cache: Path | None) -> list[Clip]:
    """The clips with the LARGER model's poses, from `cache/<video>-<LARGER>.pkl` when there."""
    estimator = detector(LARGER)
    out = []
    for clip in clips:
        path = cache / f"{Path(clip.sequence.name).stem}-{LARGER}.pkl" if cache else None
        detections = cached(path, lambda c=clip: detect(estimator, c.sequence.frames))
        out.append(clip.redetected(detections))
    return out


def still_with_detections(coco: COCO, estimator: PoseEstimator, image_id: int):
    """A still-camera video and the model's poses in it (the cache's tuple)."""
    sequence = still_sequence(coco, image_id)
    return sequence, detect(estimator, sequence.frames)


def seen_at(estimator: PoseEstimator) -> tuple[int, int]:
    """The width and height a WIDTH x HEIGHT frame has in the model's letterboxed input."""
    width, height = estimator.input_size
    scale = min(width / WIDTH, height / HEIGHT)
    return round(WIDTH * scale), round(HEIGHT * scale)
