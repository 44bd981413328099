"""Hostile and odd inputs (issue 9): special files, pixel bombs, lying headers, native library
noise, binary standard input, interrupts, resuming by file identity, and the small things."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from PIL import Image

from crafted import (
    gif_claiming_size,
    jpeg_claiming_size,
    jpeg_cut_short,
    png_bomb,
    png_with_bad_crc,
    tiff_claiming_size,
)
from posecli import PoseEstimator
from posecli.core.errors import ImageError
from posecli.media import images
from posecli.model.registry import load_manifest
from posecli.pipeline.flow import ordered_map
from test_robustness import unprivileged

from conftest import BUS, COCO_IMAGES, ZIDANE, coco_files, jsonl_records, ok_records

RSS_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def run_quick(*args, stdin: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    """`python -m posecli ARGS`, failing the test rather than hanging if it does not end."""
    command = [sys.executable, "-m", "posecli", *map(str, args)]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, cwd=cwd)


def error_lines(stderr: bytes) -> list[str]:
    """Every line of stderr, each of which must be posecli's own."""
    return stderr.decode().splitlines()


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> dict:
    """Good photos beside special files, pixel bombs, lying and damaged files."""
    root = tmp_path_factory.mktemp("hostile")
    for good in (BUS, ZIDANE):
        shutil.copy(good, root / good.name)
    Image.open(BUS).save(root / "bus.gif")
    os.mkfifo(root / "fifo.jpg")
    (root / "zero.jpg").symlink_to("/dev/zero")
    (root / "random.png").symlink_to("/dev/urandom")
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    png_bomb(root / "ztxt-bomb.png", 20000, 20000, text_bytes=2_000_000)
    png_bomb(root / "bomb.png", 13000, 13000)
    tiff_claiming_size(root / "bomb.tif", 60000, 60000)
    gif_claiming_size(root / "bomb-gif.gif", 13000, 13000)
    jpeg_claiming_size(root / "bomb.jpg", 60000, 60000)
    jpeg_claiming_size(root / "lying.jpg", 12000, 12000)
    png_with_bad_crc(root / "bad-crc.png", BUS)
    bad = {
        "fifo.jpg": "not a regular file but a FIFO",
        "zero.jpg": "not a regular file but a character device",
        "random.png": "not a regular file but a character device",
        "dangling.jpg": "no such file",
        "ztxt-bomb.png": "20000x20000 = 400000000 pixels, above the limit",
        "bomb.png": "13000x13000 = 169000000 pixels, above the limit",
        "bomb.tif": "pixels, above the limit",
        "bomb-gif.gif": "13000x13000 = 169000000 pixels, above the limit",
        "bomb.jpg": "60000x60000 = 3600000000 pixels, above the limit",
        "lying.jpg": "truncated JPEG file (its header says 12000x12000",
        "bad-crc.png": "corrupt or truncated PNG file",
    }
    return {"root": root, "good": ["bus.gif", "bus.jpg", "zidane.jpg"], "bad": bad}


def test_hostile_folder_names_every_bad_file_once_and_keeps_every_good_one(hostile_folder):
    root = hostile_folder["root"]
    command = [sys.executable, "-m", "posecli", "infer", root, "-q", "-f", "jsonl"]
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *map(str, command)], capture_output=True, timeout=120
    )
    *lines, peak_kib = error_lines(proc.stderr)
    assert proc.returncode == 1, lines
    assert len(lines) == len(hostile_folder["bad"]), lines
    for name, reason in hostile_folder["bad"].items():
        (line,) = [x for x in lines if x.startswith(f"posecli: error: {root / name}: ")]
        assert reason in line, line
    records = ok_records(proc.stdout)
    assert sorted(os.path.basename(r["image"]) for r in records) == hostile_folder["good"]
    assert all(len(r["poses"]) >= 2 for r in records)
    assert int(peak_kib) < 1024 * 1024


def test_special_files_are_refused_when_named_too(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe")  # no extension: not opened to look for a video either
    proc = run_quick("infer", tmp_path / "pipe.jpg", "/dev/zero", tmp_path / "pipe", BUS,
                     "-f", "jsonl")  # fmt: skip
    assert proc.returncode == 1
    assert error_lines(proc.stderr)[:3] == [
        f"posecli: error: {tmp_path / 'pipe.jpg'}: not a regular file but a FIFO",
        "posecli: error: /dev/zero: not a regular file but a character device",
        f"posecli: error: {tmp_path / 'pipe'}: not a regular file but a FIFO",
    ]
    assert [r["image"] for r in ok_records(proc.stdout)] == [str(BUS)]


def test_files_over_max_bytes_are_refused_before_reading():
    proc = run_quick("infer", BUS, ZIDANE, "--max-bytes", "100000", "-q", "-f", "jsonl")
    size = BUS.stat().st_size
    assert error_lines(proc.stderr) == [
        f"posecli: error: {BUS}: file has {size} bytes, above the limit of 100000 (--max-bytes)"
    ]
    assert [r["image"] for r in ok_records(proc.stdout)] == [str(ZIDANE)]


def test_png_that_pillow_cannot_open_still_has_its_size_checked(tmp_path):
    png_bomb(tmp_path / "text.png", 2000, 1000, text_bytes=2_000_000)
    proc = run_quick("infer", tmp_path / "text.png", "--max-pixels", "1000000", "-f", "jsonl")
    assert proc.returncode == 1 and ok_records(proc.stdout) == []
    assert b"2000x1000 = 2000000 pixels, above the limit of 1000000" in proc.stderr


def damaged_png(path: Path, **options) -> bytes:
    """A 40x30 PNG whose pixel data is damaged, so that decoding it would fail."""
    Image.new("RGB", (40, 30), 90).save(path, **options)
    data = bytearray(path.read_bytes())
    idat = data.find(b"IDAT")
    data[idat + 4 : idat + 12] = b"\xff" * 8
    return bytes(data)


def test_png_header_is_read_without_decoding_the_pixels(tmp_path):
    header = images.read_header(damaged_png(tmp_path / "plain.png"))
    assert (header.format, header.width, header.height, header.orientation) == ("PNG", 40, 30, 1)
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = images.read_header(damaged_png(tmp_path / "turned.png", exif=exif))
    assert (turned.width, turned.height, turned.orientation) == (30, 40, 6)


def test_jpeg_with_a_lying_header_is_truncated_not_empty(tmp_path):
    jpeg_claiming_size(tmp_path / "lying.jpg", 12000, 12000)
    proc = run_quick("infer", tmp_path / "lying.jpg", "-f", "jsonl")
    assert proc.returncode == 1 and ok_records(proc.stdout) == []
    assert b"truncated JPEG file (its header says 12000x12000, but only" in proc.stderr


def test_native_library_messages_do_not_reach_stderr(tmp_path):
    jpeg_cut_short(tmp_path / "short.jpg", BUS, 60000)
    png_with_bad_crc(tmp_path / "crc.png", BUS)
    proc = run_quick("infer", tmp_path / "short.jpg", tmp_path / "crc.png", BUS, "-q")
    assert error_lines(proc.stderr) == [
        f"posecli: error: {tmp_path / 'crc.png'}: cannot decode: corrupt or truncated PNG file"
    ]
    assert len(ok_records(proc.stdout)) == 2


@pytest.mark.parametrize("data", [BUS.read_bytes(), b"x" * 10_000_000], ids=["jpeg", "no-newline"])
def test_image_data_on_stdin_is_one_clear_error(data):
    proc = run_quick("infer", "-", "-q", stdin=data)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "posecli: error: -: standard input holds image data, not paths; give the file name instead"
    ]


@pytest.mark.parametrize("delegate", ["/etc/hostname", "libm.so.6"])
def test_bad_delegate_is_one_line_without_a_traceback(delegate):
    """Not a library, or a library without TFLite's delegate entry points (the C maths
    library, which every Linux has)."""
    proc = run_quick("infer", BUS, "--delegate", delegate)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert line.startswith(f"posecli: error: {delegate}: cannot load delegate")


def test_a_delegate_file_in_the_current_folder_is_loaded_by_its_bare_name(tmp_path):
    """The dynamic loader does not look in the current folder for a bare name: posecli passes
    it the file's path. A library without delegate entry points is then refused for that."""
    maps = Path("/proc/self/maps").read_text().split()
    libm = next(word for word in maps if "/libm.so" in word or "/libm-" in word)
    shutil.copy(libm, tmp_path / "mine.so")  # the C maths library: a library, not a delegate
    proc = run_quick("infer", BUS, "--delegate", "mine.so", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert line.startswith("posecli: error: mine.so: cannot load delegate")
    assert "undefined symbol" in line and "No such file" not in line


def test_a_stuck_worker_does_not_hold_up_an_early_stop():
    release = threading.Event()

    def work(n: int) -> int:
        if n == 1:
            release.wait()
        return n

    results = ordered_map(work, range(8), workers=2, window=4)
    assert next(results) == 0
    closer = threading.Thread(target=results.close)
    closer.start()
    closer.join(timeout=10)
    stuck = closer.is_alive()
    release.set()
    assert not stuck


def test_watchdog_ends_a_process_whose_main_thread_is_blocked_in_native_code():
    code = (
        "import ctypes\n"
        "from posecli.run import interrupts\n"
        "interrupts.install()\n"
        "libc, mutex = ctypes.CDLL(None), ctypes.create_string_buffer(64)\n"
        "libc.pthread_mutex_lock(mutex)\n"
        "print('ready', flush=True)\n"
        "libc.pthread_mutex_lock(mutex)  # deadlocked in C: signal handlers never run\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.5)  # let it reach the second lock
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err == b"posecli: error: interrupted\n"


def test_repeated_ctrl_c_never_prints_a_traceback(tmp_path):
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "posecli", "infer", *[COCO_IMAGES] * 4, "-o", out]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_bytes().count(b"\n") >= 10):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for _ in range(30):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    lines = err.decode().splitlines()
    assert lines[-1] == "posecli: error: interrupted", lines
    assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode()
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_skip_existing_knows_a_folder_given_relative_then_absolute(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in coco_files(3):
        shutil.copy(path, photos / path.name)
    out = tmp_path / "out.jsonl"
    assert run_quick("infer", "photos", "-o", out, cwd=tmp_path).returncode == 0
    again = run_quick("infer", photos, "-o", out, "--skip-existing", cwd=tmp_path)
    assert again.returncode == 0
    assert error_lines(again.stderr)[-1].startswith("0 images, 0 failed, 3 skipped")
    assert len(out.read_text().splitlines()) == 3


def test_skip_existing_tells_apart_names_that_print_alike(tmp_path):
    byte_name = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    text_name = tmp_path / "caf\\xe9.jpg"
    shutil.copy(BUS, byte_name)
    shutil.copy(ZIDANE, text_name)
    out = tmp_path / "out.jsonl"
    assert run_quick("infer", os.fsdecode(byte_name), "-o", out).returncode == 0
    both = run_quick("infer", tmp_path, "-o", out, "--skip-existing")
    assert both.returncode == 0, both.stderr
    widths = sorted(r["width"] for r in jsonl_records(out.read_bytes()))
    assert 1280 in widths, "the file literally named caf\\xe9.jpg was never processed"
    third = run_quick("infer", tmp_path, "-o", out, "--skip-existing")
    assert error_lines(third.stderr)[-1].startswith("0 images, 0 failed, 2 skipped")


def test_models_list_and_info_agree_on_quantization():
    listing = run_quick("models", "list").stdout.decode().splitlines()[1:]
    listed = {line.split()[0].rstrip("*"): line.split()[2] for line in listing}
    for name, spec in load_manifest()[1].items():
        info = run_quick("models", "info", name).stdout.decode()
        assert f"quantization: {spec.quantization}\n" in info, name
        assert listed[name] == spec.quantization


def test_predict_file_gives_exactly_what_the_cli_writes(estimator):
    proc = run_quick("infer", BUS, ZIDANE, "-f", "jsonl")
    for record, path in zip(jsonl_records(proc.stdout), (BUS, ZIDANE), strict=True):
        assert estimator.predict_file(path).to_dict() == record


def test_full_decode_predict_file_matches_predict_on_an_opencv_image():
    full = PoseEstimator(reduced_decode=False)
    from_file = full.predict_file(ZIDANE).poses
    from_array = full.predict(cv2.imread(str(ZIDANE)))
    assert [p.to_dict() for p in from_file] == [p.to_dict() for p in from_array]


def test_summary_counts_are_singular_for_one():
    proc = run_quick("infer", ZIDANE, "--max-det", "1", "-f", "jsonl")
    assert error_lines(proc.stderr)[-1].startswith("1 image, 1 pose, 0 failed")


def test_shard_of_zero_says_what_is_wrong():
    proc = run_quick("infer", BUS, "--shard", "1/0")
    assert proc.returncode == 2 and b"N must be at least 1, not 0" in proc.stderr


def test_symlink_loop_is_a_warning_not_a_failure(tmp_path):
    shutil.copy(BUS, tmp_path / "bus.jpg")
    (tmp_path / "loop").symlink_to(tmp_path)
    proc = run_quick("infer", tmp_path, "-r", "-f", "jsonl")
    assert proc.returncode == 0
    lines = error_lines(proc.stderr)
    assert lines[0] == f"posecli: warning: {tmp_path / 'loop'}: symbolic link loop, not followed"
    assert lines[1].startswith("1 image, ")
    assert error_lines(run_quick("infer", tmp_path, "-r", "-q").stderr) == []


def test_folder_scans_take_every_format_the_decoder_reads(tmp_path):
    Image.open(BUS).save(tmp_path / "bus.gif")
    Image.open(ZIDANE).save(tmp_path / "zidane.avif")
    proc = run_quick("infer", tmp_path, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(r["image"]).name for r in jsonl_records(proc.stdout)) == [
        "bus.gif",
        "zidane.avif",
    ]


def test_unreadable_folder_is_one_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    command = [sys.executable, "-m", "posecli", "infer", locked]
    proc = subprocess.run(unprivileged(command), capture_output=True, timeout=120)
    assert proc.returncode == 1
    assert error_lines(proc.stderr)[:-1] == [f"posecli: error: {locked}: permission denied"]


def test_directory_given_as_model_says_so(tmp_path):
    proc = run_quick("infer", BUS, "-m", tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"posecli: error: {tmp_path}: is a directory, not a model file"
    ]


def test_bench_names_the_broken_file_and_times_the_others(tmp_path):
    """One line for the broken image, exit 1, and the report of the good ones cycled to -n;
    with no good image, exit 2."""
    shutil.copy(BUS, tmp_path / "bus.jpg")
    (tmp_path / "broken.jpg").write_bytes(BUS.read_bytes()[:5000])
    proc = run_quick("bench", "--images", tmp_path, "-n", "3", "--json")
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert line.startswith(f"posecli: error: {tmp_path / 'broken.jpg'}: cannot decode")
    report = json.loads(proc.stdout)
    assert report["images"] == 3 and report["skipped"][0][0] == str(tmp_path / "broken.jpg")
    (tmp_path / "bus.jpg").unlink()
    proc = run_quick("bench", "--images", tmp_path, "-n", "3")
    assert proc.returncode == 2 and not proc.stdout
    (line,) = error_lines(proc.stderr)
    assert line.startswith(f"posecli: error: {tmp_path / 'broken.jpg'}: cannot decode")


def test_eval_and_models_pull_refuse_special_files(tmp_path):
    os.mkfifo(tmp_path / "ann.json")
    proc = run_quick("eval", "--annotations", tmp_path / "ann.json", "--images", tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"posecli: error: {tmp_path / 'ann.json'}: not a regular file but a FIFO"
    ]
    spec = load_manifest()[1]["yolov8n-pose-192"]
    os.mkfifo(tmp_path / spec.file)
    pull = run_quick("models", "pull", spec.name, "--from", tmp_path, "--dest", tmp_path / "d")
    assert pull.returncode == 2
    assert b"not a regular file but a FIFO" in pull.stderr


def test_max_bytes_is_the_largest_size_read(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(bytes(10))
    assert images.read_bytes(path, max_bytes=10) == bytes(10)
    with pytest.raises(ImageError, match="file has 10 bytes, above the limit of 9"):
        images.read_bytes(path, max_bytes=9)


def test_a_newline_in_a_file_name_is_escaped_in_text_and_messages(tmp_path):
    shutil.copy(BUS, tmp_path / "a\nb.jpg")
    (tmp_path / "bad\n.jpg").write_bytes(b"not an image")
    proc = run_quick("infer", tmp_path, "-f", "text")
    assert proc.returncode == 1
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path}/a\\nb.jpg: 810x1080, "), lines
    errors = [line for line in error_lines(proc.stderr) if line.startswith("posecli: error:")]
    assert errors == [f"posecli: error: {tmp_path}/bad\\n.jpg: cannot decode: not an image"]
    records = jsonl_records(run_quick("infer", tmp_path / "a\nb.jpg", "-f", "jsonl").stdout)
    assert records[0]["image"] == f"{tmp_path}/a\nb.jpg"
