"""-f yolo -o DIR: an Ultralytics pose data set, checked field by field against Ultralytics'
documented label format (docs.ultralytics.com/datasets/pose) and read back with --kpt-spec."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from posecli.core.keypoints import COCO17, load_spec
from posecli.core.results import Pose
from posecli.output.yolo import PRESENT, VISIBLE, label_line

from conftest import BUS, SHARED, ZIDANE, jsonl_records, ok_records, run_cli

K = COCO17.count
TOL = 1e-5  # infer's jsonl rounds pixels to 0.01, labels are normalised to 6 decimals


@pytest.fixture(scope="module")
def data_set(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """A data set of BUS, ZIDANE, a photo without people and a missing one, and infer's jsonl
    records of the same run by image name."""
    photos = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(photos / "empty.png"), np.full((48, 64, 3), 255, np.uint8))
    sources = [BUS, ZIDANE, photos / "empty.png", photos / "gone.jpg"]
    out = tmp_path_factory.mktemp("sets") / "set"
    proc = run_cli("infer", *sources, "-f", "yolo", "-o", out)
    assert proc.returncode == 1 and b"gone.jpg: no such file" in proc.stderr, proc.stderr
    records = ok_records(run_cli("infer", *sources, "-f", "jsonl").stdout)
    return out, {Path(r["image"]).name: r for r in records}


def label_rows(path: Path) -> list[list[str]]:
    """A label file's rows of fields."""
    return [line.split(" ") for line in path.read_text().splitlines()]


def test_each_image_is_in_images_with_its_label_where_ultralytics_looks(data_set):
    """Ultralytics finds a label by replacing /images/ with /labels/ and the suffix with .txt;
    a failed input is left out; an image without people has an empty label file."""
    out, records = data_set
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == ["bus.jpg", "empty.png", "zidane.jpg"]
    for name in images:
        image = str(out / "images" / name)
        label = f"{os.sep}labels{os.sep}".join(image.rsplit(f"{os.sep}images{os.sep}", 1))
        assert Path(label).with_suffix(".txt").is_file()
    for photo in (BUS, ZIDANE):
        assert (out / "images" / photo.name).read_bytes() == photo.read_bytes()
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["bus.txt", "empty.txt",
                                                                  "zidane.txt"]  # fmt: skip
    assert (out / "labels" / "empty.txt").read_bytes() == b""
    assert not records["empty.png"]["poses"]


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_label_rows_follow_ultralytics_pose_format_field_by_field(data_set, name):
    """`<class> <x> <y> <width> <height>` then `<px> <py> <visibility>` per keypoint, all
    normalised to 0..1 (box centre and size), one row per person in the results' order."""
    out, records = data_set
    record = records[name]
    size = np.array([record["width"], record["height"]], float)
    rows = label_rows(out / "labels" / Path(name).with_suffix(".txt"))
    assert len(rows) == len(record["poses"]) > 0
    for row, pose in zip(rows, record["poses"], strict=True):
        assert len(row) == 5 + K * 3
        assert row[0] == "0"  # class index: an integer, 0 for the one class (person)
        values = np.array(row[1:], float)
        assert (values >= 0).all() and (values <= 2).all()
        box = np.clip(np.array(pose["box"], float).reshape(2, 2) / size, 0, 1)
        np.testing.assert_allclose(values[:2], box.mean(axis=0), atol=TOL)  # x, y: centre
        np.testing.assert_allclose(values[2:4], box[1] - box[0], atol=TOL)  # width, height
        points = values[4:].reshape(K, 3)
        for (px, py, v), (x, y, conf) in zip(points, pose["keypoints"], strict=True):
            expected = 2 if conf >= VISIBLE else 1 if conf >= PRESENT else 0
            inside = 0 <= x <= size[0] and 0 <= y <= size[1]
            assert v == (expected if inside else 0)
            if v:
                np.testing.assert_allclose([px, py], np.array([x, y]) / size, atol=TOL)
            else:
                assert (px, py) == (0, 0)  # absent: x = y = 0, as COCO's v = 0
        assert (points[:, :2] <= 1).all()
        assert set(row[7::3]) <= {"0", "1", "2"}  # visibility: an integer 0, 1 or 2


def test_data_yaml_has_ultralytics_fields_from_the_model_spec(data_set):
    out, _ = data_set
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out.resolve())
    assert (Path(data["path"]) / data["train"]).is_dir() and data["val"] == data["train"]
    assert data["names"] == {0: "person"}
    assert data["kpt_shape"] == [K, 3]
    assert data["flip_idx"] == list(COCO17.flip_idx)
    assert data["kpt_names"] == {0: list(COCO17.names)}


def test_kpt_spec_reads_the_written_data_yaml_back(data_set):
    """--kpt-spec DIR/data.yaml is the model's spec again: the same results and drawing."""
    out, records = data_set
    spec = load_spec(out / "data.yaml")
    assert spec.names == COCO17.names and spec.flip_idx == COCO17.flip_idx
    assert spec.skeleton == COCO17.skeleton and spec.label == "person" and spec.dims == 3
    np.testing.assert_allclose(spec.oks_sigmas(), COCO17.oks_sigmas())
    proc = run_cli("infer", BUS, "--kpt-spec", out / "data.yaml", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert jsonl_records(proc.stdout)[0] == records["bus.jpg"]


def test_visibility_thresholds_and_keypoints_outside_the_image():
    keypoints = np.array([[10, 10, VISIBLE], [10, 10, PRESENT], [10, 10, PRESENT - 0.01],
                          [-1, 10, 0.9], [10, 101, 0.9]] + [[50, 50, 1.0]] * (K - 5))  # fmt: skip
    line = label_line(Pose(0.9, np.array([-5.0, 0, 60, 100]), keypoints), 100, 100)
    fields = line.split()
    assert fields[1:5] == ["0.300000", "0.500000", "0.600000", "1.000000"]  # box clipped
    v = [int(f) for f in fields[7::3]]
    assert v[:5] == [2, 1, 0, 0, 0] and fields[5:8] == ["0.100000", "0.100000", "2"]
    assert fields[11:14] == ["0.000000", "0.000000", "0"]


def test_images_sharing_a_stem_get_label_files_of_their_own(tmp_path):
    shutil.copy(BUS, tmp_path / "x.jpg")
    cv2.imwrite(str(tmp_path / "x.png"), cv2.imread(str(ZIDANE)))
    out = tmp_path / "set"
    assert run_cli("infer", tmp_path / "x.jpg", tmp_path / "x.png", "-f", "yolo",
                   "-o", out).returncode == 0  # fmt: skip
    assert sorted(p.name for p in (out / "images").iterdir()) == ["x.jpg", "x_1.png"]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["x.txt", "x_1.txt"]


@pytest.mark.parametrize(("args", "says"), [
    (["-f", "yolo"], "-f yolo writes a data set: give -o DIR"),
    (["-f", "yolo", "-o", BUS], "-f yolo writes a data set: give -o DIR"),
    (["-o", "{tmp}/set/"], "-f yolo writes a data set there"),
    (["-f", "jsonl", "-o", "{tmp}"], "is a folder; results go to a file"),
])  # fmt: skip
def test_yolo_needs_a_folder_and_other_formats_a_file(tmp_path, args, says):
    proc = run_cli("infer", ZIDANE, *(str(a).format(tmp=tmp_path) for a in args))
    assert proc.returncode == 2 and says in proc.stderr.decode(), proc.stderr


def test_a_video_is_refused_from_a_data_set(tmp_path):
    proc = run_cli("infer", SHARED / "videos" / "pets-vtest.avi", ZIDANE, "-f", "yolo",
                   "-o", tmp_path / "set")  # fmt: skip
    assert proc.returncode == 1 and b"--format yolo takes image files only" in proc.stderr
    assert [p.name for p in (tmp_path / "set" / "labels").iterdir()] == ["zidane.txt"]
