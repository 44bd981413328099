"""What the pipeline gives and takes: stream options and the per-source events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from posecli.core.results import ImageResult, People
from posecli.media import video

ImageHook = Callable[[str, np.ndarray, People], None]
Measure = Callable[[np.ndarray], object]


@dataclass(frozen=True)
class StreamOptions:
    """How sources are read: every `vid_stride`th frame; live sources drop stale frames unless
    `every_frame`; full-size frames kept for the caller with `keep_images`. `measure`, when
    given, runs in the worker on every video frame's pixels (and with `measure_images` every
    image's), and what it returns comes with the frame's result: the per-frame hook where a
    later stage plugs in (tracking measures the camera's motion on grey thumbnails)."""

    vid_stride: int = 1
    every_frame: bool = False
    keep_images: bool = False
    measure: Measure | None = None
    measure_images: bool = False
    timeout: float = video.DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.vid_stride < 1:
            raise ValueError(f"vid_stride must be 1 or more, not {self.vid_stride}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")


DEFAULT_STREAM = StreamOptions()


@dataclass(frozen=True)
class VideoStart:
    """A video source opened: its size, the rate of the frames it will give, and their number."""

    path: str
    width: int
    height: int
    fps: Fraction
    frames: int
    live: bool


@dataclass(frozen=True)
class FrameResult:
    """One image's or frame's result, with a video frame's full-size BGR pixels and what the
    options' `measure` gave when they were asked for."""

    result: ImageResult
    image: np.ndarray | None = None
    measured: object = None


@dataclass(frozen=True)
class SourceEnd:
    """A video source finished: frames processed and dropped, and why it stopped early if so."""

    path: str
    frames: int
    dropped: int
    error: str | None = None


Event = VideoStart | FrameResult | SourceEnd
# A stage between the pipeline and the outputs, such as tracking: it may replace frames' poses.
Stage = Callable[[Iterator[Event]], Iterator[Event]]
