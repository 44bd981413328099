"""Annotated videos: poses drawn on each frame, encoded to H.264 MP4 in a thread of its own.

The file is written under a hidden temporary name beside the destination and renamed into place
only when every frame is in: a crash or Ctrl-C leaves no file under the final name.
"""

from __future__ import annotations

import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from posecli.core.errors import ImageError
from posecli.core.files import temp_beside
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import People
from posecli.output.draw import DrawStyle, draw_poses

QUEUED_FRAMES = 8
ENCODER_OPTIONS = {"preset": "ultrafast"}
MUXER_OPTIONS = {"movflags": "+faststart"}  # index first: plays while it downloads


class AnnotatedVideo:
    """Writes `dest` as H.264 (yuv420p, browser-playable) at `fps`; `add` frames, then `finish`.

    Odd widths or heights lose their last column or row (4:2:0 needs even sizes); a frame of
    another size than the first (a stream that changes resolution) is scaled to it.
    """

    def __init__(
        self, dest: Path, width: int, height: int, fps: Fraction, kpt_conf: float,
        spec: KeypointSpec, style: DrawStyle,
    ):  # fmt: skip
        self.dest = dest
        self.kpt_conf = kpt_conf
        self.spec = spec
        self.style = style
        self.size = (width & ~1, height & ~1)
        if min(self.size) < 2:
            raise ImageError(f"{dest}: cannot write: {width}x{height} is too small for H.264")
        fd, self.tmp = temp_beside(dest)
        os.close(fd)
        try:
            self.container = av.open(self.tmp, "w", format="mp4", options=MUXER_OPTIONS)
            self.stream = self.container.add_stream("libx264", rate=fps, options=ENCODER_OPTIONS)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / fps
        except (av.FFmpegError, OSError) as exc:
            Path(self.tmp).unlink(missing_ok=True)
            raise ImageError(f"{dest}: cannot write: {exc}") from exc
        self.frames: queue.Queue[tuple[np.ndarray, People] | None] = queue.Queue(QUEUED_FRAMES)
        self.failure: Exception | None = None
        self.written = 0
        self.thread = threading.Thread(target=self._encode_all, name="posecli-encode", daemon=True)
        self.thread.start()

    def add(self, bgr: np.ndarray, poses: People) -> None:
        """Queue one full-size BGR frame and its poses (waits while the encoder is behind)."""
        self.frames.put((bgr, poses))

    def finish(self) -> None:
        """Encode what is queued, close the file and move it into place, unless it has no frame
        (the temporary file is removed whatever happens, Ctrl-C included)."""
        try:
            self.frames.put(None)
            self.thread.join()
            if self.failure is not None:
                raise ImageError(f"{self.dest}: cannot write: {self.failure}")
            if self.written:
                os.replace(self.tmp, self.dest)
        except OSError as exc:
            raise ImageError(f"{self.dest}: cannot write: {exc.strerror or exc}") from exc
        finally:
            Path(self.tmp).unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop without a file: the frames so far are dropped with the temporary file."""
        self.failure = self.failure or RuntimeError("aborted")
        while True:
            try:
                self.frames.get_nowait()
            except queue.Empty:
                break
        self.frames.put(None)
        self.thread.join()
        Path(self.tmp).unlink(missing_ok=True)

    def _encode_all(self) -> None:
        """The encoder thread: draw, convert to I420 and encode each queued frame. Any failure,
        closing the file included, is kept for `finish`; the queue is drained to its end."""
        drained = False
        try:
            while (item := self.frames.get()) is not None:
                if self.failure is None:
                    self._encode(*item)
            drained = True
            if self.failure is None:
                self.container.mux(self.stream.encode(None))
        except Exception as exc:
            self.failure = self.failure or exc
            while not drained and self.frames.get() is not None:
                pass
        finally:
            try:
                self.container.close()
            except Exception as exc:  # a full disk shows here, when the last data is written
                self.failure = self.failure or exc

    def _encode(self, bgr: np.ndarray, poses: People) -> None:
        """Encode one annotated frame."""
        width, height = self.size
        canvas = draw_poses(bgr, poses, self.kpt_conf, self.spec, self.style)
        if canvas.shape[1] & ~1 == width and canvas.shape[0] & ~1 == height:
            canvas = canvas[:height, :width]
        else:
            canvas = cv2.resize(canvas, self.size, interpolation=cv2.INTER_AREA)
        yuv: np.ndarray = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).astype(np.uint8, copy=False)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.written
        self.written += 1
        self.container.mux(self.stream.encode(frame))
