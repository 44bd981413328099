"""Every output format parses back to the same results; COCO output loads in pycocotools."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources

import jsonschema
import pytest
from pycocotools.coco import COCO

from posecli import KEYPOINT_NAMES, ImageError

from conftest import BUS, COCO_ANNOTATIONS, ZIDANE, coco_files, jsonl_records, run_cli

FILES = [BUS, ZIDANE, *coco_files(4)]
COCO_ONLY = coco_files(6)


@pytest.fixture(scope="module")
def jsonl_run() -> list[dict]:
    proc = run_cli("infer", *FILES, "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return jsonl_records(proc.stdout)


def test_jsonl_matches_the_published_schema(jsonl_run):
    schema = json.loads(resources.files("posecli").joinpath("pose-result.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for record in jsonl_run:
        jsonschema.validate(record, schema, cls=jsonschema.Draft202012Validator)
    assert sum(len(r["poses"]) for r in jsonl_run) >= 5


def test_json_is_an_array_of_the_jsonl_records(jsonl_run, tmp_path):
    out = tmp_path / "out.json"
    proc = run_cli("infer", *FILES, "--format", "json", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == jsonl_run
    stdout = run_cli("infer", *FILES, "--format", "json").stdout
    assert json.loads(stdout) == jsonl_run


def test_csv_has_a_row_per_person_with_named_keypoint_columns(jsonl_run, tmp_path):
    out = tmp_path / "out.csv"
    assert run_cli("infer", *FILES, "-o", out).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    people = [(r["image"], i, p) for r in jsonl_run for i, p in enumerate(r["poses"])]
    assert len(rows) == len(people)
    for row, (image, index, pose) in zip(rows, people, strict=True):
        assert row["image"] == image and int(row["person"]) == index
        assert float(row["score"]) == pytest.approx(pose["score"], abs=1e-5)
        assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == pytest.approx(pose["box"])
        for name, (x, y, c) in zip(KEYPOINT_NAMES, pose["keypoints"], strict=True):
            assert float(row[f"{name}_x"]) == pytest.approx(x)
            assert float(row[f"{name}_y"]) == pytest.approx(y)
            assert float(row[f"{name}_conf"]) == pytest.approx(c, abs=1e-5)


def test_text_has_a_line_per_image(jsonl_run):
    lines = run_cli("infer", *FILES, "--format", "text").stdout.decode().splitlines()
    assert len(lines) == len(FILES)
    for line, record in zip(lines, jsonl_run, strict=True):
        assert line.startswith(f"{record['image']}: {record['width']}x{record['height']}, ")
        assert f" {len(record['poses'])} " in line


def test_coco_results_load_in_pycocotools(tmp_path):
    out = tmp_path / "results.json"
    proc = run_cli("infer", *COCO_ONLY, "--format", "coco", "-o", out)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    jsonl = jsonl_records(run_cli("infer", *COCO_ONLY, "--format", "jsonl").stdout)
    assert len(results) == sum(len(r["poses"]) for r in jsonl) > 0
    gt = COCO(str(COCO_ANNOTATIONS))
    dt = gt.loadRes(str(out))
    assert {a["image_id"] for a in dt.anns.values()} <= {int(p.stem) for p in COCO_ONLY}
    first = results[0]
    assert first["category_id"] == 1 and len(first["keypoints"]) == 51 and len(first["bbox"]) == 4


def test_coco_names_an_image_without_digits_and_keeps_the_others(tmp_path):
    out = tmp_path / "results.json"
    proc = run_cli("infer", BUS, *COCO_ONLY[:2], "--format", "coco", "-o", out)
    assert proc.returncode == 1
    assert f"posecli: error: {BUS}: the file name does not end in a number" in proc.stderr.decode()
    assert {r["image_id"] for r in json.loads(out.read_text())} <= {int(p.stem) for p in COCO_ONLY}


def test_format_follows_the_output_suffix(tmp_path):
    csv_header = "image,frame,time,person"
    for suffix, check in [(".json", json.loads), (".csv", lambda t: t.startswith(csv_header))]:
        out = tmp_path / f"out{suffix}"
        assert run_cli("infer", BUS, "-o", out).returncode == 0
        assert check(out.read_text())


def test_every_failed_input_has_an_error_record_with_one_reason_everywhere(estimator, tmp_path):
    """jsonl and json record a missing photo, a damaged one and a damaged video with the reason
    on stderr, which predict_files and stream give too (to_dict keeps it)."""
    missing, damaged, video = tmp_path / "nope.jpg", tmp_path / "cut.jpg", tmp_path / "bad.mp4"
    damaged.write_bytes(BUS.read_bytes()[:2000])
    video.write_bytes(b"not a video at all\n" * 100)
    paths = [missing, BUS, damaged, video]
    proc = run_cli("infer", *paths, "-f", "jsonl")
    assert proc.returncode == 1
    records = jsonl_records(proc.stdout)
    failed = [r for r in records if "error" in r]
    assert [r["image"] for r in failed] == [str(missing), str(damaged), str(video)]
    assert all(set(r) == {"image", "error"} for r in failed)
    errors = [line for line in proc.stderr.decode().splitlines() if "error" in line]
    assert errors == [f"posecli: error: {r['image']}: {r['error']}" for r in failed]
    api = [r.to_dict() for r in estimator.predict_files(paths)]
    assert [api[0], api[2], api[3]] == failed and api[1] == records[1]  # the CLI's missing first
    assert [r.to_dict() for r in estimator.stream(video)] == failed[-1:]
    schema = json.loads(resources.files("posecli").joinpath("pose-result.schema.json").read_text())
    for record in records:
        jsonschema.validate(record, schema, cls=jsonschema.Draft202012Validator)
    assert json.loads(run_cli("infer", *paths, "-f", "json").stdout) == records
    for path, record in zip((missing, damaged), failed, strict=False):
        with pytest.raises(ImageError) as caught:
            estimator.predict_file(path)
        assert str(caught.value) == record["error"]
