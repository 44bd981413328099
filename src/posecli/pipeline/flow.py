"""The frame pipeline: every source (an image is a one-frame source) to per-frame results in order.

Videos, cameras and streams are decoded in a thread of their own per source; images are decoded
in the inference workers. Inference runs in `workers` threads with a model each, and results come
back in input order with at most a few frames in flight, so memory stays flat for any length.
Per-source events (`VideoStart`, then each frame's `FrameResult`, then `SourceEnd`) let a caller
keep per-video state between inference and output, such as a tracker or an annotated video.
"""

from __future__ import annotations

import itertools
import queue
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from posecli.core.errors import ImageError
from posecli.core.results import ImageResult, Pose
from posecli.media import images, video
from posecli.media.sources import is_video_source
from posecli.media.video import VideoError, VideoSource
from posecli.model.runtime import PoseModel
from posecli.tracking.camera_motion import grey_thumbnail

if TYPE_CHECKING:
    from posecli.estimator import PoseEstimator

ImageHook = Callable[[str, np.ndarray, list[Pose]], None]
QUEUED_FRAMES = 4


@dataclass(frozen=True)
class StreamOptions:
    """How video sources are read: every `vid_stride`th frame; live sources drop stale frames
    unless `every_frame`; full-size frames kept for the caller with `keep_images`; grey
    thumbnails (for the camera's motion) of video frames with `thumbnails`, of images with
    `image_thumbnails` (for images tracked as one sequence)."""

    vid_stride: int = 1
    every_frame: bool = False
    keep_images: bool = False
    thumbnails: bool = False
    image_thumbnails: bool = False
    timeout: float = video.DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.vid_stride < 1:
            raise ValueError(f"vid_stride must be 1 or more, not {self.vid_stride}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")


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
    """One image's or frame's result, with a video frame's full-size BGR pixels and the grey
    thumbnail when they were asked for."""

    result: ImageResult
    image: np.ndarray | None = None
    thumbnail: np.ndarray | None = None


@dataclass(frozen=True)
class SourceEnd:
    """A video source finished: frames processed and dropped, and why it stopped early if so."""

    path: str
    frames: int
    dropped: int
    error: str | None = None


@dataclass(frozen=True)
class _ImageTask:
    path: str


@dataclass(frozen=True)
class _FrameTask:
    path: str
    frame: video.DecodedFrame


Event = VideoStart | FrameResult | SourceEnd
_Task = _ImageTask | _FrameTask | VideoStart | SourceEnd


class LiveStop:
    """Ends the live source being read (a camera, a stream) as a stream that stops, on request
    (the CLI's first Ctrl-C): its frames so far are processed, and its end has no error.

    `request` only sets flags, so a signal handler may call it.
    """

    def __init__(self) -> None:
        self.reading: _FrameQueue | None = None

    def request(self) -> bool:
        """End the live source being read; False when none is, or it is already ending."""
        frames = self.reading
        if frames is None or frames.ended:
            return False
        frames.ended = True
        return True


def run(
    estimator: PoseEstimator,
    sources: Iterable[str],
    options: StreamOptions = StreamOptions(),
    workers: int = 1,
    hook: ImageHook | None = None,
    live_stop: LiveStop | None = None,
) -> Iterator[Event]:
    """Events for every source in order; `hook(path, bgr, poses)` runs in a worker per image;
    `live_stop` can end live sources early."""
    idle: queue.SimpleQueue[PoseModel] = queue.SimpleQueue()
    for model in estimator.worker_models(workers):
        idle.put(model)
    stop = threading.Event()

    def work(task: _Task) -> Event:
        if isinstance(task, (VideoStart, SourceEnd)):
            return task
        model = idle.get()
        try:
            if isinstance(task, _ImageTask):
                result, thumbnail = estimator.process_file(
                    model, hook, task.path, options.timeout, options.image_thumbnails
                )
                return FrameResult(result, thumbnail=thumbnail)
            return _infer_frame(estimator, model, task, options)
        finally:
            idle.put(model)

    tasks = _tasks(estimator, sources, options, stop, live_stop or LiveStop())
    try:
        yield from ordered_map(work, tasks, workers, window=QUEUED_FRAMES * workers)
    finally:
        stop.set()


def _tasks(
    estimator: PoseEstimator,
    sources: Iterable[str],
    options: StreamOptions,
    stop: threading.Event,
    live_stop: LiveStop,
) -> Iterator[_Task]:
    """Work items for every source: one per image, a start, frames and an end per video."""
    for path in sources:
        if is_video_source(path):
            yield from _video_tasks(estimator, path, options, stop, live_stop)
        else:
            yield _ImageTask(path)


def _video_tasks(
    estimator: PoseEstimator,
    path: str,
    options: StreamOptions,
    stop: threading.Event,
    live_stop: LiveStop,
) -> Iterator[_Task]:
    """One video's start, frames and end, decoded ahead in a thread of its own. A live source
    ended by `live_stop` ends without waiting for its decoder (it may be in a slow read)."""
    frames = _FrameQueue(QUEUED_FRAMES, stop)
    thread = threading.Thread(
        target=_decode_video, args=(estimator, path, options, frames), daemon=True,
        name="posecli-decode",
    )  # fmt: skip
    thread.start()
    taken = 0
    try:
        while (item := frames.get()) is not None:
            if isinstance(item, SourceEnd):
                yield replace(item, dropped=frames.dropped)
                return
            if isinstance(item, VideoStart) and item.live:
                live_stop.reading = frames
            taken += isinstance(item, _FrameTask)
            yield item
        yield SourceEnd(path, taken + frames.dropped, frames.dropped)
    finally:
        live_stop.reading = None
        frames.close()
        if not frames.ended:
            thread.join()


def _decode_video(
    estimator: PoseEstimator, path: str, options: StreamOptions, out: _FrameQueue
) -> None:
    """Decode one video into `out`: a VideoStart, its frames, then always a SourceEnd."""
    progress = [0]
    try:
        out.put(_decode_frames(estimator, path, options, out, progress))
    except Exception as exc:  # the consumer must get an end whatever happens, never wait
        reason = f"unexpected {type(exc).__name__}: {exc}"
        out.put(SourceEnd(path, progress[0], 0, f"stopped after {progress[0]} frames ({reason})"))


def _decode_frames(
    estimator: PoseEstimator,
    path: str,
    options: StreamOptions,
    out: _FrameQueue,
    progress: list[int],
) -> SourceEnd:
    """Queue a VideoStart and the frames; the SourceEnd saying how it ended."""
    try:
        source = video.open_source(path, options.timeout)
    except VideoError as exc:
        return SourceEnd(path, 0, 0, str(exc))
    try:
        stride = options.vid_stride
        expected = -(-source.frame_count // stride)
        live = source.live and not options.every_frame
        frames = source.frames(stride)
        first = next(frames, None)  # the upright size is known once a frame is decoded
        out.put(VideoStart(
            path, source.width, source.height, source.fps / stride, expected, source.live
        ))  # fmt: skip
        for frame in itertools.chain([first] if first else [], frames):
            if not out.put(_FrameTask(path, frame), live):
                break
            progress[0] += 1
        return SourceEnd(path, progress[0], 0, _early_end(source, progress[0], expected))
    except VideoError as exc:
        stopped = "stream stopped" if source.live else "video ended early"
        return SourceEnd(path, progress[0], 0, f"{stopped} after {progress[0]} frames ({exc})")
    finally:
        source.close()


def _early_end(source: VideoSource | video.CameraSource, decoded: int, expected: int) -> str | None:
    """Why a source that ran out of frames stopped early or had holes, or None if it ended as it
    should. Without a frame count, the track's declared duration tells a cut file."""
    if source.live:
        return f"stream stopped after {decoded} frames"
    if decoded < expected:
        return f"video ended early: {decoded} of {expected} frames (truncated or corrupt)"
    until = source.decoded_until
    if not expected and source.cut_short(until):
        return (f"video ended early: {decoded} frames, {until:.1f} of {source.declared_seconds:.1f}"
                " s (truncated or corrupt)")  # fmt: skip
    if source.ends_mid_packet:
        return f"video ended early: {decoded} frames (it ends inside an MPEG-TS packet)"
    if not decoded and not source.corrupt_packets:
        return "no frames in this video"
    if source.corrupt_packets:
        return f"corrupt video: {source.corrupt_packets} packets could not be decoded, skipped"
    return None


def _infer_frame(
    estimator: PoseEstimator, model: PoseModel, task: _FrameTask, options: StreamOptions
) -> FrameResult:
    """Run one decoded frame through the model as an image; poses in the frame's own pixels."""
    frame = task.frame
    loaded = images.LoadedImage.whole(frame.pixels)
    poses = estimator.predict_loaded(model, loaded)
    result = ImageResult(task.path, loaded.width, loaded.height, poses, None, frame.index,
                         frame.time)  # fmt: skip
    image = frame.pixels if options.keep_images else None
    return FrameResult(result, image, grey_thumbnail(frame.pixels) if options.thumbnails else None)


class _FrameQueue:
    """Decoded frames handed from a decode thread to the pipeline, a few at a time.

    `put(..., drop_stale=True)` (live sources) replaces queued frames instead of waiting, counting
    each one dropped; start and end events are never dropped. `close` releases a waiting decoder;
    so does setting `ended` (a live source ended on request), seen within 0.1 s without a lock.
    """

    def __init__(self, size: int, stop: threading.Event):
        self.items: deque = deque()
        self.size = size
        self.stop = stop
        self.closed = self.ended = False
        self.dropped = 0
        self.cond = threading.Condition()

    def put(self, item, drop_stale: bool = False) -> bool:
        """Queue an item; False when the consumer has gone away."""
        with self.cond:
            if drop_stale:
                while self.items and isinstance(self.items[-1], _FrameTask):
                    self.items.pop()
                    self.dropped += 1
            while len(self.items) >= self.size and not self._gone():
                self.cond.wait(0.1)
            if self._gone():
                return False
            self.items.append(item)
            self.cond.notify_all()
            return True

    def get(self):
        """The next item, waiting for the decoder (in short steps, so Ctrl-C is seen); None once
        the source is `ended` and the frames queued before are taken."""
        with self.cond:
            while not self.items:
                if self.ended:
                    return None
                self.cond.wait(0.1)
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def close(self) -> None:
        """Tell the decoder to stop."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _gone(self) -> bool:
        return self.closed or self.ended or self.stop.is_set()


def fetch_url(url: str, timeout: float, limit: int) -> bytes:
    """The body of an http(s) URL, at most `limit` bytes, giving up after `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ImageError(video.TIMEOUT_REASON) from exc
        raise ImageError(f"cannot fetch: {reason}") from exc
    if len(data) > limit:
        raise ImageError(f"more than {limit} bytes")
    if not data:
        raise ImageError("empty response (0 bytes)")
    return data


def ordered_map(fn: Callable, items: Iterable, workers: int, window: int) -> Iterator:
    """Map fn over items in a thread pool, yielding in input order with at most `window` pending.

    When the consumer stops early (an interrupt, a closed pipe), queued items are dropped and
    running ones are not waited for, so a worker stuck in a slow read cannot hold it up.
    """
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="posecli")
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
