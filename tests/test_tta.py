"""Test-time flip and the TensorFlow-style nearest resize, on real photos and models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posecli import KEYPOINT_NAMES, PoseEstimator
from posecli.model.anchors import anchors_for
from posecli.model.preprocess import to_model_input
from posecli.model.tta import flip_index, mirror_anchors, mirrored_output
from posecli.pipeline.items import load
from st_reference import tf_nearest_resize

from conftest import BUS, COCO_IMAGES, jsonl_records, run_cli
from tflite_builder import write_constant_model

COCO_FLIP_PAIRS = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


def test_flip_index_swaps_left_and_right_as_cocos_flip_pairs():
    assert flip_index(KEYPOINT_NAMES) == COCO_FLIP_PAIRS


def test_mirror_anchors_reverse_each_grid_row_of_each_level():
    index = mirror_anchors(64, 32)  # levels 8x4, 4x2, 2x1
    assert index[:4].tolist() == [3, 2, 1, 0]
    assert index[32:34].tolist() == [33, 32]
    assert index[40:].tolist() == [40, 41]
    assert (index[index] == np.arange(len(index))).all()


@pytest.mark.parametrize(("height", "width"), [(250, 250), (200, 300), (256, 200)])
def test_tta_flip_runs_on_inputs_that_are_not_multiples_of_32(tmp_path, height, width):
    """A side that does not divide by a stride has ceil(side / stride) cells, as the model's
    output has. A constant model whose two people stand at mirrored anchors (the first and last
    cells of the first row) keeps both through the flip: each is its own mirror's match."""
    count = anchors_for(height, width)
    assert len(mirror_anchors(height, width)) == count
    last = -(-width // 8) - 1
    output = np.zeros((56, count), np.float32)
    output[:5, 0] = [0.3, 0.5, 0.2, 0.6, 0.9]
    output[:5, last] = [0.7, 0.5, 0.2, 0.6, 0.9]
    model = write_constant_model(tmp_path / "c.tflite", (height, width), [1, 56, count], output)
    poses = PoseEstimator(model, tta="flip").predict(np.zeros((height, width, 3), np.uint8))
    centres = sorted(float(p.box[0] + p.box[2]) / 2 / width for p in poses)
    assert centres == pytest.approx([0.3, 0.7], abs=1e-3)
    assert [p.score for p in poses] == pytest.approx([0.9, 0.9], abs=1e-6)


def test_mirrored_pass_lines_up_with_the_original_at_the_mirrored_anchors(estimator):
    rgb, _ = estimator.predictor.preprocess(load(estimator.predictor, BUS))
    size = rgb.shape[:2]
    original = estimator.predictor.run(rgb)
    mirrored = estimator.predictor.run(np.ascontiguousarray(rgb[:, ::-1]))
    back = mirrored_output(mirrored, size, flip_index(KEYPOINT_NAMES))
    person = (original[4] > 0.5) & (back[4] > 0.5)
    assert person.sum() > 10
    shoulders_x = (5 + 3 * 5, 5 + 3 * 6)
    for row in (0, 1, *shoulders_x):
        error = np.abs(original[row, person] - back[row, person]) * size[1]
        assert np.median(error) < 3, row
    assert np.corrcoef(original[4], back[4])[0, 1] > 0.9
    assert np.corrcoef(original[4], mirrored[4])[0, 1] < 0.5  # without the anchor mapping


def test_tta_flip_poses_of_a_mirrored_photo_are_the_mirrored_poses():
    crop = cv2.imread(str(BUS))[300:556, 100:356]  # the model's 256 x 256: no resizing
    flipper = PoseEstimator(tta="flip")
    poses = flipper.predict(crop)
    mirrored = flipper.predict(np.ascontiguousarray(crop[:, ::-1]))
    assert len(poses) >= 2 and len(mirrored) == len(poses)
    flip = list(COCO_FLIP_PAIRS)
    for p, q in zip(poses, mirrored, strict=True):
        assert q.score == pytest.approx(p.score, abs=1e-5)
        expected = p.keypoints[flip].copy()
        expected[:, 0] = 256 - expected[:, 0]
        assert np.abs(q.keypoints[:, :2] - expected[:, :2]).max() < 0.01


def test_tta_and_interp_are_checked():
    with pytest.raises(ValueError, match="tta"):
        PoseEstimator(tta="mirror")
    with pytest.raises(ValueError, match="interp"):
        PoseEstimator(interp="cubic")


def test_infer_tta_flip_finds_the_people_on_the_bus():
    proc = run_cli("infer", BUS, "--tta", "flip", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    (record,) = jsonl_records(proc.stdout)
    assert len([p for p in record["poses"] if p["score"] > 0.5]) >= 3


@pytest.mark.parametrize("size", [192, 256, 320])
def test_nearest_resize_samples_as_tensorflow_does(size):
    bgr = cv2.imread(str(sorted(COCO_IMAGES.glob("*.jpg"))[0]))
    assert bgr.shape[1] == 640
    rgb, _ = to_model_input(bgr, (size, size), "stretch", "nearest")
    expected = tf_nearest_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
    assert (rgb == expected).all()
    if size == 192:  # OpenCV's fixed-point nearest rounds down at the exact integers here
        opencv = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
        assert (cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB) != expected).any()
