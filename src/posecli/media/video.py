"""Opening video files, cameras and network streams with PyAV, and decoding their frames."""

from __future__ import annotations

import math
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

from posecli.core.errors import ImageError

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
     ".h264", ".264", ".h265", ".265", ".hevc"]  # the last: raw streams, as board cameras record
)  # fmt: skip
NETWORK_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://")
DEFAULT_TIMEOUT = 10.0
TIMEOUT_REASON = "no answer within the timeout (--timeout)"
MAX_BAD_RUN = 100  # packets in a row that fail to decode, after which a live stream is given up
TS_PACKET_SIZES = (188, 192, 204)
NO_TIMESTAMPS = 0x80  # AVFMT_NOTIMESTAMPS: a raw stream format, whose frames have no timestamps
# swscale's exact rounding, for pixel formats other than even-sized yuv420p: its default fast
# YUV to RGB kernels give other pixels on arm64 than on x86 (measured under qemu, FFmpeg in
# PyAV 18). Decoded YUV is the same on both, and so is OpenCV's YUV 4:2:0 conversion.
EXACT_SCALER = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


class VideoError(ImageError):
    """A video, camera or stream cannot be opened or read."""


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: its 0-based index, time in seconds, and full-size BGR pixels."""

    index: int
    time: float
    pixels: np.ndarray


def is_video_name(name: str) -> bool:
    """True for file names with a video extension."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def is_url(source: str) -> bool:
    """True for network sources (http, https, rtsp, ...)."""
    return source.lower().startswith(NETWORK_SCHEMES)


def camera_device(source: str) -> str | None:
    """The V4L2 device a camera source names ('0' or '/dev/video0'), else None."""
    if source.isdigit():
        return f"/dev/video{int(source)}"
    if re.fullmatch(r"/dev/video\d+", source):
        return source
    return None


def looks_like_video(path: str) -> bool:
    """True when a regular file's first bytes are those of a common video container (a FIFO or
    device is not opened for reading: that could block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 16)
    except OSError:
        return False
    finally:
        os.close(fd)
    return (
        head[4:8] == b"ftyp"
        or head[:4] == b"\x1a\x45\xdf\xa3"  # Matroska / WebM
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")  # MPEG-PS
    )


class VideoSource:
    """An open video, camera or stream: its size, frame rate and frame count, and its frames.

    Network sources give up after `timeout` seconds without data, opening or reading.
    """

    def __init__(self, source: str, timeout: float = DEFAULT_TIMEOUT):
        self.source = source
        self.camera = camera_device(source)
        self.container = _open(source, self.camera, timeout)
        try:
            self.stream = self.container.streams.video[0]
        except IndexError:
            self.container.close()
            raise VideoError("no video stream in this file") from None
        codec = self.stream.codec_context
        if codec is None or not codec.width or not codec.height:
            self.container.close()
            raise VideoError("unsupported video codec (no decoder for it in FFmpeg)")
        codec.thread_type = "AUTO"
        self.width, self.height = codec.width, codec.height
        self.corrupt_packets = 0  # packets that failed to decode and were skipped
        self.decoded_until = 0.0  # seconds: the end time of the last decoded frame

    @property
    def live(self) -> bool:
        """True for cameras and streams with no end known in advance (RTSP, MJPEG over HTTP)."""
        return bool(self.camera) or (is_url(self.source) and not self.container.duration)

    @property
    def frame_count(self) -> int:
        """Frames the container says it holds; 0 when it does not say."""
        return max(int(self.stream.frames or 0), 0)

    def counted_frames(self) -> int:
        """The container's frame count, or where it has none (Matroska, MPEG-TS), its video
        packets from the first keyframe on (one frame each), read without decoding them; 0 if
        reading fails or the packets end before the declared duration (a cut file)."""
        if self.frame_count:
            return self.frame_count
        count, until = 0, 0.0
        try:
            for packet in self.container.demux(self.stream):
                if packet.size and (count or packet.is_keyframe):
                    count += 1
                    if packet.pts is not None and packet.time_base is not None:
                        end = (packet.pts + (packet.duration or 0)) * packet.time_base
                        until = max(until, float(end))
        except av.FFmpegError:
            return 0
        return 0 if self.cut_short(until) or self.ends_mid_packet else count

    def cut_short(self, until: float) -> bool:
        """True when the track's declared duration (an end time) runs past `until` seconds by
        more than 5 % and 0.5 s: the file was cut."""
        return until < 0.95 * self.declared_seconds - 0.5

    @property
    def ends_mid_packet(self) -> bool:
        """True for an MPEG-TS file whose size is not a whole number of TS packets (188 bytes,
        or 192 and 204 with a timecode or parity): it was cut."""
        if self.container.format.name != "mpegts" or not os.path.isfile(self.source):
            return False
        size = os.path.getsize(self.source)
        return all(size % packet for packet in TS_PACKET_SIZES)

    @property
    def declared_seconds(self) -> float:
        """How long the video track says it is, where that is a tag of its own (Matroska and
        WebM); 0 when it has none."""
        tag = self.stream.metadata.get("DURATION", "")
        found = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag)
        if not found:
            return 0.0
        hours, minutes, seconds = found.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)

    @property
    def fps(self) -> Fraction:
        """Average frame rate; for a raw stream, which has no timestamps, FFmpeg's guess from
        what the stream declares (25 when nothing says)."""
        rate = self.stream.average_rate or self.stream.guessed_rate
        if self.container.format.flags & NO_TIMESTAMPS:
            rate = self.stream.guessed_rate or rate
        return Fraction(rate) if rate else Fraction(25)

    @property
    def timed_on_arrival(self) -> bool:
        """True for live streams in a format without timestamps (MJPEG over HTTP), whose frames
        are timed when they arrive, as cameras read with OpenCV are (not at a guessed rate)."""
        return self.live and bool(self.container.format.flags & NO_TIMESTAMPS)

    def frames(self, stride: int = 1) -> Iterator[DecodedFrame]:
        """Every `stride`th frame as full-size BGR, upright (turned as the display matrix says,
        which phones set); once the first is decoded, `width` and `height` are upright too."""
        clock = _ArrivalClock() if self.timed_on_arrival else _Clock(float(self.fps))
        for index, frame in enumerate(self._decoded()):
            time = clock(frame)
            self.decoded_until = time + 1 / float(self.fps)
            turns = quarter_turns(frame)
            if index == 0:
                self.width, self.height = (frame.height, frame.width) if turns % 2 else (
                    frame.width, frame.height)  # fmt: skip
            if index % stride == 0:
                pixels = frame_bgr(frame)
                if turns:
                    pixels = np.ascontiguousarray(np.rot90(pixels, turns))
                yield DecodedFrame(index, time, pixels)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames; a packet that fails to decode is skipped and counted (as the ffmpeg
        tool does; a live source gives up after MAX_BAD_RUN in a row), and read errors become
        VideoError."""
        live, run = self.live, 0
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    self.corrupt_packets += 1
                    run += 1
                    if live and run >= MAX_BAD_RUN:
                        raise VideoError(f"cannot decode: {run} packets in a row") from None
                    continue
                run = 0
                yield from frames
        except av.FFmpegError as exc:
            raise VideoError(_reason(exc)) from exc

    def close(self) -> None:
        """Release the file, device or connection."""
        self.container.close()


class _Clock:
    """Frame times in seconds from their timestamps, kept increasing (AVI files reorder PTS); a
    frame with none usable is timed `n / fps` after the last one that had one (or the start)."""

    def __init__(self, fps: float):
        self.fps = fps
        self.anchor: float | None = None  # the last usable timestamp
        self.steps = 0  # frames since it
        self.last = -math.inf

    def __call__(self, frame: av.VideoFrame) -> float:
        stamp = frame.dts if frame.dts is not None else frame.pts
        time = -math.inf if stamp is None or frame.time_base is None else float(
            stamp * frame.time_base)  # fmt: skip
        if round(time, 6) > self.last:
            self.anchor, self.steps = round(time, 6), 0
        elif self.anchor is None:
            self.anchor = 0.0
        else:
            self.steps += 1
        self.last = round(self.anchor + self.steps / self.fps, 6)
        return self.last


class _ArrivalClock:
    """Frame times in seconds since the clock was made: when each frame arrived."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, _frame: av.VideoFrame | None = None) -> float:
        return round(time.monotonic() - self.start, 6)


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show a frame as its display matrix says; 0 without
    one, or for one that mirrors (not applied)."""
    matrix = cast("Mapping[str, bytes]", frame.side_data).get("DISPLAYMATRIX")  # a buffer
    if matrix is None:
        return 0
    a, b, _, c, d = np.frombuffer(bytes(matrix), np.int32)[:5].astype(np.int64)
    return round(frame.rotation / 90) % 4 if a * d - b * c > 0 else 0


def frame_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR, the same pixels on every CPU: BT.601 video range as OpenCV
    converts YUV 4:2:0, or swscale with exact rounding for other formats and odd sizes."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24", interpolation=EXACT_SCALER, threads=1)


def open_source(source: str, timeout: float = DEFAULT_TIMEOUT) -> VideoSource | CameraSource:
    """A video file or stream through FFmpeg, or a camera (through OpenCV when the FFmpeg in
    PyAV's wheel has no V4L2 input, as on PyPI)."""
    camera = camera_device(source)
    if camera and not os.path.exists(camera):
        raise VideoError(f"no camera at {camera}")
    if camera and "v4l2" not in av.formats_available:
        return CameraSource(source, camera)
    if not camera and not is_url(source):
        _check_regular_file(source)
    return VideoSource(source, timeout)


def _check_regular_file(path: str) -> None:
    """Refuse FIFOs, devices and sockets from `stat` alone (FFmpeg would block on a FIFO)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise VideoError((exc.strerror or str(exc)).lower()) from exc
    if not stat.S_ISREG(mode):
        raise VideoError("not a regular file")


class CameraSource:
    """A V4L2 camera read with OpenCV: the VideoSource interface, frames timed on arrival."""

    live = True
    frame_count = 0
    declared_seconds = decoded_until = 0.0
    corrupt_packets = 0

    def counted_frames(self) -> int:
        """A camera's frames are not known in advance: 0."""
        return 0

    def cut_short(self, until: float) -> bool:
        """A camera declares no duration: never."""
        return False

    ends_mid_packet = False

    def __init__(self, source: str, device: str):
        self.source = source
        self.capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self.capture.isOpened():
            raise VideoError(f"cannot open camera {device}")
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        rate = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = Fraction(rate).limit_denominator(1001) if rate > 0 else Fraction(30)

    def frames(self, stride: int = 1) -> Iterator[DecodedFrame]:
        """Every `stride`th frame as full-size BGR."""
        clock, index = _ArrivalClock(), 0
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                raise VideoError("camera stopped giving frames")
            if index % stride == 0:
                yield DecodedFrame(index, clock(), bgr)
            index += 1

    def close(self) -> None:
        """Release the camera."""
        self.capture.release()


def _open(source: str, camera: str | None, timeout: float) -> av.container.InputContainer:
    """Open the container, turning FFmpeg's errors into one-line reasons."""
    try:
        if camera:
            return av.open(camera, format="v4l2", timeout=timeout)
        if is_url(source):
            options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp") else {}
            return av.open(source, options=options, timeout=timeout)
        return av.open(source, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(_reason(exc)) from exc
    except OSError as exc:
        raise VideoError(exc.strerror or str(exc)) from exc


def _reason(exc: av.FFmpegError) -> str:
    """A short lower-case reason from an FFmpeg error."""
    if isinstance(exc, av.ExitError) or "Immediate exit" in str(exc):
        return TIMEOUT_REASON
    text = exc.strerror or str(exc)
    if isinstance(exc, av.InvalidDataError):
        return "cannot decode: not a video, or a corrupt one"
    return text.lower().rstrip(".")
