"""Reading a video, camera or stream in a thread of its own: its start, decoded frames and
end queued a few at a time; live sources drop stale frames, and can be ended on request."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

from posecli.media import video
from posecli.media.video import VideoError, VideoSource
from posecli.pipeline.events import SourceEnd, StreamOptions, VideoStart


@dataclass(frozen=True)
class FrameTask:
    """A decoded frame of a video to run."""

    path: str
    frame: video.DecodedFrame


class LiveStop:
    """Ends the live source being read (a camera, a stream) as a stream that stops, on request
    (the CLI's first Ctrl-C): its frames so far are processed, and its end has no error.

    `request` only sets flags, so a signal handler may call it.
    """

    def __init__(self) -> None:
        self.reading: FrameQueue | None = None

    def request(self) -> bool:
        """End the live source being read; False when none is, or it is already ending."""
        frames = self.reading
        if frames is None or frames.ended:
            return False
        frames.ended = True
        return True


def video_tasks(
    path: str,
    options: StreamOptions,
    stop: threading.Event,
    live_stop: LiveStop,
    queued: int,
) -> Iterator[FrameTask | VideoStart | SourceEnd]:
    """One video's start, frames and end, decoded ahead in a thread of its own. A live source
    ended by `live_stop` ends without waiting for its decoder (it may be in a slow read)."""
    frames = FrameQueue(queued, stop)
    thread = threading.Thread(
        target=_decode_video, args=(path, options, frames), daemon=True,
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
            taken += isinstance(item, FrameTask)
            yield item
        yield SourceEnd(path, taken + frames.dropped, frames.dropped)
    finally:
        live_stop.reading = None
        frames.close()
        if not frames.ended:
            thread.join()


def _decode_video(path: str, options: StreamOptions, out: FrameQueue) -> None:
    """Decode one video into `out`: a VideoStart, its frames, then always a SourceEnd."""
    progress = [0]
    try:
        out.put(_decode_frames(path, options, out, progress))
    except Exception as exc:  # the consumer must get an end whatever happens, never wait
        reason = f"unexpected {type(exc).__name__}: {exc}"
        out.put(SourceEnd(path, progress[0], 0, f"stopped after {progress[0]} frames ({reason})"))


def _decode_frames(
    path: str,
    options: StreamOptions,
    out: FrameQueue,
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
            if not out.put(FrameTask(path, frame), live):
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


class FrameQueue:
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
                while self.items and isinstance(self.items[-1], FrameTask):
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
