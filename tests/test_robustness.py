"""Bad inputs, faults and interrupts: clear one-line errors, nothing lost, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import BUS, COCO_IMAGES, ZIDANE, coco_files, jsonl_records, run_cli
from reference import iou

NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def unprivileged(args: list) -> list:
    """Prefix a command so that file permissions bind even when the tests run as root."""
    return [*NO_DAC, *map(str, args)] if os.geteuid() == 0 else list(map(str, args))


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def exif_rotated_bus(path: Path) -> None:
    """bus.jpg stored turned 90 degrees clockwise, with EXIF orientation 8 to show it upright."""
    image = Image.open(BUS).transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    image.save(path, exif=exif, quality=95)


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> dict:
    """Good photos in every pixel format beside every kind of bad file."""
    root = tmp_path_factory.mktemp("messy")
    bus = cv2.imread(str(BUS))
    good = {
        "bus.jpg": lambda p: shutil.copy(BUS, p),
        "zidane.jpg": lambda p: shutil.copy(ZIDANE, p),
        "coco.jpg": lambda p: shutil.copy(coco_files(1)[0], p),
        "gray.jpg": lambda p: cv2.imwrite(str(p), cv2.cvtColor(bus, cv2.COLOR_BGR2GRAY)),
        "rgba.png": lambda p: cv2.imwrite(str(p), cv2.cvtColor(bus, cv2.COLOR_BGR2BGRA)),
        "deep16.png": lambda p: cv2.imwrite(str(p), bus.astype(np.uint16) * 257),
        "cmyk.jpg": lambda p: Image.open(BUS).convert("CMYK").save(p),
        "rotated.jpg": exif_rotated_bus,
        "one_pixel.png": lambda p: cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8)),
        "strip.png": lambda p: cv2.imwrite(str(p), np.full((1, 10000, 3), 200, np.uint8)),
        "my photo.jpg": lambda p: shutil.copy(BUS, p),
        "folder.jpg/inside.jpg": lambda p: shutil.copy(ZIDANE, p),
    }
    bad = {
        "zero.jpg": (lambda p: p.write_bytes(b""), "empty file"),
        "truncated.jpg": (
            lambda p: p.write_bytes(BUS.read_bytes()[:60000]),
            "corrupt or truncated JPEG",
        ),
        "random.jpg": (
            lambda p: p.write_bytes(np.random.default_rng(1).bytes(5000)),
            "not an image",
        ),
        "text.png": (lambda p: p.write_text("just some words\n" * 50), "not an image"),
        "bomb.png": (lambda p: png_claiming_size(p, 100000, 100000), "above the limit"),
        "dangling.jpg": (lambda p: p.symlink_to(root / "gone.jpg"), "no such file"),
        "locked.jpg": (lambda p: (shutil.copy(BUS, p), p.chmod(0)), "permission denied"),
    }
    (root / "loop").symlink_to(root)
    for name, make in good.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make(root / name)
    for name, (make, _) in bad.items():
        make(root / name)
    latin1 = os.fsencode(root) + b"/caf\xe9.jpg"
    shutil.copy(BUS, latin1)
    return {"root": root, "good": [*good, "caf\\xe9.jpg"], "bad": bad}


@pytest.fixture(scope="module")
def messy_run(messy_folder) -> subprocess.CompletedProcess:
    root = messy_folder["root"]
    args = [
        sys.executable,
        "-m",
        "posecli",
        "infer",
        root,
        "-r",
        root / "missing.jpg",
        root / "notes.md",
        "--format",
        "jsonl",
    ]
    (root / "notes.md").write_text("a text file given by name\n")
    return subprocess.run(unprivileged(args), capture_output=True, timeout=300)


def test_messy_folder_exits_1_and_names_every_bad_file(messy_folder, messy_run):
    root = messy_folder["root"]
    err = messy_run.stderr.decode()
    assert messy_run.returncode == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("posecli: error: ")]
    for name, (_, reason) in messy_folder["bad"].items():
        matching = [e for e in errors if e.startswith(f"posecli: error: {root / name}: ")]
        assert len(matching) == 1, f"{name} not reported once: {errors}"
        assert reason in matching[0]
    assert f"posecli: error: {root / 'missing.jpg'}: no such file" in err
    assert f"posecli: error: {root / 'notes.md'}: cannot decode: not an image" in err
    assert f"posecli: warning: {root / 'loop'}: symbolic link loop, not followed" in err
    assert len(errors) == len(messy_folder["bad"]) + 2
    good = len(messy_folder["good"])
    assert err.splitlines()[-1].startswith(f"{good} images, ")
    assert f", {len(errors)} failed" in err.splitlines()[-1]


def test_messy_folder_records_every_bad_file_with_the_reason_on_stderr(messy_run):
    failed = [r for r in jsonl_records(messy_run.stdout) if "error" in r]
    assert all(set(r) == {"image", "error"} for r in failed)
    errors = [line.removeprefix("posecli: error: ") for line in messy_run.stderr.decode()
              .splitlines() if line.startswith("posecli: error: ")]  # fmt: skip
    assert sorted(f"{r['image']}: {r['error']}" for r in failed) == sorted(errors)


def test_messy_folder_writes_complete_results_for_every_good_file(messy_folder, messy_run):
    records = [r for r in jsonl_records(messy_run.stdout) if "error" not in r]
    names = sorted(os.path.relpath(r["image"], messy_folder["root"]) for r in records)
    assert names == sorted(messy_folder["good"])
    by_name = {os.path.basename(r["image"]): r for r in records}
    for name in [
        "bus.jpg",
        "gray.jpg",
        "rgba.png",
        "deep16.png",
        "cmyk.jpg",
        "my photo.jpg",
        "caf\\xe9.jpg",
        "rotated.jpg",
    ]:
        record = by_name[name]
        assert (record["width"], record["height"]) == (810, 1080)
        assert len(record["poses"]) >= 2, name
    tiny, strip = by_name["one_pixel.png"], by_name["strip.png"]
    assert (tiny["width"], tiny["height"], strip["width"], strip["height"]) == (1, 1, 10000, 1)
    for pose in tiny["poses"] + strip["poses"]:
        assert max(pose["box"][0::2]) <= 10000 and max(pose["box"][1::2]) <= 1


def test_exif_rotated_photo_has_keypoints_on_the_upright_people(messy_run):
    by_name = {os.path.basename(r["image"]): r for r in jsonl_records(messy_run.stdout)}
    upright, rotated = by_name["bus.jpg"]["poses"], by_name["rotated.jpg"]["poses"]
    for person in upright[:2]:
        twin = max(rotated, key=lambda p: iou(person["box"], p["box"]))
        assert iou(person["box"], twin["box"]) > 0.8
        nose, twin_nose = np.array(person["keypoints"][0][:2]), np.array(twin["keypoints"][0][:2])
        assert np.abs(nose - twin_nose).max() < 20


def test_directory_named_like_an_image_without_r(messy_folder):
    """Named on the command line, such a folder is a folder; in a scan without -r it is a
    subfolder like any other, not looked into and not a failure."""
    proc = run_cli("infer", messy_folder["root"] / "folder.jpg", messy_folder["root"] / "bus.jpg")
    assert proc.returncode == 0
    flat = run_cli("infer", messy_folder["root"], "-f", "jsonl")
    assert str(messy_folder["root"] / "folder.jpg") not in flat.stderr.decode()
    assert not any("folder.jpg" in r["image"] for r in jsonl_records(flat.stdout))


def test_empty_folder_is_a_clear_error(tmp_path):
    proc = run_cli("infer", tmp_path)
    assert proc.returncode == 1
    assert f"posecli: error: {tmp_path}: no images or videos in this folder" in proc.stderr.decode()


def test_max_pixels_is_adjustable(tmp_path):
    proc = run_cli("infer", BUS, "--max-pixels", "10000")
    assert (
        proc.returncode == 1
        and b"810x1080 = 874800 pixels, above the limit of 10000" in proc.stderr
    )


def test_failed_run_leaves_an_existing_output_untouched(tmp_path):
    out, table = tmp_path / "out.json", tmp_path / "out.csv"
    out.write_text("OLD")
    table.write_text("OLD")
    assert run_cli("infer", BUS, "-m", tmp_path / "no.tflite", "-o", out).returncode == 2
    assert run_cli("infer", tmp_path / "nothing.jpg", "-o", table).returncode == 1
    assert out.read_text() == "OLD" and table.read_text() == "OLD"  # csv has no error records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.json"]


def test_a_run_whose_every_input_failed_writes_their_error_records(tmp_path):
    out, missing = tmp_path / "out.json", tmp_path / "nothing.jpg"
    out.write_text("OLD")
    assert run_cli("infer", missing, "-o", out).returncode == 1
    error = "no such file or directory"
    assert json.loads(out.read_text()) == [{"image": str(missing), "error": error}]


def start_long_run(*args) -> subprocess.Popen:
    """posecli infer over the COCO folder four times, in the background."""
    command = [sys.executable, "-m", "posecli", "infer", *[COCO_IMAGES] * 4, *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    """Wait until a file has at least count lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} lines")


def test_ctrl_c_keeps_finished_jsonl_lines_and_exits_130(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = start_long_run("--format", "jsonl", "-o", out)
    wait_for_lines(out, 20)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 130
    assert b"Traceback" not in err and b"interrupted" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert 20 <= len(records) < 4 * 408


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_json_output_never_looks_complete(tmp_path, sig):
    out = tmp_path / "out.json"
    proc = start_long_run("--format", "json", "-o", out, "--save-dir", tmp_path / "saved")
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "saved").glob("*.jpg"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (128 + sig, -sig)
    assert not out.exists()
    assert b"Traceback" not in err
    if sig != signal.SIGKILL:
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    saved = list((tmp_path / "saved").glob("*.jpg"))
    assert all(cv2.imread(str(p)) is not None for p in saved)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_json_on_standard_output_is_a_closed_array(tmp_path, sig):
    """What reached standard output before Ctrl-C parses (for jq): the array is closed."""
    saved = tmp_path / "saved"
    proc = start_long_run("--format", "json", "--save-dir", saved)
    deadline = time.monotonic() + 60
    while len(list(saved.glob("*.jpg"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig and b"interrupted" in err
    records = json.loads(out)
    assert 10 <= len(records) < 4 * 408 and all("poses" in r for r in records)


def test_closed_pipe_exits_quietly():
    command = f"{sys.executable} -m posecli infer {COCO_IMAGES} --format jsonl | head -1"
    proc = subprocess.run(command, shell=True, capture_output=True, timeout=120)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["image"]
    assert proc.stderr == b""


def test_skip_existing_resumes_a_jsonl_run(tmp_path):
    out = tmp_path / "out.jsonl"
    first = coco_files(5)
    assert run_cli("infer", *first, "-o", out).returncode == 0
    with open(out, "ab") as f:
        f.write(b'{"image": "torn')
    proc = run_cli("infer", *coco_files(8), "-o", out, "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert b"3 images, " in proc.stderr and b"5 skipped" in proc.stderr
    images = [json.loads(line)["image"] for line in out.read_text().splitlines()]
    assert images == [str(p) for p in coco_files(8)]


def test_skip_existing_redoes_failed_inputs_and_records_each_once(tmp_path):
    out, fixed, missing = tmp_path / "out.jsonl", tmp_path / "fixed.jpg", tmp_path / "nope.jpg"
    fixed.write_bytes(BUS.read_bytes()[:2000])
    assert run_cli("infer", fixed, missing, ZIDANE, "-o", out).returncode == 1
    shutil.copy(BUS, fixed)
    proc = run_cli("infer", fixed, missing, ZIDANE, "-o", out, "--skip-existing")
    assert proc.returncode == 1 and b"1 skipped" in proc.stderr
    records = sorted((r["image"], "error" in r) for r in jsonl_records(out.read_bytes()))
    assert records == sorted([(str(missing), True), (str(ZIDANE), False), (str(fixed), False)])


def test_skip_existing_resumes_a_save_dir_run(tmp_path):
    saved = tmp_path / "saved"
    assert run_cli("infer", BUS, "--save-dir", saved).returncode == 0
    stamp = (saved / "bus.jpg").stat().st_mtime_ns
    proc = run_cli("infer", BUS, ZIDANE, "--save-dir", saved, "--skip-existing", "-f", "jsonl")
    assert proc.returncode == 0
    assert [r["image"] for r in jsonl_records(proc.stdout)] == [str(ZIDANE)]
    assert (saved / "bus.jpg").stat().st_mtime_ns == stamp and (saved / "zidane.jpg").is_file()
