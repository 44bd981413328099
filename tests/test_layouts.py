"""Every YOLO-pose layout posecli reads, each built on ST's 256 model (tests/derived_models.py):
float NCHW input, transposed output, int8 output, keypoints in input pixels, two classes and an
end-to-end head give the same people as yolov8n-pose-256; ambiguous or foreign files are one
line, exit 2. ST's YOLO26 ONNX runs through onnxruntime."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from posecli import PoseEstimator
from posecli.core.errors import ModelError

from conftest import (
    BUS,
    COCO_ANNOTATIONS,
    COCO_IMAGES,
    DEFAULT_MODEL,
    MODELS,
    ZIDANE,
    jsonl_records,
    run_cli,
)
from derived_models import (
    end_to_end,
    int8_output,
    load,
    nchw_float_input,
    save,
    scaled_rows,
    transpose_output,
    with_rows,
)
from tflite_builder import write_constant_model

ONNX = MODELS / "yolo26_pose_256_qdq_int8.onnx"
INT8_STEP = 1.5 / 127
TWO_CLASSES = {"names": {0: "person", 1: "rider"}, "kpt_shape": [17, 3], "task": "pose"}
COCO_ROWS = list(range(56))


def pixel_factors(size: int = 256) -> np.ndarray:
    """Row factors putting the 17 keypoints' x and y in input pixels."""
    factors = np.ones(56, np.float32)
    factors[5::3] = factors[6::3] = size
    return factors


# name: (build(source, dest), output step in 0..1 units, a line models info prints)
LAYOUTS = {
    "nchw-float": (nchw_float_input, 0.0, "input layout: NCHW (1, 3, N, M)"),
    "transposed": (transpose_output, 0.0, "output layout: transposed (1, F, 4 + nc + K x D)"),
    "int8": (lambda s, d: int8_output(s, d, INT8_STEP), INT8_STEP,
             "coordinates: boxes 0..1, keypoints 0..1; from the output's quantization range"),
    "pixels": (lambda s, d: scaled_rows(s, d, pixel_factors()), 0.0,
               "coordinates: boxes 0..1, keypoints input pixels; from a probe"),
    "two-classes": (lambda s, d: with_rows(s, d, [*COCO_ROWS[:5], 4, *COCO_ROWS[5:]],
                                           TWO_CLASSES), 0.0,
                    "classes: nc = 2 (person, rider); from metadata names"),
    "end-to-end": (end_to_end, 0.0, "output layout: end-to-end (1, N, 6 + K x D)"),
}  # fmt: skip


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The derived models by name, built once."""
    folder = tmp_path_factory.mktemp("layouts")
    return {name: build(DEFAULT_MODEL, folder / f"{name}.tflite")
            for name, (build, _, _) in LAYOUTS.items()}  # fmt: skip


@pytest.fixture(scope="module")
def original() -> dict[Path, list]:
    """yolov8n-pose-256's poses on the shared photos."""
    estimator = PoseEstimator(DEFAULT_MODEL)
    return {image: estimator.predict_file(image).poses for image in (BUS, ZIDANE)}


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_gives_the_same_people_as_st_256(layouts, original, name):
    estimator = PoseEstimator(layouts[name])
    step = LAYOUTS[name][1]
    for image, poses in original.items():
        result = estimator.predict_file(image)
        pixels = step * max(result.width, result.height) + 1e-3  # one step, in image pixels
        assert len(result.poses) == len(poses) > 0, name
        for a, b in zip(poses, result.poses, strict=True):
            assert abs(a.score - b.score) <= step + 1e-6
            assert np.abs(a.box - b.box).max() <= pixels, (name, a.box, b.box)
            assert np.abs(a.keypoints[:, :2] - b.keypoints[:, :2]).max() <= pixels
            assert np.abs(a.keypoints[:, 2] - b.keypoints[:, 2]).max() <= step + 1e-6


@pytest.mark.parametrize("name", LAYOUTS)
def test_models_info_says_what_it_found(layouts, name):
    info = run_cli("models", "info", layouts[name]).stdout.decode()
    assert LAYOUTS[name][2] in info, info
    assert "K = 17, D = 3" in info and "NMS: " in info


def test_an_end_to_end_model_keeps_the_graphs_nms_and_refuses_flip(layouts):
    info = run_cli("models", "info", layouts["end-to-end"]).stdout.decode()
    assert "NMS: in the graph" in info
    proc = run_cli("infer", "-m", layouts["end-to-end"], BUS, "--tta", "flip")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "--tta flip" in lines[0]


def test_tiles_run_through_every_layout(layouts):
    paths = (DEFAULT_MODEL, layouts["end-to-end"], layouts["two-classes"])
    tiled = [PoseEstimator(path, tile=128).predict_file(BUS).poses for path in paths]
    assert len(tiled[0]) == len(tiled[1]) == len(tiled[2]) > 0


def refused(tmp_path: Path, layouts: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """Files posecli must refuse: (path, what the one line names)."""
    both_axes = write_constant_model(tmp_path / "square.tflite", 32, [1, 21, 21])
    nhwc_or_nchw = write_constant_model(tmp_path / "three.tflite", (3, 32), [1, 56, 21])
    foreign = write_constant_model(tmp_path / "detect.tflite", 256, [1, 56, 100])
    wrong_k = save(load(layouts["two-classes"]), tmp_path / "k2.tflite",
                   {**TWO_CLASSES, "kpt_shape": [17, 2]})  # fmt: skip
    detect = save(load(DEFAULT_MODEL), tmp_path / "det.tflite", {"task": "detect"})
    return {
        "anchors on both axes": (both_axes, "has 21 anchors on both axes"),
        "NHWC or NCHW": (nhwc_or_nchw, "could be NHWC (1, N, M, 3) or NCHW (1, 3, N, M)"),
        "foreign": (foreign, "output shape (1, 56, 100) is not the pose layout"),
        "metadata": (wrong_k, "2 class(es) and kpt_shape [17, 2]"),
        "task": (detect, "its metadata says task 'detect'"),
    }


def test_ambiguous_or_foreign_layouts_are_one_line_naming_what_was_found(layouts, tmp_path):
    for case, (path, reason) in refused(tmp_path, layouts).items():
        with pytest.raises(ModelError, match="^" + str(path)):
            PoseEstimator(path)
        proc = run_cli("models", "info", path)
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (case, lines)
        assert reason in lines[0], (case, lines)


def test_yolo26_onnx_runs_in_infer_track_eval_and_bench():
    info = run_cli("models", "info", "yolo26n-pose-256").stdout.decode()
    assert "format: ONNX (onnxruntime)" in info and "input layout: NCHW" in info
    assert "from metadata kpt_shape" in info and "quantization: qdq-int8" in info
    records = jsonl_records(run_cli("infer", "-m", ONNX, BUS, ZIDANE, "-f", "jsonl").stdout)
    assert [len(r["poses"]) > 0 for r in records] == [True, True]
    proc = run_cli("track", "-m", "yolo26n-pose-256", BUS, BUS, BUS, "--sequence", "-f", "jsonl")
    ids = [[p["id"] for p in r["poses"]] for r in jsonl_records(proc.stdout)]
    assert len(ids) == 3 and ids[0] and ids[0] == ids[1] == ids[2], ids
    for metric in ("coco", "st"):
        proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", COCO_IMAGES,
                       "-m", "yolo26n-pose-256", "--limit", "8", "--metric", metric, "--json",
                       "-q")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("bench", "-m", ONNX, "-n", "4", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["input_size"] == [256, 256]


def test_an_onnx_model_without_onnxruntime_is_one_line_saying_how_to_install_it():
    code = ("import sys; sys.modules['onnxruntime'] = None; sys.argv[0] = 'posecli'; "
            "from posecli.cli import main; main()")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, "infer", "-m", str(ONNX), str(BUS)],
                          capture_output=True, timeout=120)  # fmt: skip
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "pip install 'posecli[onnx]'" in lines[0]


def test_records_of_a_several_class_model_carry_the_class_and_classes_filters(layouts):
    schema = json.loads(resources.files("posecli").joinpath("pose-result.schema.json").read_text())
    model = layouts["two-classes"]
    both = jsonl_records(run_cli("infer", "-m", model, BUS, "-f", "jsonl").stdout)[0]
    riders = jsonl_records(run_cli("infer", "-m", model, BUS, "-f", "jsonl", "--classes", "1")
                           .stdout)[0]  # fmt: skip
    jsonschema.validate(both, schema)
    assert both["poses"] and {p["class"]["name"] for p in both["poses"]} == {"person"}
    # the second class row is a copy of the first: the same people, as the other class
    assert [p["box"] for p in riders["poses"]] == [p["box"] for p in both["poses"]]
    assert {tuple(p["class"].values()) for p in riders["poses"]} == {(1, "rider")}
    plain = jsonl_records(run_cli("infer", BUS, "-f", "jsonl").stdout)[0]
    assert all("class" not in p for p in plain["poses"])
    proc = run_cli("infer", "-m", model, BUS, "--classes", "0,2")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "classes 0 to 1 (person, rider)" in lines[0]


def test_csv_of_a_several_class_model_has_the_class_columns(layouts):
    model = layouts["two-classes"]
    riders = jsonl_records(run_cli("infer", "-m", model, BUS, "-f", "jsonl", "--classes", "1")
                           .stdout)[0]  # fmt: skip
    text = run_cli("infer", "-m", model, BUS, "-f", "csv", "--classes", "1").stdout.decode()
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert header[3:7] == ["person", "class", "class_name", "score"]
    assert [row[4:6] for row in body] == [["1", "rider"]] * len(riders["poses"])
    assert [float(row[6]) for row in body] == [p["score"] for p in riders["poses"]]
    plain = run_cli("infer", BUS, "-f", "csv").stdout.decode().splitlines()[0].split(",")
    assert plain[3:5] == ["person", "score"]


def test_coords_forces_what_the_probe_would_find(layouts):
    model = layouts["pixels"]
    auto = run_cli("infer", "-m", model, BUS, "-f", "jsonl").stdout
    assert run_cli("infer", "-m", model, BUS, "-f", "jsonl", "--coords", "keypoint-pixels"
                   ).stdout == auto  # fmt: skip
    assert run_cli("infer", "-m", model, BUS, "-f", "jsonl", "--coords", "pixels").stdout != auto
    info = run_cli("models", "info", model, "--coords", "keypoint-pixels").stdout.decode()
    assert "keypoints input pixels; from --coords keypoint-pixels" in info
