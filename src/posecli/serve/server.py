"""`posecli serve`: one source's frames, tracked or not, drawn and JPEG-encoded once each in an
inference thread, and handed to any number of HTTP viewers (aiohttp) as MJPEG, Server-Sent
Events (the jsonl record of each frame) and a status, newest first: a viewer never slows
inference nor holds more than one frame and a short record backlog."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import itertools
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import cast
from urllib.parse import quote

import cv2
import numpy as np
from aiohttp import web

from posecli.core.errors import PoseCliError
from posecli.core.results import ImageResult
from posecli.estimator import PoseEstimator
from posecli.output.draw import draw_poses
from posecli.output.writers import JsonlWriter, Sink
from posecli.pipeline import flow as pipeline
from posecli.pipeline.decoding import LiveStop
from posecli.pipeline.events import Event, FrameResult, SourceEnd, Stage, StreamOptions, VideoStart

BOUNDARY = "frame"
RECORDS_KEPT = 64  # SSE records kept for viewers that fall behind; older ones are skipped
JPEG_QUALITY = 80
VIEWER_FPS = 15  # the most frames a second /stream.mjpg sends one viewer
RATE_WINDOW = 2.0  # seconds of frames that the frame rates are measured over
LINGER_SECONDS = 1.5  # after the source ends, viewers get the news before the server stops
STOP_POLL = 0.1  # seconds between looks at a stop request


@dataclass(frozen=True)
class ServeOptions:
    """What is served: the source, repeated with `loop` (files), at its own frame rate unless
    `realtime` is off (files), drawn with keypoints from `kpt_conf` up."""

    source: str
    kpt_conf: float = 0.5
    loop: bool = False
    realtime: bool = True
    stream: StreamOptions = field(default_factory=StreamOptions)


@dataclass(frozen=True)
class Frame:
    """One processed frame as sent: its MJPEG part and its SSE message."""

    seq: int
    part: bytes
    message: bytes


class Meter:
    """The frame rates of the source and of inference, and the latency from capture to drawn,
    over the last RATE_WINDOW seconds."""

    def __init__(self) -> None:
        self.source: deque[tuple[int, float]] = deque()  # (frame index, frame time)
        self.drawn: deque[float] = deque()  # wall times
        self.latency = 0.0
        self.frames = self.poses = 0

    def add(self, result: ImageResult, latency: float) -> None:
        """Count one drawn frame, `latency` seconds after its capture."""
        now = time.monotonic()
        self.source.append((result.frame or 0, result.time or 0.0))
        self.drawn.append(now)
        while self.drawn[0] < now - RATE_WINDOW:
            self.drawn.popleft()
        while self.source[-1][1] - self.source[0][1] > RATE_WINDOW:
            self.source.popleft()
        self.latency = latency
        self.frames += 1
        self.poses += len(result.poses)

    def restart(self) -> None:
        """A new pass over the source: its frame times start again."""
        self.source.clear()

    def status(self) -> dict:
        """Frames/s of the source and of inference, latency in ms, frames and poses so far."""
        first, last = (self.source[0], self.source[-1]) if self.source else ((0, 0.0), (0, 0.0))
        span = last[1] - first[1]
        drawn = self.drawn[-1] - self.drawn[0] if len(self.drawn) > 1 else 0.0
        return {
            "source_fps": round((last[0] - first[0]) / span, 1) if span > 0 else None,
            "inference_fps": round((len(self.drawn) - 1) / drawn, 1) if drawn > 0 else None,
            "latency_ms": round(self.latency * 1000),
            "frames": self.frames,
            "poses": self.poses,
        }


class Hub:
    """The newest frame, the last RECORDS_KEPT SSE messages and the status, published from the
    inference thread into the event loop, where viewers wait for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: str, label: str) -> None:
        self.loop = loop
        self.frame: Frame | None = None
        self.messages: deque[tuple[int, bytes]] = deque(maxlen=RECORDS_KEPT)
        self.seq = 0
        self.state = {"source": source, "label": label, "state": "starting", "message": None}
        self.ended = False
        self.viewers = 0
        self._changed = asyncio.Event()

    def publish(self, part: bytes | None, message: bytes | None, status: dict) -> None:
        """From any thread: a new frame (`part` None: only a record), and the status."""
        self._call(self._publish, part, message, status)

    def end(self, state: str, message: str | None) -> None:
        """From any thread: the source ended (`state` 'ended') or failed ('stopped')."""
        self._call(self._end, state, message)

    def _call(self, function: Callable, *args) -> None:
        """Run `function(*args)` in the event loop, unless it has closed (an interrupt)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(function, *args)

    def _publish(self, part: bytes | None, message: bytes | None, status: dict) -> None:
        self.seq += 1
        if part is not None:
            self.frame = Frame(self.seq, part, message or b"")
        if message is not None:
            self.messages.append((self.seq, message))
        self.state.update(status)
        self._wake()

    def _end(self, state: str, message: str | None) -> None:
        self.state.update(state=state, message=message)
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int) -> bool:
        """Wait for anything after `seen`; False once the source has ended and nothing is."""
        while self.seq <= seen:
            if self.ended:
                return False
            await self._changed.wait()
        return True

    def messages_after(self, seen: int) -> list[tuple[int, bytes]]:
        """The kept SSE messages after `seen` (the oldest kept when more were missed)."""
        return [(seq, message) for seq, message in self.messages if seq > seen]

    def status(self) -> dict:
        """The status as served by /status."""
        return {**self.state, "viewers": self.viewers}


class Painter:
    """Turns each frame's result into what viewers get: the JPEG with the poses drawn (once per
    frame) and the SSE message holding the jsonl record that `track`/`infer` write."""

    def __init__(self, estimator: PoseEstimator, kpt_conf: float) -> None:
        spec = estimator.keypoint_spec
        self.spec, self.kpt_conf = spec, kpt_conf
        self.writer = JsonlWriter(Sink(), spec.names, spec.label)

    def message(self, result: ImageResult) -> bytes:
        """The SSE message: one `data:` line with the jsonl record."""
        record = self.writer.records(result)[0].rstrip("\n")
        return b"data: " + record.encode() + b"\n\n"

    def part(self, image: np.ndarray, result: ImageResult) -> bytes:
        """The MJPEG part of the annotated frame."""
        drawn = draw_poses(image, result.poses, self.kpt_conf, self.spec)
        ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, "OpenCV could not encode a frame as JPEG"
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.size}\r\n\r\n"
        return head.encode() + jpeg.tobytes() + b"\r\n"


class Clock:
    """When each frame of a source was captured, for the latency: for a live source, from when
    it started and the frame times; for a file played at its frame rate (`paced`), when the
    frame is due (from the first frame on, moved on when inference falls behind, which then
    plays it slower); for a file played as fast as inference goes, when inference gave it."""

    def __init__(self, live: bool, paced: bool) -> None:
        self.live, self.paced = live, paced
        self.origin = time.monotonic()
        self.first: float | None = None

    def captured(self, frame_time: float) -> float:
        """The wall (monotonic) time at which the frame was captured or is due."""
        now = time.monotonic()
        if not self.live and not self.paced:
            return now
        if self.first is None:
            self.first = frame_time
            self.origin = self.origin if self.live else now
        due = self.origin + frame_time - self.first
        if self.paced and now > due:
            self.origin += now - due
            due = now
        return due


class StopRequest:
    """Ctrl-C's request to stop serving: only sets a flag, so a signal handler may call it;
    False the second time (then Ctrl-C interrupts)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        if self.requested:
            return False
        self.requested = True
        return True


class Player:
    """The inference thread's loop: run the source through the pipeline (and `stage`), paint
    each frame once, publish it, until the source ends or fails or `halt` is called."""

    def __init__(self, hub: Hub, estimator: PoseEstimator, options: ServeOptions,
                 stage: Stage | None) -> None:  # fmt: skip
        self.hub, self.estimator, self.options, self.stage = hub, estimator, options, stage
        self.painter = Painter(estimator, options.kpt_conf)
        self.meter = Meter()
        self.halted = threading.Event()
        self.live = LiveStop()
        self.clock = Clock(live=True, paced=False)
        self.dropped = 0
        self.failure: str | None = None

    def halt(self) -> None:
        """Stop playing: end a live source, or the file at its next frame."""
        self.halted.set()
        self.live.request()

    def run(self) -> None:
        """Play the source until it ends, fails or is halted; then end the hub."""
        options = self.options
        sources = itertools.repeat(options.source) if options.loop else [options.source]
        predictor = self.estimator.predictor
        workers = predictor.worker_count(None)
        frames = pipeline.run(predictor, sources, options.stream, workers, None, self.live)
        events = self.stage(frames) if self.stage is not None else frames
        try:
            for event in events:
                self.handle(event)
                if self.failure is not None or self.halted.is_set():
                    break
        except Exception as exc:  # a bug: the viewers and the command still hear of it
            self.failure = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            for generator in (events, frames):
                cast("Generator", generator).close()
            self.finish()

    def handle(self, event: Event) -> None:
        """Start a pass, publish a frame, or note how the source ended."""
        if isinstance(event, VideoStart):
            paced = self.options.realtime and not event.live
            self.clock = Clock(event.live, paced)
            self.meter.restart()
        elif isinstance(event, FrameResult):
            self.show(event)
        elif isinstance(event, SourceEnd):
            self.dropped += event.dropped
            if event.error:
                self.failure = event.error
                result = ImageResult(event.path, error=event.error)
                self.hub.publish(None, self.painter.message(result), self.meter.status())

    def show(self, event: FrameResult) -> None:
        """Wait until a file's frame is due, then paint and publish it."""
        result = event.result
        if event.image is None or not result.ok:
            return
        due = self.clock.captured(result.time or 0.0)
        if self.clock.paced:
            self.halted.wait(max(0.0, due - time.monotonic()))
        part = self.painter.part(event.image, result)
        self.meter.add(result, time.monotonic() - due)
        status = {"state": "running", **self.meter.status()}
        self.hub.publish(part, self.painter.message(result), status)

    def finish(self) -> None:
        """Tell the viewers how the source ended."""
        if self.failure is not None:
            self.hub.end("stopped", self.failure)
        elif self.halted.is_set():
            self.hub.end("ended", "posecli serve was stopped")
        else:
            self.hub.end("ended", "the video ended")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_token(host: str, token: str | None) -> str | None:
    """The token that requests need: the one given; none on a loopback address; else a new one."""
    if token is not None or is_loopback(host):
        return token
    return secrets.token_urlsafe(18)


def viewer_url(host: str, port: int, token: str | None) -> str:
    """The URL to open: the machine's name for a wildcard address, the token in the query."""
    name = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    name = f"[{name}]" if ":" in name else name
    return f"http://{name}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def authorized(request: web.Request, token: str) -> bool:
    """True when the request carries the token (?token= or an Authorization: Bearer header)."""
    given = request.query.get("token") or ""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header[len("Bearer ") :]
    return hmac.compare_digest(given.encode(), token.encode())


def make_app(hub: Hub, token: str | None) -> web.Application:
    """The routes: GET / (the page), /stream.mjpg, /events, /status; 401 and no body without
    the token when one is needed. No route changes anything."""

    @web.middleware
    async def guard(request: web.Request, handler):
        if token is not None and not authorized(request, token):
            return web.Response(status=401)
        return await handler(request)

    page = resources.files("posecli.serve").joinpath("serve.html").read_bytes()
    app = web.Application(middlewares=[guard])
    app.router.add_get("/", lambda _: page_response(page))
    app.router.add_get("/stream.mjpg", lambda request: send_stream(hub, request))
    app.router.add_get("/events", lambda request: send_events(hub, request))
    app.router.add_get("/status", lambda _: status_response(hub))
    return app


async def page_response(page: bytes) -> web.Response:
    """The viewer page."""
    return web.Response(body=page, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


async def status_response(hub: Hub) -> web.Response:
    """The status as JSON."""
    return web.Response(text=json.dumps(hub.status()), content_type="application/json",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


async def open_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    """A streamed response started with its headers."""
    response = web.StreamResponse(headers={"Content-Type": content_type,
                                           "Cache-Control": "no-store"})  # fmt: skip
    await response.prepare(request)
    return response


async def send_stream(hub: Hub, request: web.Request) -> web.StreamResponse:
    """/stream.mjpg: the newest annotated frame whenever the viewer can take one, at most
    VIEWER_FPS a second (a screen shows no more; sending more would take inference's CPU)."""
    response = await open_stream(request, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    seen = sent = 0
    clock = asyncio.get_running_loop().time
    with watching(hub), contextlib.suppress(ConnectionError):
        while await hub.wait(seen):
            seen, frame = hub.seq, hub.frame
            if frame is not None and frame.seq > sent:
                due = clock() + 1 / VIEWER_FPS
                await response.write(frame.part)
                sent = frame.seq
                await asyncio.sleep(max(0.0, due - clock()))
    return response


async def send_events(hub: Hub, request: web.Request) -> web.StreamResponse:
    """/events: the jsonl record of every frame from the newest on, as `data:` lines; one that
    falls more than RECORDS_KEPT behind skips to the oldest kept."""
    response = await open_stream(request, "text/event-stream")
    seen = hub.seq - 1
    with watching(hub), contextlib.suppress(ConnectionError):
        while await hub.wait(seen):
            for seq, message in hub.messages_after(seen):
                await response.write(message)
                seen = seq
            seen = max(seen, hub.seq)
    return response


@contextlib.contextmanager
def watching(hub: Hub) -> Iterator[None]:
    """Count a viewer while its stream is open."""
    hub.viewers += 1
    try:
        yield
    finally:
        hub.viewers -= 1


async def serve(player_for: Callable[[Hub], Player], source: str, label: str, host: str,
                port: int, token: str | None, stop: StopRequest,
                on_ready: Callable[[str], None]) -> Player:  # fmt: skip
    """Serve the source until it ends, fails or `stop` is requested; the player, which tells
    how. `on_ready` gets the URL to open once the server listens."""
    hub = Hub(asyncio.get_running_loop(), source, label)
    runner = web.AppRunner(make_app(hub, token), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise PoseCliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        on_ready(viewer_url(host, runner.addresses[0][1], token))
        player = player_for(hub)
        threading.Thread(target=player.run, name="posecli-serve", daemon=True).start()
        while not hub.ended:
            await asyncio.sleep(STOP_POLL)
            if stop.requested:
                player.halt()
        if not stop.requested:
            await asyncio.sleep(LINGER_SECONDS)
    finally:
        await runner.cleanup()
    return player
