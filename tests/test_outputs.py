"""Outputs: never over an input, through special files and links, clear errors, safe appends."""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from posecli.core.keypoints import COCO17
from posecli.core.results import ImageResult
from posecli.output.writers import make_writer
from test_robustness import start_long_run, unprivileged, wait_for_lines

from conftest import (
    BUS,
    COCO_ANNOTATIONS,
    COCO_IMAGES,
    DEFAULT_MODEL,
    SHARED,
    ZIDANE,
    coco_files,
    jsonl_records,
    run_cli,
)

EXIT_OUTPUT = 74
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def posecli(*args) -> list[str]:
    """The command line that runs posecli with args."""
    return [sys.executable, "-m", "posecli", *map(str, args)]


def error_lines(proc) -> list[str]:
    """The lines on standard error."""
    return proc.stderr.decode().splitlines()


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in a folder."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# 1, 18: no output over an input of the run


def test_save_dir_never_overwrites_an_input_not_yet_processed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(BUS, tmp_path / "a" / "x.jpg")
    shutil.copy(ZIDANE, tmp_path / "b" / "x.jpg")
    proc = run_cli(
        "infer", tmp_path / "a/x.jpg", tmp_path / "b/x.jpg", "--save-dir", tmp_path / "b"
    )
    assert proc.returncode == 2
    assert error_lines(proc) == [
        f"posecli: error: {tmp_path / 'b/x.jpg'}: --save-dir would write the annotated copy of "
        f"{tmp_path / 'a/x.jpg'} over this input; nothing was done"
    ]
    assert (tmp_path / "b" / "x.jpg").read_bytes() == ZIDANE.read_bytes()


def test_output_that_is_an_input_is_refused(tmp_path):
    shutil.copy(BUS, tmp_path / "bus.jpg")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "bus.jpg")
    for out in ("bus.jpg", "link.jsonl"):
        proc = run_cli("infer", tmp_path / "bus.jpg", "-f", "jsonl", "-o", tmp_path / out)
        assert proc.returncode == 2 and b"-o would write results over this input" in proc.stderr
    assert (tmp_path / "bus.jpg").read_bytes() == BUS.read_bytes()


def test_output_with_an_image_suffix_needs_an_explicit_format(tmp_path):
    proc = run_cli("infer", BUS, "-o", tmp_path / "photo.jpg")
    assert proc.returncode == 2 and b"give -f FORMAT" in proc.stderr
    assert not (tmp_path / "photo.jpg").exists()
    assert run_cli("infer", BUS, "-o", tmp_path / "photo.jpg", "-f", "jsonl").returncode == 0
    assert json.loads((tmp_path / "photo.jpg").read_text())["image"] == str(BUS)


def test_dash_output_is_standard_output(tmp_path):
    proc = run_cli("infer", BUS, "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0
    assert jsonl_records(proc.stdout)[0]["image"] == str(BUS)
    assert list(tmp_path.iterdir()) == []


# 4: jsonl semantics and concurrent appends


def test_jsonl_output_starts_afresh_unless_appending(tmp_path):
    out = tmp_path / "out.jsonl"
    for _ in range(2):
        assert run_cli("infer", BUS, ZIDANE, "-o", out).returncode == 0
    assert len(out.read_text().splitlines()) == 2
    assert run_cli("infer", BUS, "-o", out, "--append").returncode == 0
    assert [r["image"] for r in map(json.loads, out.read_text().splitlines())] == [
        str(BUS), str(ZIDANE), str(BUS)
    ]  # fmt: skip


def test_four_shards_appending_to_one_jsonl_file_lose_nothing(tmp_path):
    out = tmp_path / "all.jsonl"
    images = coco_files(48)
    shards = [
        subprocess.Popen(
            posecli("infer", *images, "--shard", f"{i}/4", "-o", out, "--append", "-q",
                    "--threads", "1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]  # fmt: skip
    for shard in shards:
        _, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(map(str, images))


def test_shards_sharing_a_file_record_a_missing_source_once(tmp_path):
    """Each shard reports it (exit 1), but only the shard its path falls in records it."""
    out, missing = tmp_path / "all.jsonl", tmp_path / "nope.jpg"
    for i in range(3):
        proc = run_cli("infer", BUS, missing, "--shard", f"{i}/3", "-o", out, "--append")
        assert proc.returncode == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r for r in records if "error" in r] == [
        {"image": str(missing), "error": "no such file or directory"}
    ]


def test_a_second_writer_without_append_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    first = start_long_run("-o", out)
    try:
        wait_for_lines(out, 1)
        second = run_cli("infer", BUS, "-o", out)
        still_running = first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert still_running, "the first run ended before the second started"
    assert second.returncode == 2
    assert b"another posecli run is writing this file" in second.stderr
    images = [json.loads(line)["image"] for line in out.read_text().splitlines()]
    assert str(BUS) not in images and len(images) >= 1


# 5: a failed annotated copy keeps the results


def test_a_copy_that_cannot_be_saved_keeps_the_results(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(BUS, tmp_path / "in" / "sub" / "bus.jpg")
    shutil.copy(ZIDANE, tmp_path / "in" / "zidane.jpg")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "sub").write_text("a file where a folder would go")
    out = tmp_path / "out.jsonl"
    proc = run_cli("infer", tmp_path / "in", "-r", "--save-dir", saved, "-o", out)
    assert proc.returncode == 1
    lines = error_lines(proc)
    assert lines[0].startswith(f"posecli: error: {saved / 'sub' / 'bus.jpg'}: cannot write: ")
    assert "annotated copy not saved; the results are written" in lines[0]
    assert "2 images, " in lines[1] and "0 failed, 1 not saved" in lines[1]
    assert [len(r["poses"]) > 0 for r in jsonl_records(out.read_bytes())] == [True, True]
    assert (saved / "zidane.jpg").is_file()


# 6, 7: special files, links, atomic text


@as_root
def test_output_to_a_device_is_written_through(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for fmt in ("json", "jsonl", "text"):
        assert run_cli("infer", BUS, "-f", fmt, "-o", null).returncode == 0
        assert stat.S_ISCHR(null.lstat().st_mode)


def test_output_to_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    proc = run_cli("infer", BUS, "-f", "json", "-o", fifo)
    reader.join(timeout=60)
    assert proc.returncode == 0
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert json.loads(received[0])[0]["image"] == str(BUS)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "text"])
def test_a_symlinked_output_stays_a_link_and_its_target_is_written(tmp_path, fmt):
    target = tmp_path / "store" / f"results.{fmt}"
    target.parent.mkdir()
    target.write_text("OLD")
    link = tmp_path / f"link.{fmt}"
    link.symlink_to(Path("store") / target.name)
    assert run_cli("infer", BUS, "-f", fmt, "-o", link).returncode == 0
    assert link.is_symlink() and link.readlink() == Path("store") / target.name
    assert str(BUS) in target.read_text() and "OLD" not in target.read_text()
    assert leftovers(target.parent) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("args", [["-o", "out.txt"], ["-f", "text", "-o", "out"]])
def test_interrupted_text_output_leaves_the_old_file(tmp_path, args):
    out = tmp_path / args[-1]
    out.write_text("OLD")
    proc = subprocess.Popen(
        posecli("infer", *[COCO_IMAGES] * 4, "--save-dir", tmp_path / "saved", *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        while len(list((tmp_path / "saved").glob("*.jpg"))) < 10 and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert out.read_text() == "OLD"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["json", "csv", "coco", "text", "jsonl", "stdout"])
def test_an_interrupted_summary_says_whether_the_results_were_written(tmp_path, fmt):
    """Only a jsonl -o or standard output has the finished images after Ctrl-C."""
    saved = tmp_path / "saved"
    args = ["-f", "json"] if fmt == "stdout" else ["-f", fmt, "-o", tmp_path / f"out.{fmt}"]
    proc = start_long_run("--save-dir", saved, *args)
    while len(list(saved.glob("*.jpg"))) < 10 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    summary = err.decode().splitlines()[-2]  # then "posecli: error: interrupted"
    written = fmt in ("jsonl", "stdout")
    note = "interrupted" if written else "results not written (interrupted; jsonl keeps " \
        "finished images)"  # fmt: skip
    assert summary.endswith(f", {note}"), summary


# 8: every output problem is one line, exit 74, no temp file


def check_output_error(proc, path: Path, reason: str) -> None:
    """Exit 74 and one line naming path and reason, before any image was processed."""
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert error_lines(proc) == [f"posecli: error: {path}: cannot write: {reason}"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "text", "csv"])
def test_output_in_a_read_only_folder(tmp_path, fmt):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    out = folder / f"out.{fmt}"
    proc = subprocess.run(unprivileged(posecli("infer", BUS, "-q", "-o", out, "-f", fmt)),
                          capture_output=True, timeout=120)  # fmt: skip
    check_output_error(proc, out, "permission denied")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("fmt", ["json", "jsonl", "text"])
def test_missing_parent_folders_are_created_for_every_format(tmp_path, fmt):
    out = tmp_path / "new" / "deeper" / f"out.{fmt}"
    assert run_cli("infer", BUS, "-o", out, "-f", fmt).returncode == 0
    assert str(BUS) in out.read_text()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_parent_that_is_a_file(tmp_path, fmt):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / f"out.{fmt}"
    check_output_error(run_cli("infer", BUS, "-q", "-o", out), out, "not a directory")


def test_a_250_byte_output_name_works_and_a_256_byte_one_is_refused_up_front(tmp_path):
    out = tmp_path / ("r" * 245 + ".json")
    assert run_cli("infer", BUS, "-o", out).returncode == 0
    assert json.loads(out.read_text())[0]["image"] == str(BUS)
    too_long = tmp_path / ("r" * 251 + ".json")
    proc = run_cli("infer", BUS, "-q", "-o", too_long)
    assert proc.returncode == EXIT_OUTPUT
    assert error_lines(proc) == [
        f"posecli: error: {too_long}: cannot write: file name too long (over 255 bytes)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


FILE_LIMIT = 20_000  # bytes, for `ulimit -f`


def infer_with_a_file_size_limit(out: Path) -> subprocess.CompletedProcess:
    """posecli infer of 20 COCO photos into `out` under a FILE_LIMIT byte `ulimit -f`."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    return subprocess.run(
        posecli("infer", *coco_files(20), "--conf", "0.01", "-q", "-o", out),
        capture_output=True, timeout=300, preexec_fn=small_files,
    )  # fmt: skip


def test_a_file_size_limit_is_an_output_error(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("OLD")
    check_output_error(infer_with_a_file_size_limit(out), out, "file too large")
    assert out.read_text() == "OLD" and leftovers(tmp_path) == []


def test_a_jsonl_file_that_hits_the_size_limit_keeps_whole_lines_only(tmp_path):
    """jsonl is appended record by record: a record cut off by the limit is removed, so the
    file stays valid for jq and for --skip-existing."""
    out = tmp_path / "out.jsonl"
    check_output_error(infer_with_a_file_size_limit(out), out, "file too large")
    data = out.read_bytes()
    assert 0 < len(data) < FILE_LIMIT and data.endswith(b"\n")
    assert all(json.loads(line)["poses"] is not None for line in data.splitlines())


def test_an_unreadable_model_is_a_model_error(tmp_path):
    model = tmp_path / DEFAULT_MODEL.name
    shutil.copy(DEFAULT_MODEL, model)
    model.chmod(0)
    for env, args in [({"POSECLI_MODELS": str(tmp_path)}, []), ({}, ["-m", model])]:
        command = unprivileged(posecli("infer", BUS, *args))
        proc = subprocess.run(command, capture_output=True, env={**os.environ, **env}, timeout=120)
        assert proc.returncode == 2
        assert error_lines(proc) == [
            f"posecli: error: {model}: cannot read the model (permission denied)"
        ]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 150 KiB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", mount],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", mount], check=True)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_full_disk_is_one_line_with_nothing_left_behind(tiny_disk, fmt):
    out = tiny_disk / f"results.{fmt}"
    old = b"OLD" * 10_000
    if fmt == "text":  # text is small: leave less than a block free
        free = os.statvfs(tiny_disk)
        old = b"O" * (free.f_bavail * free.f_frsize - 1000)
    out.write_bytes(old)
    args = ["--conf", "0.01", "-f", fmt, "-q", "-o", out]
    proc = run_cli("infer", *coco_files(60), *args)
    check_output_error(proc, out, "no space left on device")
    assert out.read_bytes() == old
    assert [p.name for p in tiny_disk.iterdir()] == [out.name]


def test_a_full_disk_under_jsonl_keeps_whole_lines(tiny_disk):
    out = tiny_disk / "results.jsonl"
    proc = run_cli("infer", *coco_files(60), "--conf", "0.01", "-q", "-o", out)
    check_output_error(proc, out, "no space left on device")
    lines = out.read_bytes().split(b"\n")
    assert all(json.loads(line) for line in lines[:-2])
    assert [p.name for p in tiny_disk.iterdir()] == [out.name]


def test_standard_output_on_a_full_disk_is_one_line(tiny_disk):
    with open(tiny_disk / "redirected.jsonl", "wb") as stdout:
        proc = subprocess.run(posecli("infer", *coco_files(60), "--conf", "0.01", "-q"),
                              stdout=stdout, stderr=subprocess.PIPE, timeout=300)  # fmt: skip
    assert proc.returncode == EXIT_OUTPUT
    assert error_lines(proc) == [
        "posecli: error: standard output: cannot write: no space left on device"
    ]


def test_eval_table_on_a_full_disk_is_one_line(tiny_disk, tmp_path):
    results = tmp_path / "results.json"
    eval_json("--images", COCO_IMAGES, "--limit", "3", "--save-results", results)
    free = os.statvfs(tiny_disk)
    (tiny_disk / "filler").write_bytes(b"F" * (free.f_bavail * free.f_frsize))
    with open(tiny_disk / "table.txt", "wb") as stdout:
        command = posecli("eval", "--annotations", COCO_ANNOTATIONS, "--results", results,
                          "--limit", "3")  # fmt: skip
        proc = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == EXIT_OUTPUT
    assert error_lines(proc) == [
        "posecli: error: standard output: cannot write: no space left on device"
    ]


def test_a_full_disk_for_annotated_copies_keeps_every_result(tiny_disk, tmp_path):
    out = tmp_path / "out.jsonl"
    images = coco_files(40)
    proc = run_cli("infer", *images, "--save-dir", tiny_disk, "-o", out)
    assert proc.returncode == 1
    unsaved = [line for line in error_lines(proc) if "no space left on device" in line]
    assert unsaved and f"{len(unsaved)} not saved" in error_lines(proc)[-1]
    assert [r["image"] for r in jsonl_records(out.read_bytes())] == [str(p) for p in images]
    assert leftovers(tiny_disk) == []


# 9: a closed pipe


def test_posecli_itself_exits_141_when_its_reader_goes_away():
    proc = subprocess.Popen(posecli("infer", COCO_IMAGES, "-f", "jsonl"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert json.loads(proc.stdout.readline())["image"]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert b"Error" not in err and b"error" not in err


# 14: an empty shard


def test_an_empty_shard_is_not_an_error():
    images = [BUS, ZIDANE]
    used = {zlib.crc32(os.fsencode(str(p))) % 16 for p in images}
    empty = next(i for i in range(16) if i not in used)
    proc = run_cli("infer", *images, "--shard", f"{empty}/16")
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert error_lines(proc)[-1] == f"shard {empty}/16 has no images (of 2 in all)"


# 15: eval --results


def eval_json(*args) -> dict:
    """Run eval --json and parse its single line."""
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_eval_results_honours_limit_and_refuses_model_options(tmp_path):
    out = tmp_path / "results.json"
    made = eval_json("--images", COCO_IMAGES, "--limit", "12", "--save-results", out)
    scored = eval_json("--results", out, "--limit", "12")
    assert scored["images"] == 12
    assert scored["keypoints"] == made["keypoints"] and scored["bbox"] == made["bbox"]
    for extra in (["-m", "yolov8n-pose-192"], ["--all-models"], ["--images", COCO_IMAGES]):
        proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", out, *extra)
        assert proc.returncode == 2 and b"do not apply" in proc.stderr


def test_eval_summarises_missing_images_in_one_line(tmp_path):
    for image in coco_files(3):
        shutil.copy(image, tmp_path)
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", tmp_path, "--limit",
                   "10", "--json")  # fmt: skip
    assert proc.returncode == 1
    lines = error_lines(proc)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"posecli: error: {tmp_path}: 7 of the 10 annotated images not found ("
    )
    assert lines[0].endswith(", ...); scoring the rest")
    assert json.loads(proc.stdout)["images"] == 3


def test_eval_save_results_never_replaces_the_annotations(tmp_path):
    annotations = tmp_path / "ann.json"
    shutil.copy(COCO_ANNOTATIONS, annotations)
    proc = run_cli("eval", "--annotations", annotations, "--images", COCO_IMAGES, "--limit", "2",
                   "--save-results", annotations)  # fmt: skip
    assert proc.returncode == 2 and b"would write over an input" in proc.stderr
    assert annotations.read_bytes() == COCO_ANNOTATIONS.read_bytes()


def test_eval_save_results_that_cannot_be_written_fails_before_the_model_runs(tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "results.json"
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", COCO_IMAGES,
                   "--save-results", out)  # fmt: skip
    check_output_error(proc, out, "not a directory")


def test_models_pull_into_a_file_is_an_output_error(tmp_path):
    dest = tmp_path / "file"
    dest.write_text("")
    proc = run_cli("models", "pull", "yolov8n-pose-192", "--from", DEFAULT_MODEL.parent,
                   "--dest", dest / "models")  # fmt: skip
    model = dest / "models" / "yolov8n_192_quant_pc_uf_pose_coco-st.tflite"
    check_output_error(proc, model, "not a directory")


# 17: COCO image ids


def test_coco_image_id_is_the_trailing_number_and_collisions_are_errors(tmp_path):
    names = ["frame_01.jpg", "frame_1.jpg", "cam1_000123.jpg", "000000397133.jpg"]
    for name in names:
        shutil.copy(BUS, tmp_path / name)
    out = tmp_path / "results.json"
    proc = run_cli("infer", *(tmp_path / n for n in names), "-f", "coco", "-o", out)
    assert proc.returncode == 1
    assert error_lines(proc)[0] == (
        f"posecli: error: {tmp_path / 'frame_1.jpg'}: COCO image_id 1 is already used by "
        f"{tmp_path / 'frame_01.jpg'}"
    )
    assert sorted({r["image_id"] for r in json.loads(out.read_text())}) == [1, 123, 397133]


# Found in the review of the CLI modules


def test_a_save_dir_that_cannot_be_made_leaves_no_temp_file_of_the_output(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    proc = run_cli("infer", BUS, "-o", tmp_path / "out.json", "--save-dir", tmp_path / "afile/sub")
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {tmp_path / 'afile/sub'}: cannot write: not a directory"
    ]  # the folder the user named, not a file posecli tried in it
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.json").exists()


def test_a_closed_pipe_during_a_video_leaves_no_temp_files(tmp_path):
    clip = SHARED / "videos" / "pets-vtest.avi"
    saved = tmp_path / "saved"
    command = posecli("infer", clip, "-f", "jsonl", "--save-dir", saved, "-q")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    proc.wait(timeout=120)
    assert proc.returncode in (1, 141, -signal.SIGPIPE), proc.stderr.read() if proc.stderr else b""
    assert list(saved.iterdir()) == []


def test_copies_that_would_share_a_name_get_their_own(tmp_path):
    from PIL import Image

    Image.open(BUS).save(tmp_path / "a.gif")
    shutil.copy(ZIDANE, tmp_path / "a.jpg")
    saved = tmp_path / "saved"
    proc = run_cli("infer", tmp_path / "a.gif", tmp_path / "a.jpg", "--save-dir", saved, "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in saved.iterdir()) == ["a.jpg", "a_1.jpg"]


def test_copies_in_their_own_subfolders_keep_their_names(tmp_path):
    """a/x.jpg and b/x.jpg under -r are saved as a/x.jpg and b/x.jpg (b's was renamed x_1.jpg,
    which --skip-existing then took for unfinished, and redid)."""
    for folder in ("a", "b"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        shutil.copy(BUS, tmp_path / "photos" / folder / "x.jpg")
    saved, out = tmp_path / "saved", tmp_path / "out.jsonl"
    args = ("infer", tmp_path / "photos", "-r", "--save-dir", saved, "-o", out)
    assert run_cli(*args).returncode == 0
    assert sorted(str(p.relative_to(saved)) for p in saved.rglob("*.jpg")) == ["a/x.jpg", "b/x.jpg"]
    again = run_cli(*args, "--skip-existing")
    summary = again.stderr.decode().splitlines()[-1]
    assert summary.startswith("0 images, 0 failed, 2 skipped")
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["infer", "track"])
def test_a_file_given_twice_has_one_copy_under_its_own_name(tmp_path, command):
    saved = tmp_path / "saved"
    proc = run_cli(command, BUS, BUS, "--save-dir", saved, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert len(jsonl_records(proc.stdout)) == 2
    assert [p.name for p in saved.iterdir()] == ["bus.jpg"]


def test_results_named_like_any_video_need_a_format(tmp_path):
    proc = run_cli("infer", BUS, "-o", tmp_path / "out.flv")
    assert proc.returncode == 2 and "has an image or video suffix" in proc.stderr.decode()
    assert not (tmp_path / "out.flv").exists()


@pytest.mark.parametrize("name, fmt, says", [
    ("newdir/", None, "names a folder"), ("newdir/", "jsonl", "names a folder"),
    ("results.yaml", None, "no format has the suffix .yaml"),
])  # fmt: skip
def test_results_named_like_a_folder_or_of_no_format_are_refused(tmp_path, name, fmt, says):
    """A trailing slash never names a results file; a suffix of no format needs -f."""
    proc = run_cli("infer", BUS, "-o", f"{tmp_path}/{name}", *(["-f", fmt] if fmt else []))
    assert proc.returncode == 2 and says in proc.stderr.decode(), proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["list"], ["info", "yolov8n-pose-256"]])
def test_models_output_on_a_full_device_is_one_line(command):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as stdout:
        proc = subprocess.run(posecli("models", *command), stdout=stdout,
                              stderr=subprocess.PIPE, timeout=60)  # fmt: skip
    assert proc.returncode == EXIT_OUTPUT
    assert error_lines(proc) == [
        "posecli: error: standard output: cannot write: no space left on device"
    ]


def test_results_where_an_annotated_copy_goes_are_refused(tmp_path):
    shutil.copy(BUS, tmp_path / "bus.jpg")
    saved = tmp_path / "saved"
    out = saved / "bus.jpg"
    proc = run_cli("infer", tmp_path / "bus.jpg", "--save-dir", saved, "-o", out, "-f", "jsonl")
    assert proc.returncode == 2
    assert error_lines(proc) == [
        f"posecli: error: {out}: --save-dir would write the annotated copy of "
        f"{tmp_path / 'bus.jpg'} over the -o results file; nothing was done"
    ]
    assert not saved.exists()


@pytest.mark.parametrize(
    ("redirect", "args", "status"),
    [(">&-", ["-o", "out.jsonl"], 0), ("2>&-", ["-o", "out.jsonl"], 0),
     (">&-", ["-f", "jsonl"], 74), (">&-", ["--help"], 74)],
)  # fmt: skip
def test_a_closed_standard_stream_is_no_internal_error(tmp_path, redirect, args, status):
    """Run with stdout or stderr closed by the shell: results for a file are written as usual;
    results for the closed stdout are an output error (74) in one line, never a traceback."""
    command = shlex.join([sys.executable, "-m", "posecli", "infer", str(BUS), *args])
    proc = subprocess.run(f"{command} {redirect}", shell=True, cwd=tmp_path, timeout=120,
                          stdout=subprocess.PIPE if redirect == "2>&-" else None,
                          stderr=subprocess.PIPE if redirect == ">&-" else None)  # fmt: skip
    assert proc.returncode == status
    if status == 0:
        assert len(jsonl_records((tmp_path / "out.jsonl").read_bytes())) == 1
    else:
        assert proc.stderr.decode().splitlines()[-1] == (
            "posecli: error: standard output: cannot write: it is closed"
        )
    assert b"Traceback" not in (proc.stderr or b"")


def test_a_closed_standard_input_is_an_empty_list_of_paths(tmp_path):
    command = shlex.join([sys.executable, "-m", "posecli", "infer", "-"])
    proc = subprocess.run(f"{command} <&-", shell=True, cwd=tmp_path, timeout=120,
                          capture_output=True)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines()[-1] == "posecli: error: no images to process"


@pytest.mark.parametrize("fmt", ["json", "coco"])
def test_an_interrupt_after_the_array_was_closed_adds_nothing(capsys, fmt):
    """Ctrl-C while the closed array is being flushed (a slow reader) must not close it twice;
    one before any record still gives an empty array."""
    writer = make_writer(fmt, None, COCO17.names)
    writer.end_interrupted()
    assert json.loads(capsys.readouterr().out) == []
    writer = make_writer(fmt, None, COCO17.names)
    writer.write(ImageResult("000000000139.jpg", 640, 426, []))
    writer.close()
    writer.end_interrupted()
    assert json.loads(capsys.readouterr().out) == ([] if fmt == "coco" else [
        {"image": "000000000139.jpg", "width": 640, "height": 426, "poses": []}
    ])  # fmt: skip
