"""ST's card metric: hand-computed cases, and agreement with a plain re-implementation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posecli import KEYPOINT_NAMES
from posecli.evaluation import coco as evaluate
from posecli.evaluation import st_metric
from st_reference import card_ap50

from conftest import COCO_ANNOTATIONS, COCO_IMAGES, MODELS, run_cli

K = len(KEYPOINT_NAMES)
CATEGORY = {"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}


def person(image_id: int, ann_id: int, points: np.ndarray | None, box=(10, 10, 40, 80), crowd=0):
    """A COCO person annotation; points (K, 2) are all labelled, None gives no keypoints."""
    keypoints = [0.0] * 3 * K
    if points is not None:
        keypoints = np.c_[points, np.full(K, 2)].ravel().tolist()
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": crowd,
            "bbox": list(box), "area": box[2] * box[3], "keypoints": keypoints,
            "num_keypoints": 0 if points is None else K}  # fmt: skip


def annotations(tmp_path, anns, n_images=3):
    """A loaded annotation file with 100 x 100 images 1..n_images."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 100, "height": 100}
              for i in range(1, n_images + 1)]  # fmt: skip
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [CATEGORY]}))
    return evaluate.load_annotations(path)


def detection(image_id: int, points: np.ndarray, score: float) -> dict:
    """A COCO result entry with these keypoints."""
    return {"image_id": image_id, "category_id": 1, "score": score,
            "keypoints": np.c_[points, np.ones(K)].ravel().tolist()}  # fmt: skip


RNG = np.random.default_rng(0)
A = RNG.uniform(15, 45, (K, 2))
B = RNG.uniform(55, 85, (K, 2))
FAR = A + 40


def ap50(coco, detections, ids=(1, 2, 3)):
    return st_metric.score(coco, detections, list(ids))


def test_perfect_prediction_scores_995_the_last_recall_point_is_the_zero_sentinel(tmp_path):
    coco = annotations(tmp_path, [person(1, 1, A)])
    scores, images = ap50(coco, [detection(1, A, 0.9)])
    assert images == 1
    # Recall is 1 - 1e-7, so the 101-point curve is 1 up to 0.99 and 0 at recall 1.
    assert scores == {"AP50": 99.5, "AP50_95": 99.5, "AP75": 99.5, "recall50": 100.0}


def test_no_prediction_or_no_true_positive_scores_50_the_sentinel_ramp(tmp_path):
    coco = annotations(tmp_path, [person(1, 1, A)])
    assert ap50(coco, [])[0]["AP50"] == 50.0
    scores = ap50(coco, [detection(1, FAR, 0.9)])[0]
    assert scores["AP50"] == 50.0 and scores["recall50"] == 0.0


def test_half_the_people_found_scores_75_and_a_higher_ranked_miss_costs_a_quarter(tmp_path):
    coco = annotations(tmp_path, [person(1, 1, A), person(1, 2, B, box=(50, 50, 40, 40))])
    scores = ap50(coco, [detection(1, A, 0.9)])[0]
    assert scores["AP50"] == 75.0 and scores["recall50"] == 50.0
    coco = annotations(tmp_path, [person(1, 1, A)])
    # FP then TP: envelope 1 -> 0.5 linear over recall 0..0.99, then 0 at 1:
    # 0.99 - 0.25 * 0.99**2 + (1 - 0.495) / 2 * 0.01 = 0.7475.
    assert ap50(coco, [detection(1, FAR, 0.9), detection(1, A, 0.5)])[0]["AP50"] == 74.75


def test_crowd_only_images_and_empty_boxes_are_left_out(tmp_path):
    anns = [
        person(1, 1, A),
        person(2, 2, A, crowd=1),
        person(3, 3, A, box=(10, 10, 0, 80)),
    ]
    coco = annotations(tmp_path, anns)
    assert [im.image_id for im in st_metric.kept_images(coco, [1, 2, 3])] == [1]
    dets = [detection(1, A, 0.9), detection(2, B, 0.95), detection(3, B, 0.95)]
    assert ap50(coco, dets) == ({"AP50": 99.5, "AP50_95": 99.5, "AP75": 99.5, "recall50": 100.0}, 1)


def test_people_without_keypoints_are_not_counted_and_keep_an_image_out_alone(tmp_path):
    coco = annotations(tmp_path, [person(1, 1, A), person(1, 2, None), person(2, 3, None)])
    assert [im.image_id for im in st_metric.kept_images(coco, [1, 2])] == [1]
    assert ap50(coco, [detection(1, A, 0.9)], ids=(1, 2))[0]["recall50"] == 100.0


def test_a_match_needs_oks_strictly_above_the_threshold():
    hits = st_metric.true_positives(np.array([0.5, np.nextafter(0.5, 1), 0.75, 0.7501]))
    assert hits[:, 0].tolist() == [False, True, True, True]
    assert hits[:, 5].tolist() == [False, False, False, True]


def test_matching_ignores_scores_each_ground_truth_keeps_its_best_oks_prediction():
    oks = np.array([[0.9, 0.8, 0.0], [0.3, 0.6, 0.0]])
    # Predictions 0 and 1 both pick ground truth 0, which keeps prediction 0; prediction 1 is
    # left with nothing although its OKS with ground truth 1 is 0.6.
    assert st_metric.matched_oks(oks).tolist() == [0.9, 0.0, 0.0]


def test_image_order_is_sorted_names_shuffled_with_seed_123(tmp_path):
    coco = annotations(tmp_path, [person(i, i, A) for i in range(1, 9)], n_images=8)
    order = [im.image_id for im in st_metric.kept_images(coco, range(8, 0, -1))]
    assert order == [1 + i for i in np.random.RandomState(123).permutation(8)]


def subset(tmp_path, n: int):
    """The first n dev images by id with their annotations, as an annotation file."""
    data = json.loads(COCO_ANNOTATIONS.read_text())
    images = sorted(data["images"], key=lambda im: im["id"])[:n]
    ids = {im["id"] for im in images}
    anns = [a for a in data["annotations"] if a["image_id"] in ids]
    path = tmp_path / "subset.json"
    path.write_text(json.dumps({**data, "images": images, "annotations": anns}))
    return path


@pytest.mark.parametrize("model", ["yolov8n_192_quant_pc_uf_pose_coco-st.tflite"])
def test_card_setup_agrees_with_a_plain_implementation_of_st_metric(tmp_path, model):
    path = subset(tmp_path, 90)
    proc = run_cli("eval", "--annotations", path, "--images", COCO_IMAGES, "-m", MODELS / model,
                   "--metric", "st", "--resize", "stretch", "--interp", "nearest", "--iou", "0.1",
                   "--conf", "0.001", "--full-decode", "--json",
                   "--save-results", tmp_path / "results.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert b"card" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["metric"] == "st" and "bbox" not in result
    assert set(result["keypoints"]) == {"AP50", "AP50_95", "AP75", "recall50"}
    expected = card_ap50(MODELS / model, path, COCO_IMAGES)
    assert 20 < expected < 80
    assert abs(result["keypoints"]["AP50"] - expected) < 0.3
    rescored = run_cli("eval", "--annotations", path, "--results", tmp_path / "results.json",
                       "--metric", "st", "--json")  # fmt: skip
    assert json.loads(rescored.stdout)["keypoints"] == result["keypoints"]


def test_metric_st_says_which_card_settings_differ(tmp_path):
    proc = run_cli("eval", "--annotations", subset(tmp_path, 8), "--images", COCO_IMAGES,
                   "--metric", "st", "-m", "yolov8n-pose-192")  # fmt: skip
    lines = [line for line in proc.stderr.decode().splitlines() if "card" in line]
    assert lines == [
        "posecli: not the model card's setup: resize letterbox (card: stretch), "
        "interp linear (card: nearest), iou 0.7 (card: 0.1)"
    ]
