"""Videos, cameras and streams: per-frame records, annotated copies, bad input, network sources."""

from __future__ import annotations

import fcntl
import itertools
import json
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np
import pytest

from posecli.cli.report import FrameProgress
from posecli.media.video import VideoSource
from posecli.pipeline.decoding import FrameQueue, FrameTask
from posecli.pipeline.events import SourceEnd, VideoStart

from conftest import (
    BUS,
    SHARED,
    ZIDANE,
    LocalServer,
    QuietHandler,
    coco_files,
    jsonl_records,
    ok_records,
    run_cli,
)

VIDEOS = SHARED / "videos"
PETS = VIDEOS / "pets-vtest.avi"
PAN_720 = VIDEOS / "coco-pan-720p30.mp4"
SCHEMA = json.loads((Path(__file__).parents[1] / "src/posecli/pose-result.schema.json").read_text())


def make_clip(src: Path, dest: Path, frames: int, size: tuple[int, int] | None = None,
              codec: str = "libx264", fmt: str | None = None, options: dict | None = None,
              pix_fmt: str = "yuv420p", gop: int | None = None) -> list[np.ndarray]:  # fmt: skip
    """Re-encode the first `frames` frames of src into dest with PyAV (a keyframe every `gop`
    frames if given); the BGR frames written."""
    written = []
    with av.open(str(src)) as inp, av.open(str(dest), "w", format=fmt, options=options) as out:
        stream_in = inp.streams.video[0]
        width, height = size or (stream_in.width, stream_in.height)
        stream = out.add_stream(codec, rate=stream_in.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        for frame in inp.decode(stream_in):
            if len(written) == frames:
                break
            bgr = frame.to_ndarray(width=width, height=height, format="bgr24")
            written.append(bgr)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode(None))
    return written


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as full-size BGR (BT.601 video range, as OpenCV converts it)."""
    with av.open(str(path)) as container:
        return [
            cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
            for f in container.decode(video=0)
        ]


def video_info(path: Path) -> tuple[int, Fraction, int, int, str]:
    """Frames decoded, average rate, width, height and codec of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.average_rate, stream.width, stream.height, stream.codec_context.name


@pytest.fixture(scope="module")
def pan_clip(tmp_path_factory) -> Path:
    """24 frames of the COCO pan video (people in most frames) at 640x360."""
    path = tmp_path_factory.mktemp("clips") / "pan.mp4"
    make_clip(PAN_720, path, 24, size=(640, 360))
    return path


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    """The whole PETS video through `posecli infer` with an annotated copy."""
    root = tmp_path_factory.mktemp("pets")
    proc = run_cli("infer", PETS, "-f", "jsonl", "--save-dir", root / "saved")
    return proc, root


def test_pets_gives_one_record_per_frame_with_increasing_times(pets_run):
    proc, _ = pets_run
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    assert [r["frame"] for r in records] == list(range(795))
    assert {r["image"] for r in records} == {str(PETS)}
    assert np.allclose(np.diff([r["time"] for r in records]), 0.1)
    boxes = np.array([p["box"] for r in records for p in r["poses"]])
    assert len(boxes) > 0 and (boxes[:, 2] <= 480).all() and (boxes[:, 3] <= 360).all()
    for record in records[::50]:
        jsonschema.validate(record, SCHEMA)
        assert (record["width"], record["height"]) == (480, 360)


def test_pets_annotated_copy_matches_the_input(pets_run):
    _, root = pets_run
    assert [p.name for p in (root / "saved").iterdir()] == ["pets-vtest.mp4"]
    assert video_info(root / "saved/pets-vtest.mp4") == (795, 10, 480, 360, "h264")


@pytest.mark.parametrize(
    "options",
    [[], ["--full-decode"], ["--interp", "nearest", "--resize", "stretch"]],
    ids=["default", "full-decode", "nearest-stretch"],
)
def test_video_frames_give_the_poses_of_the_same_frames_saved_as_png(pan_clip, tmp_path, options):
    proc = run_cli("infer", pan_clip, *options, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    frames = decoded_frames(pan_clip)
    assert len(records) == len(frames) == 24
    picked = [0, 9, 23]
    pngs = [tmp_path / f"frame{i}.png" for i in picked]
    for i, png in zip(picked, pngs, strict=True):
        cv2.imwrite(str(png), frames[i])
    still = jsonl_records(run_cli("infer", *pngs, *options, "-f", "jsonl").stdout)
    assert sum(len(r["poses"]) for r in still) > 0
    for i, record in zip(picked, still, strict=True):
        assert records[i]["poses"] == record["poses"]


def test_vid_stride_keeps_every_nth_frame_and_its_rate(pan_clip, tmp_path):
    proc = run_cli("infer", pan_clip, "--vid-stride", "5", "-f", "jsonl", "--save-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    assert [r["frame"] for r in records] == [0, 5, 10, 15, 20]
    assert np.allclose(np.diff([r["time"] for r in records]), 5 / 30)
    assert video_info(tmp_path / "pan.mp4") == (5, 6, 640, 360, "h264")


def test_python_stream_gives_the_cli_records(pan_clip, estimator):
    cli = jsonl_records(run_cli("infer", pan_clip, "-f", "jsonl").stdout)
    assert [r.to_dict() for r in estimator.stream(pan_clip)] == cli


def test_python_stream_refuses_a_stride_under_1_and_a_timeout_of_0(pan_clip, estimator):
    with pytest.raises(ValueError, match="vid_stride must be 1 or more"):
        next(estimator.stream(pan_clip, vid_stride=0))
    with pytest.raises(ValueError, match="timeout must be positive"):
        next(estimator.stream(pan_clip, timeout=0))


def test_csv_has_frame_and_time_and_coco_refuses_videos(pan_clip, tmp_path):
    out = tmp_path / "out.csv"
    assert run_cli("infer", pan_clip, BUS, "-o", out).returncode == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("image,frame,time,person,score")
    assert rows[1].startswith(f"{pan_clip},0,0.0,0,")
    assert rows[-1].startswith(f"{BUS},,,")
    photo = coco_files(1)[0]
    proc = run_cli("infer", pan_clip, photo, "-f", "coco", "--conf", "0.05")
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"posecli: error: {pan_clip}: --format coco takes images only; use json or jsonl"
    )
    assert {d["image_id"] for d in json.loads(proc.stdout)} == {int(photo.stem)}


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The only error line on stderr; no traceback. JSONL results on stdout have its error
    record, with the same reason, unless it is about an annotated copy."""
    lines = [line for line in proc.stderr.decode().splitlines() if "error" in line]
    assert "Traceback" not in proc.stderr.decode()
    assert len(lines) == 1, proc.stderr
    if proc.stdout.startswith(b"{"):
        failed = [r for r in jsonl_records(proc.stdout) if "error" in r]
        inputs = [line for line in lines if not line.endswith("the results are written)")]
        assert [f"posecli: error: {r['image']}: {r['error']}" for r in failed] == inputs
    return lines[0]


def test_truncated_video_keeps_its_frames_and_says_it_ended_early(tmp_path):
    cut = tmp_path / "cut.avi"
    data = PETS.read_bytes()
    cut.write_bytes(data[: len(data) // 4])
    proc = run_cli("infer", cut, BUS, "-f", "jsonl", "--vid-stride", "10")
    assert proc.returncode == 1
    records = jsonl_records(proc.stdout)
    assert 5 < len(records) - 1 < 80 and records[-1]["image"] == str(BUS)
    assert one_error_line(proc).startswith(f"posecli: error: {cut}: video ended early: ")


def test_truncated_matroska_without_a_frame_count_says_it_ended_early(tmp_path):
    """Matroska gives no frame count, but its track's duration (a tag) says how many to expect."""
    whole = tmp_path / "whole.mkv"
    make_clip(PETS, whole, 60)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    proc = run_cli("infer", cut, whole, "-f", "jsonl")
    assert proc.returncode == 1
    records = ok_records(proc.stdout)
    read = sum(r["image"] == str(cut) for r in records)
    assert 5 < read < 50 and sum(r["image"] == str(whole) for r in records) == 60
    reason = f"video ended early: {read} frames, {read / 10:.1f} of 6.0 s (truncated or corrupt)"
    assert one_error_line(proc) == f"posecli: error: {cut}: {reason}"


@pytest.mark.parametrize("start", [0, 10_000])
def test_variable_rate_matroska_is_not_taken_for_a_truncated_one(tmp_path, start):
    """Frames 33 ms apart with a 0.5 s pause after every third: 60 frames over 8.5 s, far fewer
    than the duration at the stream's average rate (30 fps) would make, and none missing; also
    starting at 10 s (the declared duration is then the end time, 18.5 s)."""
    vfr = tmp_path / "vfr.mkv"
    with av.open(str(PETS)) as inp, av.open(str(vfr), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, frame in zip(range(60), inp.decode(video=0), strict=False):
            frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24")
            frame.pts = start + (i // 4) * 599 + (i % 4) * 33
            frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    proc = run_cli("infer", vfr, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(jsonl_records(proc.stdout)) == 60


def test_corrupt_packets_are_skipped_and_the_frames_after_them_kept(tmp_path):
    """20 KB zeroed a third of the way in: the packets there fail to decode, the video goes on
    after them (as the ffmpeg tool does), and the loss is reported."""
    damaged = tmp_path / "damaged.mp4"
    make_clip(PETS, damaged, 60)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 20000] = bytes(20000)
    damaged.write_bytes(bytes(data))
    proc = run_cli("infer", damaged, "-f", "jsonl")
    assert proc.returncode == 1
    read = len(ok_records(proc.stdout))
    assert 30 < read < 60
    assert one_error_line(proc) == (
        f"posecli: error: {damaged}: video ended early: {read} of 60 frames (truncated or corrupt)"
    )


def test_mpeg_ts_cut_inside_a_packet_says_it_ended_early(tmp_path):
    """MPEG-TS declares no length, but it is made of 188-byte packets: a file that ends inside
    one was cut. The whole file and one cut on a packet boundary (which cannot be told) pass."""
    whole = tmp_path / "whole.ts"
    make_clip(PETS, whole, 40, fmt="mpegts")
    data = whole.read_bytes()
    assert len(data) % 188 == 0
    cut, even = tmp_path / "cut.ts", tmp_path / "even.ts"
    middle = len(data) // 376 * 188  # a packet boundary half way
    cut.write_bytes(data[: middle + 100])
    even.write_bytes(data[:middle])
    proc = run_cli("infer", cut, whole, even, "-f", "jsonl")
    assert proc.returncode == 1
    counts = Counter(r["image"] for r in ok_records(proc.stdout))
    assert counts[str(whole)] == 40 and 5 < counts[str(cut)] < 35
    assert counts[str(even)] in (counts[str(cut)], counts[str(cut)] - 1)
    reason = f"video ended early: {counts[str(cut)]} frames (it ends inside an MPEG-TS packet)"
    assert one_error_line(proc) == f"posecli: error: {cut}: {reason}"
    counted = [VideoSource(str(path)).counted_frames() for path in (whole, cut)]
    assert counted == [40, 0]  # so --skip-existing never takes the cut one for finished


@pytest.mark.parametrize(
    ("fmt", "codec", "fps"),
    [("h264", "libx264", 15), ("h264", "libx264", 30), ("m4v", "mpeg4", Fraction(30000, 1001))],
)
def test_raw_streams_are_timed_at_the_rate_they_declare(tmp_path, fmt, codec, fps):
    """A raw H.264 stream (as Raspberry Pi cameras record) carries no timestamps; its frames
    are timed, and its annotated copy made, at the rate the stream declares, not at FFmpeg's
    default 25 fps (nor at an MPEG-4 stream's time resolution)."""
    raw = tmp_path / f"camera.{fmt}"
    with av.open(str(PETS)) as inp, av.open(str(raw), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 384, 288, "yuv420p"
        for _, frame in zip(range(12), inp.decode(video=0), strict=False):
            bgr = frame.to_ndarray(width=384, height=288, format="bgr24")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode(None))
    proc = run_cli("infer", raw, "-f", "jsonl", "--save-dir", tmp_path / "saved")
    assert proc.returncode == 0, proc.stderr.decode()
    times = [r["time"] for r in jsonl_records(proc.stdout)]
    assert times == [round(i / float(fps), 6) for i in range(12)]  # i/fps: no drifting sum
    assert video_info(tmp_path / "saved/camera.mp4")[:2] == (12, fps)


@pytest.mark.parametrize(
    ("turns", "rotation", "hflip"),
    [(1, -90, False), (-1, 90, False), (2, 180, False), (0, 0, True)],
)
def test_a_rotated_phone_video_is_read_upright(tmp_path, turns, rotation, hflip):
    """A portrait phone video is stored sideways (`turns` counter-clockwise quarter turns) with
    a display matrix saying how to turn it back: its frames, poses, size and annotated copy are
    upright, as players show it. A mirroring matrix is not applied: the frames stay as stored.
    (Lossless 4:4:4, so turned pixels are the upright ones and the poses are the same.)"""
    upright, turned = tmp_path / "upright.mp4", tmp_path / "turned.mp4"
    for path, k in ((upright, 0), (turned, turns)):
        with av.open(str(PAN_720)) as inp, av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=30, options={"qp": "0"})
            stream.width, stream.height = (360, 640) if k % 2 else (640, 360)
            stream.pix_fmt = "yuv444p"
            if path == turned:
                stream.set_display_rotation(rotation, hflip=hflip)
            for _, frame in zip(range(6), inp.decode(video=0), strict=False):
                bgr = np.rot90(frame.to_ndarray(width=640, height=360, format="bgr24"), k)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    proc = run_cli("infer", upright, turned, "-f", "jsonl", "--save-dir", tmp_path / "saved")
    assert proc.returncode == 0, proc.stderr.decode()
    records = jsonl_records(proc.stdout)
    assert {(r["width"], r["height"]) for r in records} == {(640, 360)}
    assert [r["poses"] for r in records[:6]] == [r["poses"] for r in records[6:]]
    assert sum(len(r["poses"]) for r in records[:6]) >= 6
    assert video_info(tmp_path / "saved/turned.mp4")[2:4] == (640, 360)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "cannot decode: not a video, or a corrupt one"),
        (b"not a video at all\n" * 40, "cannot decode: not a video, or a corrupt one"),
    ],
)
def test_empty_or_non_video_mp4_is_one_line_and_the_rest_goes_on(tmp_path, content, reason):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    proc = run_cli("infer", bad, BUS, "-f", "jsonl")
    assert proc.returncode == 1
    assert [r["image"] for r in ok_records(proc.stdout)] == [str(BUS)]
    assert one_error_line(proc) == f"posecli: error: {bad}: {reason}"


def test_unsupported_codec_is_one_line(tmp_path):
    odd = tmp_path / "odd.avi"
    odd.write_bytes(PETS.read_bytes().replace(b"H264", b"QQQQ"))
    proc = run_cli("infer", odd, "-f", "jsonl")
    assert proc.returncode == 1 and ok_records(proc.stdout) == []
    assert one_error_line(proc) == (
        f"posecli: error: {odd}: unsupported video codec (no decoder for it in FFmpeg)"
    )


def test_missing_camera_is_one_line(tmp_path):
    proc = run_cli("infer", "9", "-f", "jsonl")
    assert proc.returncode == 1
    assert one_error_line(proc) == "posecli: error: 9: no camera at /dev/video9"


@pytest.mark.parametrize("name", ["clip.mp4", "photo.jpg"])
def test_url_that_never_answers_times_out_with_one_line(name):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{name}"
        started = time.monotonic()
        proc = run_cli("infer", url, "--timeout", "1", "-f", "jsonl")
    assert time.monotonic() - started < 8  # the default timeout is 10 s
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"posecli: error: {url}: no answer within the timeout (--timeout)"
    )


class Server(LocalServer):
    """An HTTP server on 127.0.0.1 in a thread: files from a folder; MJPEG streams:
    /live.mjpg, `frames` JPEGs 10 ms apart that then stop, /slow.mjpg, 15 JPEGs at 10 fps,
    /endless.mjpg, JPEGs at 10 fps until the client goes; and /garbage.mjpg, 3 JPEGs then
    undecodable ones until the client goes."""

    def __init__(self, folder: Path, jpeg: bytes, frames: int):
        streams = {"/live.mjpg": (frames, 0.01), "/slow.mjpg": (15, 0.1),
                   "/endless.mjpg": (None, 0.1)}  # fmt: skip

        class Handler(QuietHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                if self.path == "/garbage.mjpg":
                    noise = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
                    return self.send_mjpeg((jpeg if i < 3 else noise for i in itertools.count()),
                                           0.005)  # fmt: skip
                if self.path not in streams:
                    return super().do_GET()
                count, interval = streams[self.path]
                self.send_mjpeg(itertools.repeat(jpeg, *([count] if count else [])), interval)

        super().__init__(Handler)


@pytest.fixture(scope="module")
def server(pan_clip):
    _, jpeg = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(BUS)), (405, 540)))
    served = pan_clip.parent / "served"
    served.mkdir(exist_ok=True)
    # Python's http.server has no range requests: the index must come first (as for the web).
    make_clip(PAN_720, served / "pan.mp4", 24, size=(640, 360), options={"movflags": "+faststart"})
    (served / "bus.jpg").write_bytes(BUS.read_bytes())
    srv = Server(served, jpeg.tobytes(), frames=15)
    yield srv
    srv.close()


def test_http_video_and_image_urls(server, pan_clip):
    proc = run_cli("infer", f"{server.url}/pan.mp4", f"{server.url}/bus.jpg", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    local = jsonl_records(run_cli("infer", pan_clip, BUS, "-f", "jsonl").stdout)
    assert [r["frame"] for r in records[:-1]] == list(range(24))
    assert [r["poses"] for r in records] == [r["poses"] for r in local]
    assert records[-1]["image"] == f"{server.url}/bus.jpg" and "frame" not in records[-1]


def test_a_stream_of_undecodable_frames_is_given_up(server):
    """Corrupt packets are skipped, but a live stream that sends nothing else is left after
    100 in a row, with the frames it gave before: it does not run on for ever."""
    url = f"{server.url}/garbage.mjpg"
    proc = run_cli("infer", url, "--every-frame", "-f", "jsonl")
    assert proc.returncode == 1
    assert len(ok_records(proc.stdout)) == 3
    reason = "stream stopped after 3 frames (cannot decode: 100 packets in a row)"
    assert one_error_line(proc) == f"posecli: error: {url}: {reason}"


def test_mjpeg_stream_that_stops_keeps_its_frames(server):
    url = f"{server.url}/live.mjpg"
    proc = run_cli("infer", url, "--every-frame", "-f", "jsonl")
    assert proc.returncode == 1
    records = ok_records(proc.stdout)
    assert [r["frame"] for r in records] == list(range(15))
    assert all(len(r["poses"]) >= 3 for r in records)
    assert one_error_line(proc).startswith(f"posecli: error: {url}: stream stopped after 15 frames")
    assert "0 frames dropped" in proc.stderr.decode()


def test_mjpeg_stream_frames_are_timed_on_arrival(server):
    """MJPEG has no timestamps: a 10 fps stream's frames are 0.1 s apart, as they arrive,
    not at FFmpeg's guess of 25 fps."""
    proc = run_cli("infer", f"{server.url}/slow.mjpg", "--every-frame", "-f", "jsonl")
    times = [r["time"] for r in jsonl_records(proc.stdout) if "time" in r]
    assert len(times) == 15
    assert 0.08 < float(np.median(np.diff(times))) < 0.12
    assert 1.2 < times[-1] - times[0] < 2.0


def test_live_stream_drops_frames_while_inference_is_behind(server):
    proc = run_cli("infer", f"{server.url}/live.mjpg", "-f", "jsonl", "--threads", "1")
    records = ok_records(proc.stdout)
    summary = proc.stderr.decode().splitlines()[-1]
    dropped = int(re.search(r"(\d+) frames? dropped", summary)[1])
    assert len(records) + dropped == 15
    assert [r["frame"] for r in records] == sorted({r["frame"] for r in records})


def test_frame_queue_keeps_only_the_newest_frame_for_live_sources():
    frames = FrameQueue(4, threading.Event())
    tasks = [FrameTask("x", None) for _ in range(3)]  # type: ignore[arg-type]
    for task in tasks:
        assert frames.put(task, drop_stale=True)
    frames.put(SourceEnd("x", 3, 0))
    assert list(frames.items) == [tasks[-1], SourceEnd("x", 3, 0)] and frames.dropped == 2
    waiting = FrameQueue(2, threading.Event())
    assert waiting.put(tasks[0]) and waiting.put(tasks[1])
    waiting.close()
    assert not waiting.put(tasks[2]) and waiting.dropped == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_video_keeps_records_and_leaves_no_partial_copy(tmp_path, sig):
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    command = [sys.executable, "-m", "posecli", "infer", PETS, "-o", out, "--save-dir", saved]
    proc = subprocess.Popen(list(map(str, command)), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert b"Traceback" not in err and b"interrupted" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(len(records))) and len(records) < 795
    assert list(saved.iterdir()) == []


def start_infer(*args) -> subprocess.Popen:
    """posecli infer ARGS in the background, its standard error kept."""
    command = [sys.executable, "-m", "posecli", "infer", *map(str, args)]
    return subprocess.Popen(command, stderr=subprocess.PIPE)


def wait_for_records(path: Path, count: int, source: str | None = None) -> None:
    """Wait until a jsonl file has `count` records (of `source` if given)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if sum(source is None or json.loads(line)["image"] == source for line in lines) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {count} records")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_a_live_stream_and_keeps_its_annotated_copy(server, tmp_path, sig):
    """A camera or stream ends only by Ctrl-C: it ends as a stream that stops, exit 0."""
    out, saved = tmp_path / "live.jsonl", tmp_path / "live"
    proc = start_infer(f"{server.url}/endless.mjpg", "-o", out, "--save-dir", saved)
    wait_for_records(out, 8)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == sorted({r["frame"] for r in records})
    assert [p.name for p in saved.iterdir()] == ["endless.mp4"]
    assert video_info(saved / "endless.mp4")[0] == len(records)
    summary = err.decode().splitlines()[-1]
    assert summary.startswith(f"1 video, {len(records)} frames, ") and "interrupted" not in summary


def test_a_second_ctrl_c_interrupts_and_a_file_video_keeps_no_copy(server, tmp_path):
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    url = f"{server.url}/endless.mjpg"
    proc = start_infer(url, PETS, "-o", out, "--save-dir", saved)
    wait_for_records(out, 5)
    proc.send_signal(signal.SIGINT)  # ends the stream; the video comes next
    wait_for_records(out, 10, str(PETS))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.decode().endswith("posecli: error: interrupted\n")
    assert [p.name for p in saved.iterdir()] == ["endless.mp4"]
    streamed = sum(json.loads(line)["image"] == url for line in out.read_text().splitlines())
    assert video_info(saved / "endless.mp4")[0] == streamed


def test_a_second_signal_while_a_live_stream_ends_interrupts(server, tmp_path):
    """A second signal while the stream is ending aborts it: no copy. (Two Ctrl-Cs sent at
    once are one signal to the kernel: SIGTERM is the second one here.)"""
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    proc = start_infer(f"{server.url}/endless.mjpg", "-o", out, "--save-dir", saved)
    wait_for_records(out, 5)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143) and b"interrupted" in err and b"Traceback" not in err
    assert list(saved.iterdir()) == []


def test_skip_existing_resumes_a_folder_of_videos(pan_clip, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    make_clip(PETS, folder / "a.avi", 12, codec="mpeg4", fmt="avi")
    (folder / "b.mp4").write_bytes(pan_clip.read_bytes())
    out = tmp_path / "out.jsonl"
    assert run_cli("infer", folder, "-o", out).returncode == 0
    complete = out.read_text().splitlines()
    assert len(complete) == 12 + 24
    out.write_text("\n".join(complete[:20]) + "\n")  # as if stopped in b's 8th frame
    proc = run_cli("infer", folder, "-o", out, "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert b"24 frames" in proc.stderr and b"1 skipped" in proc.stderr
    assert sorted(out.read_text().splitlines()) == sorted(complete)


@pytest.mark.parametrize("name", ["clip.mkv", "mid-gop.ts"])
def test_skip_existing_knows_a_finished_video_without_a_frame_count(tmp_path, name):
    """Matroska and MPEG-TS declare no frame count: their packets, counted from the first
    keyframe (a TS recording can start mid-GOP), tell that the run finished a video (it was
    redone on every resume), and that a run cut short did not."""
    clip = tmp_path / name
    if name.endswith(".mkv"):
        make_clip(PETS, clip, 12)
    else:
        make_clip(PETS, tmp_path / "whole.ts", 36, gop=10)
        data = (tmp_path / "whole.ts").read_bytes()
        clip.write_bytes(data[(len(data) // 3) // 188 * 188 :])
    out = tmp_path / "out.jsonl"
    assert run_cli("track", clip, "-o", out).returncode == 0
    complete = out.read_text()
    frames = len(complete.splitlines())
    proc = run_cli("track", clip, "-o", out, "--skip-existing")
    assert proc.returncode == 0 and b"1 skipped" in proc.stderr and out.read_text() == complete
    out.write_text("".join(complete.splitlines(keepends=True)[:5]))
    proc = run_cli("track", clip, "-o", out, "--skip-existing")
    assert proc.returncode == 0 and f"{frames} frames".encode() in proc.stderr
    assert out.read_text() == complete


def test_skip_existing_redoes_a_truncated_matroska_video(tmp_path):
    """A cut Matroska file decodes all its packets: it is still not finished (the declared
    duration shows the cut), so a resume does it again and says so again."""
    whole = tmp_path / "whole.mkv"
    make_clip(PETS, whole, 60)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out.jsonl"
    for resume in ([], ["--skip-existing"]):
        proc = run_cli("track", cut, "-o", out, *resume)
        assert proc.returncode == 1 and b"skipped" not in proc.stderr
        assert "video ended early" in one_error_line(proc)


def test_skip_existing_redoes_a_video_recorded_at_another_stride(pan_clip, tmp_path):
    """8 records of frames 0-7 (a stride-1 run stopped early) are as many as a stride-3 run
    gives, but not its frames: the video is redone."""
    out = tmp_path / "out.jsonl"
    assert run_cli("infer", pan_clip, "-o", out).returncode == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:8]))
    proc = run_cli("infer", pan_clip, "-o", out, "--vid-stride", "3", "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert [r["frame"] for r in jsonl_records(out.read_bytes())] == list(range(0, 24, 3))


def test_track_does_not_take_infer_records_as_its_own(pan_clip, tmp_path):
    """Records without IDs (from infer) are not a finished track run: they are redone, so
    every pose in the file has an id."""
    out = tmp_path / "out.jsonl"
    assert run_cli("infer", pan_clip, "-o", out).returncode == 0
    proc = run_cli("track", pan_clip, "-o", out, "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert b"skipped" not in proc.stderr
    records = jsonl_records(out.read_bytes())
    poses = [p for r in records for p in r["poses"]]
    assert len(records) == 24 and poses and all(isinstance(p["id"], int) for p in poses)


def test_skip_existing_knows_a_finished_video_by_another_spelling(pan_clip, tmp_path):
    out = tmp_path / "out.jsonl"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(pan_clip.read_bytes())
    assert run_cli("infer", "clip.mp4", "-o", out, cwd=tmp_path).returncode == 0
    complete = out.read_text()
    proc = run_cli("infer", clip, "-o", out, "--skip-existing", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert b"1 skipped" in proc.stderr and out.read_text() == complete


def test_a_partly_recorded_video_is_not_redone_while_another_run_appends(pan_clip, tmp_path):
    """Redoing it means removing its records, which another appender's lines could be lost to."""
    out = tmp_path / "out.jsonl"
    assert run_cli("infer", pan_clip, "-o", out).returncode == 0
    partial = "".join(out.read_text().splitlines(keepends=True)[:10])
    out.write_text(partial)
    with open(out, "rb") as other:
        fcntl.flock(other, fcntl.LOCK_SH)  # a shard running with --append
        proc = run_cli("infer", pan_clip, "-o", out, "--skip-existing", "--append")
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"posecli: error: {pan_clip}: recorded in {out} but not finished, and another run is "
        "writing that file: not redone (run --skip-existing again when it has finished)"
    )
    assert out.read_text() == partial


def test_skip_existing_with_copies_redoes_what_has_no_copy_without_writing_it_twice(
    pan_clip, tmp_path
):
    """Items recorded in the jsonl file but without an annotated copy are done again: their
    old records go first, so each frame and image is recorded once."""
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    assert run_cli("infer", BUS, pan_clip, ZIDANE, "-o", out).returncode == 0
    complete = sorted(out.read_text().splitlines())
    assert len(complete) == 26
    saved.mkdir()
    (saved / "zidane.jpg").write_bytes(b"a copy from an earlier run")
    proc = run_cli("infer", BUS, pan_clip, ZIDANE, "-o", out, "--save-dir", saved,
                   "--skip-existing")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert b"1 skipped" in proc.stderr
    assert sorted(out.read_text().splitlines()) == complete
    assert sorted(p.name for p in saved.iterdir()) == ["bus.jpg", "pan.mp4", "zidane.jpg"]


def test_an_annotated_video_that_cannot_be_moved_into_place_keeps_the_results(pan_clip, tmp_path):
    saved = tmp_path / "saved"
    (saved / "pan.mp4").mkdir(parents=True)  # a folder where the copy should go
    proc = run_cli("infer", pan_clip, "-f", "jsonl", "--save-dir", saved)
    assert proc.returncode == 1
    assert len(jsonl_records(proc.stdout)) == 24
    line = one_error_line(proc)
    assert line.startswith(f"posecli: error: {saved / 'pan.mp4'}: cannot write: ")
    assert line.endswith("(annotated copy not saved; the results are written)")
    assert [p.name for p in saved.iterdir()] == ["pan.mp4"]


def test_a_stream_that_changes_to_an_odd_size_is_saved_scaled_to_its_first_size(tmp_path):
    """A transport stream whose second half is 241x181: every frame is recorded and the copy
    has every frame at the first size (the encoder thread used to die on the odd size and the
    run hung)."""
    parts = [tmp_path / "a.ts", tmp_path / "b.ts"]
    make_clip(PETS, parts[0], 6, size=(320, 240), fmt="mpegts")
    make_clip(PETS, parts[1], 6, size=(241, 181), fmt="mpegts", pix_fmt="yuv444p")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    saved = tmp_path / "saved"
    proc = run_cli("infer", joined, BUS, "-f", "jsonl", "--save-dir", saved, "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    assert [r["width"] for r in records] == [320] * 6 + [241] * 6 + [810]
    count, _, width, height, _ = video_info(saved / "joined.mp4")
    assert (count, width, height) == (12, 320, 240)


def test_a_video_too_small_to_encode_is_not_saved_and_its_results_are_kept(tmp_path):
    tiny = tmp_path / "tiny.mkv"
    make_clip(PETS, tiny, 3, size=(1, 1), codec="ffv1", pix_fmt="bgr0")
    saved = tmp_path / "saved"
    proc = run_cli("infer", tiny, BUS, "-f", "jsonl", "--save-dir", saved)
    assert proc.returncode == 1
    assert len(jsonl_records(proc.stdout)) == 4
    assert one_error_line(proc) == (
        f"posecli: error: {saved / 'tiny.mp4'}: cannot write: 1x1 is too small for H.264 "
        "(annotated copy not saved; the results are written)"
    )
    assert sorted(p.name for p in saved.iterdir()) == ["bus.jpg"]


def test_a_video_that_gives_no_frame_gets_no_copy_and_is_redone_on_resume(tmp_path):
    """An mp4 cut just after its header opens (30 frames said) but gives none: no empty copy
    that would look finished, so --skip-existing tries it again."""
    whole = tmp_path / "whole.mp4"
    make_clip(PETS, whole, 30, options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.find(b"mdat") + 200])
    saved = tmp_path / "saved"
    for resume in ([], ["--skip-existing"]):
        proc = run_cli("track", cut, "--save-dir", saved, "-f", "jsonl", *resume)
        assert proc.returncode == 1 and "skipped" not in proc.stderr.decode()
        assert one_error_line(proc).endswith(
            "video ended early: 0 of 30 frames (truncated or corrupt)"
        )
        assert list(saved.iterdir()) == []


def test_a_video_with_no_frame_at_all_is_an_error(tmp_path):
    """An AVI with a video stream and no frame (a recording that never got one) is named as a
    failure, not counted as a success with nothing in it."""
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 320, 240
        out.start_encoding()  # the header, with no frame after it
    proc = run_cli("infer", empty, BUS, "-f", "jsonl")
    assert proc.returncode == 1
    assert [r["image"] for r in ok_records(proc.stdout)] == [str(BUS)]
    assert one_error_line(proc) == f"posecli: error: {empty}: no frames in this video"


def test_a_matroska_file_cut_before_its_first_frame_is_cut_not_empty(tmp_path):
    whole = tmp_path / "whole.mkv"
    make_clip(PETS, whole, 12)
    cut = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[: data.find(b"\x1f\x43\xb6\x75") + 40])  # into the first cluster
    proc = run_cli("infer", cut, "-f", "jsonl")
    assert proc.returncode == 1 and ok_records(proc.stdout) == []
    reason = "video ended early: 0 frames, 0.0 of 1.2 s (truncated or corrupt)"
    assert one_error_line(proc) == f"posecli: error: {cut}: {reason}"


@pytest.mark.parametrize("limit", [8192, 100_000])
def test_an_annotated_video_cut_short_by_a_file_size_limit_is_not_saved(pan_clip, tmp_path, limit):
    """The copy hits `ulimit -f` while frames are muxed or only when the file is closed (its
    index is written last): either way it is reported and not moved into place."""
    saved = tmp_path / "saved"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "posecli", "infer", str(pan_clip), "-f", "jsonl",
               "--save-dir", str(saved)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, timeout=300, preexec_fn=small_files)
    assert proc.returncode == 1
    assert len(jsonl_records(proc.stdout)) == 24
    line = one_error_line(proc)
    assert line.startswith(f"posecli: error: {saved / 'pan.mp4'}: cannot write: ")
    assert line.endswith("(annotated copy not saved; the results are written)")
    assert list(saved.iterdir()) == []


def test_skip_existing_keeps_the_records_of_a_file_finished_under_another_spelling(tmp_path):
    """A file given again under another spelling is redone (its copy has another name), but
    the records of the finished spelling stay."""
    (tmp_path / "imgs").mkdir()
    for photo in (BUS, ZIDANE):
        (tmp_path / "imgs" / photo.name).write_bytes(photo.read_bytes())
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    first = ["imgs/bus.jpg", "imgs/zidane.jpg", "-o", out, "--save-dir", saved]
    assert run_cli("infer", *first, cwd=tmp_path).returncode == 0
    proc = run_cli("infer", *first, "./imgs/bus.jpg", "--skip-existing", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    images = sorted(r["image"] for r in jsonl_records(out.read_bytes()))
    assert images == ["./imgs/bus.jpg", "imgs/bus.jpg", "imgs/zidane.jpg"]


def test_url_sources_can_be_saved_twice_into_the_same_folder(server, tmp_path):
    urls = [f"{server.url}/bus.jpg", f"{server.url}/pan.mp4"]
    for _ in range(2):
        proc = run_cli("infer", *urls, "--vid-stride", "8", "-f", "jsonl", "--save-dir", tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bus.jpg", "pan.mp4"]


RTSP_SERVER = """
import sys, gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer.new()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory.new()
factory.set_launch("( videotestsrc is-live=true num-buffers=40 pattern=ball ! "
                   "video/x-raw,format=I420,width=320,height=240,framerate=20/1 ! "
                   "jpegenc ! rtpjpegpay name=pay0 pt=26 )")
server.get_mount_points().add_factory("/test", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def test_rtsp_stream_gives_frames_until_it_stops(tmp_path):
    """Against GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi)."""
    python = "/usr/bin/python3"
    probe = [python, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"]
    if not Path(python).exists() or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("GStreamer's RTSP server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([python, "-c", RTSP_SERVER, str(port)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        url = f"rtsp://127.0.0.1:{port}/test"
        proc = run_cli("infer", url, "--every-frame", "--timeout", "3", "-f", "jsonl")
    finally:
        server.kill()
        server.wait()
    records = jsonl_records(proc.stdout)
    assert proc.returncode == 1
    assert 30 <= len(records) <= 40
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert np.allclose(np.diff([r["time"] for r in records]), 0.05, atol=0.01)
    assert one_error_line(proc) == (
        f"posecli: error: {url}: stream stopped after {len(records)} frames"
    )


def test_frame_progress_counts_only_the_frames_of_videos(capsys):
    progress = FrameProgress(quiet=True)
    progress.enabled = True
    progress.frame()  # an image before any video
    assert progress.done == 0 and capsys.readouterr().err == ""
    progress.begin(VideoStart("clip.mp4", 64, 48, Fraction(30), 10, False))
    progress.start -= 1.0
    progress.shown -= 1.0
    progress.frame()
    progress.end()
    progress.frame()  # an image after it
    assert progress.done == 1 and "clip.mp4: frame 1/10" in capsys.readouterr().err
