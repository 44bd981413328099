"""`posecli serve` on the real PETS video: routes, SSE records equal to track's and infer's jsonl,
viewers that never read or come by fifty, the token rule, a source that stops, and the page in
headless Chromium. Every server listens on 127.0.0.1 and is stopped by its test."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, LocalServer, QuietHandler, jsonl_records, run_cli

aiohttp = pytest.importorskip("aiohttp")
from posecli.core.results import Pose  # noqa: E402
from posecli.output import draw  # noqa: E402 - needs aiohttp
from posecli.serve import server as serve  # noqa: E402 - needs aiohttp

PETS = SHARED / "videos" / "pets-vtest.avi"
CLIP_PACKETS = 40  # PETS' first 4 s (people from 1.3 s on), copied without re-encoding
STALLED = 40  # viewers that never read
CHROMIUM = shutil.which("chromium")
SCREENSHOT = os.environ.get("POSECLI_SERVE_SCREENSHOT")  # where to keep the page's screenshot


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The first CLIP_PACKETS packets of PETS in an AVI of their own."""
    path = tmp_path_factory.mktemp("serve") / "pets-4s.avi"
    with av.open(str(PETS)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for index, packet in enumerate(source.demux(source.streams.video[0])):
            if index == CLIP_PACKETS or packet.dts is None:
                break
            packet.stream = stream
            out.mux(packet)
    return path


def start_serve(*args) -> tuple[subprocess.Popen, str]:
    """`posecli serve ARGS --port 0` and the URL it prints once it listens."""
    command = [sys.executable, "-m", "posecli", "serve", *map(str, args), "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    if select.select([proc.stdout], [], [], 60)[0]:
        url = proc.stdout.readline().decode().strip()
        if url:
            return proc, url
    stop_serve(proc)
    raise AssertionError(f"posecli serve did not start: {proc.stderr.read().decode()}")


def stop_serve(proc: subprocess.Popen) -> int:
    """Ctrl-C the server (killed if it lingers) and its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode


@contextlib.contextmanager
def serving(*args):
    """A server for the block: (process, URL)."""
    proc, url = start_serve(*args)
    try:
        yield proc, url
    finally:
        stop_serve(proc)
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(scope="module")
def fast_server(clip):
    """The clip served again and again as fast as inference goes: (process, URL)."""
    with serving(clip, "--loop", "--no-realtime") as server:
        yield server


@pytest.fixture
def fast(fast_server) -> str:
    """The URL of the fast server."""
    return fast_server[1]


@pytest.fixture
def fast_pid(fast_server) -> int:
    """The process ID of the fast server."""
    return fast_server[0].pid


def route(url: str, path: str, token: str | None = None) -> str:
    """The URL of a route of the server at `url`."""
    return url.split("?")[0].rstrip("/") + path + (f"?token={token}" if token else "")


def get(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, str, bytes]:
    """Status, content type and body of a short request."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def sse_records(url: str, count: int, seconds: float = 20.0) -> list[str]:
    """Up to `count` `data:` lines of /events (fewer if it ends or `seconds` pass)."""
    records: list[str] = []
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=10) as response:
        while len(records) < count and time.monotonic() < deadline:
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                records.append(line[6:].rstrip(b"\n").decode())
    return records


def first_jpeg(url: str) -> tuple[str, np.ndarray]:
    """The content type of /stream.mjpg and its first frame, decoded."""
    with urllib.request.urlopen(url, timeout=10) as response:
        kind = response.headers["Content-Type"]
        assert response.readline() == b"--frame\r\n"
        lines = iter(response.readline, b"\r\n")
        headers = dict(line.decode().strip().split(": ") for line in lines)
        assert headers["Content-Type"] == "image/jpeg"
        jpeg = response.read(int(headers["Content-Length"]))
    return kind, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def by_frame(stdout: bytes) -> dict[int, str]:
    """A video's jsonl lines by frame number."""
    lines = stdout.decode().splitlines()
    records = jsonl_records(stdout)
    return {record["frame"]: line for record, line in zip(records, lines, strict=True)}


def test_routes_and_their_content_types(fast):
    status, kind, page = get(route(fast, "/"))
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert b'<img id="video"' in page and b'id="count"' in page
    kind, frame = first_jpeg(route(fast, "/stream.mjpg"))
    assert kind == "multipart/x-mixed-replace; boundary=frame"
    assert frame.shape == (360, 480, 3)
    with urllib.request.urlopen(route(fast, "/events"), timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
    status, kind, body = get(route(fast, "/status"))
    assert (status, kind) == (200, "application/json; charset=utf-8")
    assert json.loads(body)["state"] == "running"
    for method in ("POST", "PUT", "DELETE"):  # no route writes anything
        assert get(route(fast, "/"), method)[0] == 405
    assert get(route(fast, "/save"))[0] == 404


def test_events_hold_track_jsonl_records(fast, clip):
    tracked = by_frame(run_cli("track", clip, "-f", "jsonl").stdout)
    assert len(tracked) == CLIP_PACKETS
    records = sse_records(route(fast, "/events"), 2 * CLIP_PACKETS)
    frames = [json.loads(r)["frame"] for r in records]
    assert len(records) == 2 * CLIP_PACKETS
    assert all(b == (a + 1) % CLIP_PACKETS for a, b in itertools.pairwise(frames))  # one per frame
    assert records == [tracked[f] for f in frames]
    assert any(json.loads(r)["poses"] for r in records)


def stalled_viewer(url: str) -> socket.socket:
    """A viewer of /stream.mjpg that never reads, with a small receive buffer."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) * 1024


def test_viewers_that_never_read_hold_no_growing_memory(fast, fast_pid):
    alone = rss_bytes(fast_pid)
    sse_records(route(fast, "/events"), 10**6, seconds=5)
    by_itself = rss_bytes(fast_pid) - alone  # the server's RSS drifts on its own (allocator)
    stalled = [stalled_viewer(fast) for _ in range(STALLED)]
    try:
        time.sleep(1)
        before = rss_bytes(fast_pid)  # once the viewers' connections and buffers are set up
        viewers = json.loads(get(route(fast, "/status"))[2])["viewers"]
        records = sse_records(route(fast, "/events"), 10**6, seconds=5)
        after = rss_bytes(fast_pid)
    finally:
        for sock in stalled:
            sock.close()
    assert viewers == STALLED
    assert len(records) >= 50  # others keep receiving, at inference's rate
    # Queues would grow by STALLED x ~35 kB x 15 frames/s x 5 s (over 100 MB) more than the
    # same 5 s without the stalled viewers.
    assert (after - before) - by_itself < 48 * 2**20


async def watch(url: str, viewers: int, seconds: float) -> tuple[list[int], int]:
    """MJPEG parts received by each of `viewers` concurrent viewers in `seconds`, and the viewer
    count that /status gives meanwhile."""

    async def one(session) -> int:
        parts, deadline = 0, time.monotonic() + seconds
        async with session.get(route(url, "/stream.mjpg")) as response:
            async for chunk in response.content.iter_any():
                parts += chunk.count(b"--frame\r\n")
                if time.monotonic() > deadline:
                    break
        return parts

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(one(session)) for _ in range(viewers)]
        await asyncio.sleep(seconds / 2)
        async with session.get(route(url, "/status")) as response:
            status = await response.json()
        return list(await asyncio.gather(*tasks)), status["viewers"]


def test_fifty_viewers_at_once(fast):
    parts, viewers = asyncio.run(watch(fast, 50, 4.0))
    assert viewers == 50
    assert min(parts) >= 5, parts


def test_token_rule_and_no_track_records_are_infers(clip):
    inferred = by_frame(run_cli("infer", clip, "-f", "jsonl").stdout)
    with serving(clip, "--loop", "--no-track", "--token", "s3cret") as (_, url):
        assert url.endswith("/?token=s3cret")
        for path in ("/", "/stream.mjpg", "/events", "/status", "/nowhere"):
            for token in (None, "wrong"):
                assert get(route(url, path, token))[0::2] == (401, b"")
        assert get(route(url, "/status"), headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert get(url)[0] == 200
        start = time.monotonic()
        records = sse_records(route(url, "/events", "s3cret"), 16)
        elapsed = time.monotonic() - start
    assert records == [inferred[json.loads(r)["frame"]] for r in records]
    assert elapsed > 1.4  # played at the video's 10 frames/s


def test_token_needed_off_loopback():
    assert serve.access_token("127.0.0.1", None) is None
    assert serve.access_token("::1", None) is None
    assert serve.access_token("localhost", None) is None
    assert serve.access_token("127.0.0.1", "given") == "given"
    assert serve.access_token("0.0.0.0", "given") == "given"
    made = serve.access_token("0.0.0.0", None)
    assert made and len(made) >= 20 and made != serve.access_token("192.168.1.5", None)
    assert serve.viewer_url("10.0.0.2", 8000, made) == f"http://10.0.0.2:8000/?token={made}"


def test_without_aiohttp_one_line_exit_2():
    hide = "import sys; sys.modules['aiohttp'] = None; from posecli.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", hide, "serve", str(PETS)], capture_output=True)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "posecli: error: posecli serve needs its extra: pip install 'posecli[serve]'\n"
    )


class StreamServer(LocalServer):
    """MJPEG of the clip's frames at 10 fps on 127.0.0.1, which stops after `frames`."""

    def __init__(self, clip: Path, frames: int) -> None:
        with av.open(str(clip)) as video:
            jpegs = [cv2.imencode(".jpg", f.to_ndarray(format="bgr24"))[1].tobytes()
                     for f in video.decode(video=0)]  # fmt: skip

        class Handler(QuietHandler):
            def do_GET(self):
                self.send_mjpeg((jpegs[i % len(jpegs)] for i in range(frames)), 0.1)

        super().__init__(Handler)
        self.url += "/live.mjpg"


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a browser of Playwright's own)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def open_page(request, url: str):
    """The page at `url` in headless Chromium; None where Chromium or Playwright is missing."""
    try:
        browser = request.getfixturevalue("browser")
    except pytest.skip.Exception:
        return None
    page = browser.new_page()
    page.goto(url)
    return page


def test_source_that_stops_is_shown_and_exits_1(clip, request):
    stream = StreamServer(clip, frames=30)
    try:
        with serving(stream.url) as (proc, url):
            page = open_page(request, url)
            records = sse_records(route(url, "/events"), 10**6, seconds=30)
            status = json.loads(get(route(url, "/status"))[2])
            if page is not None:
                page.wait_for_function("document.getElementById('state').className === 'stopped'")
                shown = page.text_content("#state")
                page.close()
            code = proc.wait(10)
            errors = proc.stderr.read().decode()
    finally:
        stream.close()
    end = json.loads(records[-1])
    assert end == {"image": stream.url, "error": end["error"]}
    assert end["error"].startswith("stream stopped after")
    assert status["state"] == "stopped" and status["message"] == end["error"]
    if page is not None:
        assert shown == f"the source stopped: {end['error']}"
    assert code == 1
    assert errors.splitlines()[-1] == f"posecli: error: {stream.url}: {end['error']}"


def id_pixels(image: np.ndarray, ids: list[int]) -> int:
    """The most pixels of one ID's colour (its box and label tag) among `ids`."""
    colours = [draw.box_color(Pose(1.0, np.zeros(4), np.zeros((17, 3)), i)) for i in ids]
    return max(np.count_nonzero(np.abs(image - np.array(c)).max(axis=2) <= 30) for c in colours)


def annotated(png: bytes, box: dict, ids: list[int], plain: np.ndarray) -> bool:
    """True when the video element in a screenshot shows a non-blank frame with the boxes of
    `ids` drawn: far more pixels of an ID's colour than the plain video has."""
    page = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
    frame = page[y : y + h, x : x + w]
    plain = cv2.resize(plain, (w, h)).astype(np.int16)
    return float(frame.std()) > 20 and id_pixels(frame, ids) > id_pixels(plain, ids) + 40


def test_page_in_headless_chromium(fast, browser, clip, tmp_path):
    with av.open(str(clip)) as video:
        plain = next(video.decode(video=0)).to_ndarray(format="bgr24")  # nobody in it
    page = browser.new_page(viewport={"width": 496, "height": 470})
    page.goto(fast)
    counts: set[str] = set()
    shot = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (len(counts) < 2 or shot is None):
        counts.add(page.text_content("#count") or "-")
        ids = [int(i) for i in (page.text_content("#ids") or "-").split(", ") if i.isdigit()]
        if shot is None and ids:
            png, box = page.screenshot(), page.locator("#video").bounding_box()
            shot = png if annotated(png, box, ids, plain) else None
        page.wait_for_timeout(50)
    state = page.text_content("#state")
    page.close()
    assert shot is not None, "no annotated frame shown"
    assert len(counts - {"-"}) >= 2, counts  # the person count updates
    assert state == "live"
    (tmp_path / "serve.png").write_bytes(shot)
    if SCREENSHOT:  # for the docs: 128 colours keep it small
        Image.open(io.BytesIO(shot)).quantize(128).save(SCREENSHOT, optimize=True)
