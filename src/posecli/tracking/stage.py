"""Track IDs on the frame pipeline's events: a PoseTracker per video, camera or stream, and one
for a sequence of images when asked (else each image is tracked on its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from posecli.pipeline.events import Event, FrameResult, SourceEnd, VideoStart
from posecli.tracking.camera_motion import CameraMotion
from posecli.tracking.smoothing import KeypointSmoother
from posecli.tracking.tracker import PoseTracker, TrackerSettings

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class TrackOptions:
    """How sources are tracked: the association settings, a factory of keypoint smoothers (a
    fresh one per source; None: no smoothing), the frame rate at which the images of a run
    form one sequence (None: each image is a sequence of its own), and the OKS sigmas of the
    keypoints (None: COCO's for 17 keypoints, else 1/K); and whether a video's tracks move
    with its camera's motion, measured on the frames."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    smoother: Callable[[], KeypointSmoother] | None = None
    sequence_fps: float | None = None
    sigmas: np.ndarray | None = None
    camera_motion: bool = True

    def new_tracker(self, fps: float = DEFAULT_FPS) -> PoseTracker:
        """A tracker for one source giving frames at `fps`."""
        smoother = self.smoother() if self.smoother is not None else False
        fps = fps if fps > 0 else DEFAULT_FPS
        return PoseTracker(self.settings, fps=fps, smooth=smoother, sigmas=self.sigmas)


def track_events(events: Iterable[Event], options: TrackOptions) -> Iterator[Event]:
    """The events with each frame's poses replaced by its tracked ones (those with an ID).

    A video's frames are tracked from its VideoStart to its SourceEnd, at the frame times. With
    `sequence_fps`, the images are frames of one sequence in the order given: image i (failed
    ones count) gets `frame` i and `time` i / fps; otherwise each image is tracked alone.
    """
    videos: dict[str, tuple[PoseTracker, CameraMotion | None]] = {}
    sequence = ImageSequence(options) if options.sequence_fps else None
    for event in events:
        if isinstance(event, VideoStart):
            camera = CameraMotion() if options.camera_motion else None
            videos[event.path] = (options.new_tracker(float(event.fps)), camera)
        elif isinstance(event, SourceEnd):
            videos.pop(event.path, None)
        elif event.result.path in videos:
            event = tracked(event, *videos[event.result.path])
        elif sequence is not None:
            event = sequence.track(event)
        else:
            event = tracked(event, options.new_tracker(), time=0.0)
        yield event


class ImageSequence:
    """Images tracked as the frames of one video, in the order they come, at the options'
    `sequence_fps`, moved with the camera's motion between images of one shape."""

    def __init__(self, options: TrackOptions):
        assert options.sequence_fps is not None
        self.fps = options.sequence_fps
        self.tracker = options.new_tracker(self.fps)
        self.camera = CameraMotion() if options.camera_motion else None
        self.index = 0

    def track(self, event: FrameResult) -> FrameResult:
        """The next image's result as the sequence's next frame, tracked."""
        time = round(self.index / self.fps, 6)
        result = replace(event.result, frame=self.index, time=time)
        self.index += 1
        return tracked(replace(event, result=result), self.tracker, self.camera, time)


def tracked(
    event: FrameResult,
    tracker: PoseTracker,
    camera: CameraMotion | None = None,
    time: float | None = None,
) -> FrameResult:
    """A frame's result with the poses that belong to tracks, with their IDs, the tracks moved
    with the camera where the frame's thumbnail shows its motion; failures as they are."""
    result = event.result
    if not result.ok:
        return event
    time = result.time if time is None else time
    motion = None
    if camera is not None and isinstance(event.measured, np.ndarray):
        motion = camera(event.measured, result.width)
    return replace(event, result=replace(result, poses=tracker.update(result.poses, time, motion)))
