"""The command line through subprocess: sources, stdin, options, exit statuses, models."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posecli.model.registry import load_manifest

from conftest import (
    BUS,
    COCO_IMAGES,
    IMAGES,
    MODELS,
    ROOT,
    SHARED,
    ZIDANE,
    coco_files,
    jsonl_records,
    run_cli,
)
from tflite_builder import write_constant_model


def test_version_and_help_work_as_module_and_script():
    assert run_cli("--version").stdout.decode().startswith("posecli, version ")
    assert b"infer" in run_cli("--help").stdout
    script = Path(sys.executable).with_name("posecli")
    assert subprocess.run([script, "--help"], capture_output=True).returncode == 0


def test_paths_from_stdin_are_processed_in_order():
    files = [ZIDANE, *coco_files(3), BUS]
    stdin = "".join(f"{f}\n" for f in files).encode()
    proc = run_cli("infer", "-", "--format", "jsonl", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in jsonl_records(proc.stdout)] == [str(f) for f in files]


def test_folder_glob_and_file_sources(tmp_path):
    proc = run_cli("infer", IMAGES, f"{COCO_IMAGES}/00000000013*.jpg", BUS, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    images = [r["image"] for r in jsonl_records(proc.stdout)]
    assert images[:2] == [str(BUS), str(ZIDANE)] and images[-1] == str(BUS)
    assert all("00000000013" in i for i in images[2:-1]) and len(images) > 3


@pytest.mark.parametrize("recursive", [False, True])
def test_a_subfolder_named_like_a_photo_is_a_folder_not_a_failed_input(tmp_path, recursive):
    """Without -r subfolders are not looked into, whatever their names; with -r they are."""
    (tmp_path / "photos.jpg").mkdir()
    (tmp_path / "photos.jpg" / "zidane.jpg").write_bytes(ZIDANE.read_bytes())
    (tmp_path / "clips.mp4").mkdir()
    (tmp_path / "bus.jpg").write_bytes(BUS.read_bytes())
    proc = run_cli("infer", tmp_path, "-f", "jsonl", *(["-r"] if recursive else []))
    assert proc.returncode == 0, proc.stderr
    images = [r["image"] for r in jsonl_records(proc.stdout)]
    inner = [str(tmp_path / "photos.jpg" / "zidane.jpg")] if recursive else []
    assert images == [str(tmp_path / "bus.jpg"), *inner]


def test_a_txt_source_is_a_list_of_sources(tmp_path):
    """One source a line, in order (a relative name found beside the list, blank lines
    skipped); a folder does not take a .txt as a list or an image; -o may not replace it."""
    shutil.copy(ZIDANE, tmp_path / "zidane.jpg")
    listed = tmp_path / "list.txt"
    listed.write_text(f"{BUS}\n\nzidane.jpg\n{tmp_path}/nope.jpg\n")
    proc = run_cli("infer", listed, "-f", "jsonl", cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    records = jsonl_records(proc.stdout)
    assert [r["image"] for r in records] == [f"{tmp_path}/nope.jpg", str(BUS),
                                             str(tmp_path / "zidane.jpg")]  # fmt: skip
    assert records[0]["error"] == "no such file or directory" and records[1]["poses"]
    folder = run_cli("infer", tmp_path, "-f", "jsonl")
    assert [r["image"] for r in jsonl_records(folder.stdout)] == [str(tmp_path / "zidane.jpg")]
    over = run_cli("infer", listed, "-o", listed)
    assert over.returncode == 2 and b"-o would write results over this input" in over.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["infer", BUS, "--every-frame"], "--every-frame applies only with a camera or stream"),
    (["infer", BUS, "--vid-stride", "2"], "--vid-stride applies only with a video source"),
    (["infer", "http://127.0.0.1:9/x.jpg", "--every-frame"], "applies only with a camera or"),
    (["infer", BUS, "--timeout", "3"], "--timeout applies only with a camera or URL source"),
    (["infer", BUS, "--kpt-conf", "0.3"], "--kpt-conf applies only with --save-dir"),
    (["track", SHARED / "videos" / "pets-vtest.avi", "--smooth", "-f", "mot"],
     "--smooth does not apply with -f mot and no --save-dir (boxes only)"),
    (["infer", BUS, "--line-width", "3"], "--line-width applies only with --save-dir"),
    (["infer", BUS, "--hide-boxes"], "--hide-boxes applies only with --save-dir"),
    (["track", BUS, "--save-dir", "/nonexistent/x", "--hide-conf"],
     "--hide-conf does not apply with track (its labels are IDs)"),
])  # fmt: skip
def test_options_that_would_change_nothing_are_usage_errors(args, says):
    """One rule (cli/applies.py): an option given where it cannot act is refused, saying why."""
    proc = run_cli(*args)
    assert proc.returncode == 2 and says in proc.stderr.decode(), proc.stderr
    assert proc.stdout == b""


def test_the_drawing_switches_change_the_annotated_copies(tmp_path):
    plain = run_cli("infer", ZIDANE, "--save-dir", tmp_path / "plain", "-f", "jsonl")
    bare = run_cli("infer", ZIDANE, "--save-dir", tmp_path / "bare", "--line-width", "2",
                   "--hide-boxes", "--hide-labels", "--hide-conf", "-f", "jsonl")  # fmt: skip
    assert plain.returncode == bare.returncode == 0, bare.stderr
    assert plain.stdout == bare.stdout
    copies = [(tmp_path / run / "zidane.jpg").read_bytes() for run in ("plain", "bare")]
    assert copies[0] != copies[1]


def test_a_missing_video_is_still_a_video_for_the_options_that_need_one(tmp_path):
    proc = run_cli("infer", tmp_path / "gone.mp4", "--vid-stride", "2", "-f", "jsonl")
    assert proc.returncode == 1 and b"no such file or directory" in proc.stderr


def test_summaries_count_videos_and_leave_out_what_did_not_run():
    """A video-only run counts videos and frames (not 0 images); a failure-only run has no
    poses or rate; an empty list of paths is one error line, no summary."""
    video = run_cli("infer", SHARED / "videos" / "pets-vtest.avi", "--vid-stride", "200")
    assert video.stderr.decode().splitlines()[-1].startswith("1 video, 4 frames, "), video.stderr
    failed = run_cli("infer", "/nonexistent/x.jpg").stderr.decode().splitlines()[-1]
    assert failed.startswith("0 images, 1 failed in ") and failed.endswith(" s"), failed
    empty = run_cli("infer", "-", stdin=b"")
    assert empty.stderr.decode().splitlines() == ["posecli: error: no images to process"]


def test_missing_file_is_named_and_the_rest_still_written():
    proc = run_cli("infer", BUS, "/nonexistent/x.jpg", ZIDANE, "-f", "jsonl")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "posecli: error: /nonexistent/x.jpg: no such file or directory" in err
    assert "Traceback" not in err
    assert "2 images, " in err and ", 1 failed" in err
    records = jsonl_records(proc.stdout)
    assert records[0] == {"image": "/nonexistent/x.jpg", "error": "no such file or directory"}
    assert [r["image"] for r in records[1:]] == [str(BUS), str(ZIDANE)]


def test_quiet_prints_nothing_on_stderr_but_errors():
    ok = run_cli("infer", BUS, ZIDANE, "-q", "-f", "jsonl")
    assert ok.returncode == 0 and ok.stderr == b""
    bad = run_cli("infer", BUS, "nope.jpg", "-q", "-f", "jsonl")
    assert bad.stderr.decode().splitlines() == [
        "posecli: error: nope.jpg: no such file or directory"
    ]


def test_missing_model_says_how_to_get_it(tmp_path):
    env = {"POSECLI_MODELS": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = run_cli("infer", BUS, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "posecli models pull yolov8n-pose-256" in lines[0]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "not a usable TFLite model"),
        (
            lambda p: p.write_bytes(
                (MODELS / "yolov8n_192_quant_pc_uf_pose_coco-st.tflite").read_bytes()[:50000]
            ),
            "not a usable TFLite model",
        ),
        (lambda p: p.write_text("hello, not a model\n" * 100), "not a usable TFLite model"),
        (lambda p: write_constant_model(p, 256, [1, 84, 1344]), "is not the pose layout"),
        (lambda p: write_constant_model(p, 256, [1, 5, 1344]), "is not the pose layout"),
    ],
    ids=["empty", "truncated", "text", "detection-84", "detection-5"],
)
def test_bad_model_files_exit_2_with_one_line(tmp_path, make, reason):
    model = tmp_path / "model.tflite"
    make(model)
    proc = run_cli("infer", "-m", model, BUS)
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith(f"posecli: error: {model}: ") and reason in lines[0]
    )


def test_model_path_that_does_not_exist():
    proc = run_cli("infer", "-m", "nowhere/model.tflite", BUS)
    assert proc.returncode == 2 and b"no such model file" in proc.stderr


def test_imgsz_picks_the_matching_model_and_excludes_m():
    proc = run_cli("models", "info", "yolov8n-pose-320")
    assert b"input: shape [1, 320, 320, 3] uint8" in proc.stdout
    assert b"output: shape [1, 56, 2100] float32" in proc.stdout
    small = jsonl_records(run_cli("infer", BUS, "--imgsz", "192", "-f", "jsonl").stdout)
    large = jsonl_records(run_cli("infer", BUS, "--imgsz", "320", "-f", "jsonl").stdout)
    assert small != large and small[0]["poses"] and large[0]["poses"]
    both = run_cli("infer", BUS, "--imgsz", "192", "-m", "yolov8n-pose-256")
    assert both.returncode == 2 and b"not both" in both.stderr


def test_models_info_reports_quantization_kind():
    per_tensor = run_cli("models", "info", "yolov8n-pose-256-pt").stdout.decode()
    per_channel = run_cli("models", "info", MODELS / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite")
    assert "quantization: per-tensor" in per_tensor
    assert "quantization: per-channel" in per_channel.stdout.decode()


def test_models_pull_from_a_folder_then_list_shows_them(tmp_path):
    env = {"POSECLI_MODELS": "", "XDG_CACHE_HOME": str(tmp_path)}
    before = run_cli("models", "list", env=env).stdout.decode()
    assert before.count("not installed") == len(load_manifest()[1])
    proc = run_cli("models", "pull", "yolov8n-pose-192", "--from", MODELS, env=env)
    assert proc.returncode == 0, proc.stderr
    installed = tmp_path / "posecli/models/yolov8n_192_quant_pc_uf_pose_coco-st.tflite"
    digest = hashlib.sha256(installed.read_bytes()).hexdigest()
    assert digest == load_manifest()[1]["yolov8n-pose-192"].sha256
    after = run_cli("models", "list", env=env).stdout.decode()
    assert str(installed) in after and after.count("not installed") == len(load_manifest()[1]) - 1
    assert run_cli("infer", BUS, "--imgsz", "192", env=env).returncode == 0
    assert not list(installed.parent.glob(".*part"))


def test_pull_into_a_folder_off_the_search_path_says_to_name_it(tmp_path):
    """--dest DIR is used only once POSECLI_MODELS names DIR: the pull says so, unless it does."""
    args = ("models", "pull", "yolov8n-pose-256", "--from", MODELS, "--dest", tmp_path)
    proc = run_cli(*args)
    assert proc.returncode == 0 and f"POSECLI_MODELS={tmp_path} " in proc.stderr.decode()
    again = run_cli(*args, env={"POSECLI_MODELS": str(tmp_path)})
    assert again.returncode == 0 and again.stderr == b""


def test_models_info_without_a_name_is_the_default_model():
    proc = run_cli("models", "info")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith(f"model: {load_manifest()[0]}\n")


def test_format_names_are_case_insensitive():
    proc = run_cli("infer", BUS, "-f", "JSONL")
    assert proc.returncode == 0, proc.stderr
    assert jsonl_records(proc.stdout)[0]["image"] == str(BUS)


def test_a_folder_without_images_suggests_r_only_when_it_has_subfolders(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "nested" / "sub").mkdir(parents=True)
    proc = run_cli("infer", tmp_path / "flat", tmp_path / "nested", "-f", "jsonl")
    assert [r["error"] for r in jsonl_records(proc.stdout)] == [
        "no images or videos in this folder",
        "no images or videos in this folder (use -r to look in subfolders)",
    ]


def test_pull_refuses_a_checksum_mismatch_and_installs_nothing(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    damaged = bytearray((MODELS / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite").read_bytes())
    damaged[1000] ^= 0xFF
    (source / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite").write_bytes(damaged)
    dest = tmp_path / "dest"
    proc = run_cli("models", "pull", "yolov8n-pose-256", "--from", source, "--dest", dest)
    assert proc.returncode == 2
    assert b"does not match the manifest" in proc.stderr and b"Traceback" not in proc.stderr
    assert not dest.exists() or not any(dest.iterdir())


def test_pull_installs_the_good_models_beside_a_damaged_one(tmp_path):
    """One damaged file in the source does not stop the models after it: each bad one is a line."""
    source = tmp_path / "source"
    source.mkdir()
    names = {"yolov8n-pose-192": "yolov8n_192", "yolov8n-pose-256": "yolov8n_256",
             "yolov8n-pose-320": "yolov8n_320"}  # fmt: skip
    for stem in names.values():
        shutil.copy(MODELS / f"{stem}_quant_pc_uf_pose_coco-st.tflite", source)
    damaged = source / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    dest = tmp_path / "dest"
    proc = run_cli("models", "pull", *names, "--from", source, "--dest", dest)
    assert proc.returncode == 2
    [line] = [e for e in proc.stderr.decode().splitlines() if e.startswith("posecli: error:")]
    assert "does not match the manifest" in line
    installed = sorted(p.name for p in dest.iterdir())
    assert installed == [f"{names[n]}_quant_pc_uf_pose_coco-st.tflite"
                         for n in ("yolov8n-pose-192", "yolov8n-pose-320")]  # fmt: skip


def test_pull_into_a_file_is_an_output_error_and_into_its_source_changes_nothing(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = run_cli("models", "pull", "yolov8n-pose-192", "--from", MODELS, "--dest",
                   tmp_path / "afile")  # fmt: skip
    assert proc.returncode == 74
    [line] = proc.stderr.decode().splitlines()
    assert line.startswith(f"posecli: error: {tmp_path / 'afile'}") and "not a directory" in line
    source = tmp_path / "models"
    source.mkdir()
    model = source / "yolov8n_192_quant_pc_uf_pose_coco-st.tflite"
    shutil.copy(MODELS / model.name, model)
    before = model.stat()
    proc = run_cli("models", "pull", "yolov8n-pose-192", "--from", source, "--dest", source)
    assert proc.returncode == 0, proc.stderr
    after = model.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_damaged_installed_model_is_refused_at_load(tmp_path):
    damaged = bytearray((MODELS / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite").read_bytes())
    damaged[-10] ^= 0xFF
    (tmp_path / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite").write_bytes(damaged)
    proc = run_cli("infer", BUS, env={"POSECLI_MODELS": str(tmp_path)})
    assert proc.returncode == 2 and b"does not match the manifest" in proc.stderr


def test_save_dir_writes_annotated_copies_and_never_the_input(tmp_path):
    shutil.copy(BUS, tmp_path / "bus.jpg")
    out = tmp_path / "annotated"
    proc = run_cli("infer", tmp_path / "bus.jpg", ZIDANE, "--save-dir", out, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    import cv2

    saved = cv2.imread(str(out / "bus.jpg"))
    assert saved.shape == (1080, 810, 3)
    assert (saved != cv2.imread(str(BUS))).any()
    assert (out / "zidane.jpg").is_file()
    same = run_cli("infer", tmp_path / "bus.jpg", "--save-dir", tmp_path)
    assert same.returncode == 2 and b"over this input; nothing was done" in same.stderr
    assert (tmp_path / "bus.jpg").read_bytes() == BUS.read_bytes()


def test_save_dir_does_not_change_the_results(tmp_path):
    plain = run_cli("infer", BUS, ZIDANE, "-f", "jsonl").stdout
    saving = run_cli("infer", BUS, ZIDANE, "-f", "jsonl", "--save-dir", tmp_path).stdout
    assert plain == saving


def test_shards_split_the_input_without_overlap():
    full = {r["image"] for r in jsonl_records(run_cli("infer", COCO_IMAGES, "-f", "jsonl").stdout)}
    shards = [
        {
            r["image"]
            for r in jsonl_records(
                run_cli("infer", COCO_IMAGES, "--shard", f"{i}/3", "-f", "jsonl").stdout
            )
        }
        for i in range(3)
    ]
    assert set.union(*shards) == full
    assert sum(len(s) for s in shards) == len(full)
    assert all(len(s) > len(full) / 6 for s in shards)
    bad = run_cli("infer", BUS, "--shard", "3/3")
    assert bad.returncode == 2 and b"--shard" in bad.stderr


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed")
def test_sharding_example_with_gnu_parallel_gives_the_whole_result(tmp_path):
    """docs/errors.md's example: 4 shards in parallel, concatenated JSONL equals one full run."""
    command = (
        f"parallel --will-cite -j 2 posecli infer {COCO_IMAGES} --shard {{}}/4 --format jsonl "
        f"--quiet ::: 0 1 2 3 > {tmp_path}/all.jsonl"
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(command, shell=True, check=True, timeout=600, env={**os.environ, "PATH": path})
    sharded = sorted((tmp_path / "all.jsonl").read_text().splitlines())
    full = sorted(run_cli("infer", COCO_IMAGES, "-f", "jsonl").stdout.decode().splitlines())
    assert sharded == full


def test_usage_errors_exit_2():
    assert run_cli("infer").returncode == 2
    assert run_cli("infer", BUS, "--conf", "2").returncode == 2
    assert run_cli("infer", BUS, "--format", "xml").returncode == 2
    proc = run_cli("infer", BUS, "--skip-existing")
    assert proc.returncode == 2 and b"--skip-existing needs" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [["infer", BUS, "--timeout", "nan"], ["infer", BUS, "--conf", "nan"],
     ["track", BUS, "--sequence", "--fps", "inf"], ["track", BUS, "--smooth", "--smooth-beta",
     "inf"]],
)  # fmt: skip
def test_nan_or_infinity_for_a_number_is_a_usage_error(args):
    """click's ranges let NaN and infinity through; they ended in an internal error."""
    proc = run_cli(*args)
    assert proc.returncode == 2 and b"is not a finite number" in proc.stderr


@pytest.mark.parametrize("fps", ["1e-310", "2e6"])
def test_a_frame_rate_too_small_or_large_for_frame_times_is_a_usage_error(fps):
    """--fps 1e-310 passed the range but its frame time is infinite: an internal error; over a
    million, frame times (written to the microsecond) stopped increasing."""
    proc = run_cli("track", BUS, ZIDANE, "--sequence", "--fps", fps)
    assert proc.returncode == 2 and b"--fps" in proc.stderr and b"internal" not in proc.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "text"])
def test_skip_existing_refuses_an_output_file_it_would_rewrite(tmp_path, fmt):
    """Resuming into a csv/json/text file would write it afresh with only the new items."""
    out, saved = tmp_path / f"out.{fmt}", tmp_path / "saved"
    first = run_cli("infer", BUS, "-f", fmt, "-o", out, "--save-dir", saved)
    assert first.returncode == 0 and out.stat().st_size
    before = out.read_bytes()
    proc = run_cli("infer", BUS, ZIDANE, "-f", fmt, "-o", out, "--save-dir", saved,
                   "--skip-existing")  # fmt: skip
    assert proc.returncode == 2 and out.read_bytes() == before
    assert f"--skip-existing cannot resume -o {out}".encode() in proc.stderr


def test_pipelined_output_is_identical_to_a_serial_run():
    files = [BUS, ZIDANE, *coco_files(60)]
    serial = run_cli("infer", *files, "-f", "jsonl", "--threads", "1")
    pipelined = run_cli("infer", *files, "-f", "jsonl", "--threads", "2")
    assert serial.returncode == pipelined.returncode == 0
    assert serial.stdout == pipelined.stdout and serial.stdout.count(b"\n") == len(files)


def test_bench_reports_every_stage_and_the_ratio():
    proc = run_cli("bench", "-n", "30", "--json", "--imgsz", "192")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["input_size"] == [192, 192] and report["images"] == 30
    assert set(report["stage_ms"]) == {"read_decode", "letterbox", "invoke", "decode_nms", "write"}
    assert all(ms > 0 for ms in report["stage_ms"].values()) and report["end_to_end_cpu_ms"] > 0
    assert report["ratio"] == pytest.approx(report["end_to_end_ips"] / report["invoke_only_ips"],
                                            abs=0.01)  # fmt: skip
    folder = run_cli("bench", "--images", COCO_IMAGES, "-n", "20")
    assert folder.returncode == 0 and b"end-to-end" in folder.stdout


def test_bench_times_the_photos_of_a_folder_that_also_holds_a_video(tmp_path):
    shutil.copy(BUS, tmp_path / "bus.jpg")
    shutil.copy(SHARED / "videos" / "pets-vtest.avi", tmp_path / "walk.avi")
    proc = run_cli("bench", "--images", tmp_path, "-n", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 4
