"""posecli eval against pycocotools used directly, on the real COCO subset in ../shared/coco."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import COCO_ANNOTATIONS, COCO_IMAGES, DEFAULT_MODEL, run_cli
from reference import ReferencePose


def eval_json(*args) -> dict:
    """`posecli eval ... --json` parsed; the run must succeed."""
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ground_truth_as_results(perturb: float = 0.0) -> list[dict]:
    """Every annotated person with keypoints, as detections (optionally with jittered points)."""
    data = json.loads(COCO_ANNOTATIONS.read_text())
    rng = np.random.default_rng(0)
    results = []
    for ann in data["annotations"]:
        if ann["iscrowd"] or not ann["num_keypoints"]:
            continue
        kpts = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        kpts[:, :2] += rng.normal(0, perturb, (17, 2)) * np.sqrt(ann["area"]) * (kpts[:, 2:] > 0)
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "bbox": ann["bbox"],
                "keypoints": kpts.ravel().tolist(),
                "score": 1.0,
            }
        )
    return results


def test_ground_truth_scored_against_itself_is_perfect(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(ground_truth_as_results()))
    result = eval_json("--results", path)
    assert result["keypoints"]["AP"] == pytest.approx(100.0)
    assert result["keypoints"]["AP50"] == pytest.approx(100.0)


def test_a_perturbed_copy_scores_lower(tmp_path):
    path = tmp_path / "noisy.json"
    path.write_text(json.dumps(ground_truth_as_results(perturb=0.15)))
    result = eval_json("--results", path)
    assert 0 < result["keypoints"]["AP"] < 90


@pytest.mark.parametrize("metric", ["coco", "st"])
def test_both_metrics_score_with_the_spec_sigmas(tmp_path, metric):
    """Looser OKS sigmas from --kpt-spec score the same noisy keypoints higher, in both metrics."""
    path = tmp_path / "noisy.json"
    path.write_text(json.dumps(ground_truth_as_results(perturb=0.15)))
    loose = tmp_path / "loose.yaml"
    loose.write_text("kpt_shape: [17, 3]\nsigmas: [" + ", ".join(["0.5"] * 17) + "]\n")
    default = eval_json("--results", path, "--metric", metric)["keypoints"]["AP50"]
    looser = eval_json("--results", path, "--metric", metric, "--kpt-spec", loose)
    assert looser["keypoints"]["AP50"] > default + 5


def reference_ap50(image_ids: list[int]) -> float:
    """Keypoint AP50 of the independent reference pipeline, scored by pycocotools directly."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(COCO_ANNOTATIONS))
    reference = ReferencePose(DEFAULT_MODEL, conf=0.001, reduced=True)
    detections = []
    for image_id in image_ids:
        for person in reference(COCO_IMAGES / gt.imgs[image_id]["file_name"]):
            x1, y1, x2, y2 = person["box"]
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": person["score"],
                    "keypoints": [v for kp in person["keypoints"] for v in kp],
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(detections), "keypoints")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[1] * 100


def test_a_slice_agrees_with_the_reference_within_a_point():
    result = eval_json("--images", COCO_IMAGES, "--limit", "80")
    ids = sorted(img["id"] for img in json.loads(COCO_ANNOTATIONS.read_text())["images"])[:80]
    assert result["images"] == 80
    assert result["keypoints"]["AP50"] == pytest.approx(reference_ap50(ids), abs=1.0)


def test_the_whole_set_agrees_with_the_reference_within_0_3():
    result = eval_json("--images", COCO_IMAGES)
    ids = sorted(img["id"] for img in json.loads(COCO_ANNOTATIONS.read_text())["images"])
    assert result["images"] == 408 and result["settings"]["conf"] == 0.001
    assert result["keypoints"]["AP50"] == pytest.approx(reference_ap50(ids), abs=0.3)
    assert result["keypoints"]["AP50"] > 40 and result["bbox"]["AP50"] > 35


def test_several_models_give_one_table_with_a_row_each():
    proc = run_cli(
        "eval",
        "--annotations",
        COCO_ANNOTATIONS,
        "--images",
        COCO_IMAGES,
        "--limit",
        "10",
        "-m",
        "yolov8n-pose-192",
        "-m",
        "yolov8n-pose-320",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 4 and "keypoints" in lines[0] and "AP50" in lines[1]
    assert lines[2].startswith("yolov8n-pose-192") and lines[3].startswith("yolov8n-pose-320")


@pytest.mark.parametrize("bad", ["broken.tflite", "no-such-model"])
def test_a_bad_model_among_several_is_one_line_and_the_others_are_scored(tmp_path, bad):
    """A damaged file or an unknown name between two good models: one line naming it, exit 2,
    and the table still has the good models' rows."""
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + bytes(100))
    model = str(broken) if bad == "broken.tflite" else bad
    models = ["-m", "yolov8n-pose-192", "-m", model, "-m", "yolov8n-pose-256"]
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", COCO_IMAGES, "--limit",
                   "5", *models)  # fmt: skip
    assert proc.returncode == 2
    errors = proc.stderr.decode().splitlines()
    assert len(errors) == 1 and bad in errors[0], errors
    lines = proc.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["yolov8n-pose-192", "yolov8n-pose-256"]


def test_save_results_writes_what_loadres_reads(tmp_path):
    out = tmp_path / "results.json"
    result = eval_json("--images", COCO_IMAGES, "--limit", "10", "--save-results", out)
    again = eval_json("--results", out)
    assert again["keypoints"]["AP50"] > 0
    assert result["images"] == 10
    same = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", out, "--limit", "10",
                   "--json")  # fmt: skip
    assert same.stderr == b"" and json.loads(same.stdout)["keypoints"] == result["keypoints"]


def test_infer_jsonl_and_json_score_as_its_coco_results(tmp_path):
    """infer's default output is a results file: image ids from the file names, as -f coco; a
    failed input's record is a warning (that image counts as having no people)."""
    coco = json.loads(COCO_ANNOTATIONS.read_text())
    names = [i["file_name"] for i in sorted(coco["images"], key=lambda i: i["id"])[:8]]
    photos = [COCO_IMAGES / name for name in names]
    outputs = {fmt: tmp_path / f"poses.{fmt}" for fmt in ("json", "jsonl")}
    outputs["coco"] = tmp_path / "coco.json"
    for fmt, out in outputs.items():
        run_cli("infer", *photos, tmp_path / "gone.jpg", "--conf", "0.001", "-f", fmt, "-o", out)
    args = ("--limit", "8", "--json")
    expected = eval_json("--results", outputs["coco"], *args)["keypoints"]
    for fmt in ("json", "jsonl"):
        proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", outputs[fmt], *args)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["keypoints"] == expected and expected["AP50"] > 0
        warning = "inputs that failed (error records: 1) count as having no people"
        assert proc.stderr.decode() == f"posecli: warning: {outputs[fmt]}: {warning}\n"


def test_eval_imgsz_picks_the_model():
    [row] = [eval_json("--images", COCO_IMAGES, "--limit", "2", "--imgsz", "320")]
    assert row["model"] == "yolov8n-pose-320"
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", COCO_IMAGES,
                   "--imgsz", "320", "-m", "yolov8n-pose-256")  # fmt: skip
    assert proc.returncode == 2 and b"not two" in proc.stderr


def test_a_results_file_saved_with_limit_and_scored_over_all_images_is_a_warning(tmp_path):
    """The images after its last result count as having no people: say so, and how to score it."""
    total = len(json.loads(COCO_ANNOTATIONS.read_text())["images"])
    first = sorted(r["image_id"] for r in ground_truth_as_results())[0]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([r for r in ground_truth_as_results() if r["image_id"] == first]))
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", partial)
    assert proc.returncode == 0
    covered = sorted(json.loads(COCO_ANNOTATIONS.read_text())["images"], key=lambda i: i["id"])
    k = [i["id"] for i in covered].index(first) + 1
    assert proc.stderr.decode() == (
        f"posecli: warning: {partial}: no results for the last {total - k} of the {total} images "
        f"by id, which count as having no people; a file saved with --limit {k} is scored with "
        f"--limit {k}\n"
    )
    assert run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", partial, "--limit",
                   str(k)).stderr == b""  # fmt: skip
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(ground_truth_as_results()))
    assert run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", whole).stderr == b""


def write_annotations(path, edit) -> None:
    """A copy of the shared annotations with `edit` applied."""
    data = json.loads(COCO_ANNOTATIONS.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_a_missing_image_is_named_and_the_rest_scored(tmp_path):
    annotations = tmp_path / "ann.json"
    write_annotations(annotations, lambda d: d["images"][0].update(file_name="gone.jpg"))
    proc = run_cli(
        "eval", "--annotations", annotations, "--images", COCO_IMAGES, "--limit", "5", "--json"
    )
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        f"posecli: error: {COCO_IMAGES}: 1 of the 5 annotated images not found (gone.jpg); "
        "scoring the rest\n"
    )
    assert json.loads(proc.stdout)["images"] == 4


def test_no_images_at_all_is_an_error(tmp_path):
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", tmp_path)
    assert proc.returncode == 2 and b"none of the 408 annotated images" in proc.stderr


@pytest.mark.parametrize("metric", ["coco", "st"])
def test_images_that_all_fail_to_decode_are_an_error_not_a_score(tmp_path, metric):
    """Every annotated image is there but none decodes: no table of scores over nothing."""
    data = json.loads(COCO_ANNOTATIONS.read_text())
    for image in data["images"][:5]:
        (tmp_path / image["file_name"]).write_text("not an image")
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", tmp_path,
                   "--limit", "5", "--metric", metric, "--json")  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    count = 5 if metric == "coco" else 4  # the card metric keeps images with keypoints
    assert len(lines) > count and lines[-1] == (
        f"posecli: error: {COCO_ANNOTATIONS}: none of the {count} annotated images could be "
        "read, so there is nothing to score"
    )


def test_a_file_that_is_not_coco_keypoints_is_refused(tmp_path):
    annotations = tmp_path / "instances.json"
    write_annotations(annotations, lambda d: [c.pop("keypoints") for c in d["categories"]])
    proc = run_cli("eval", "--annotations", annotations, "--images", COCO_IMAGES)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {annotations}: not a COCO keypoints file (no category with keypoints)"
    ]
    text = tmp_path / "text.json"
    text.write_text("not json")
    assert run_cli("eval", "--annotations", text, "--images", COCO_IMAGES).returncode == 2


def first_annotation(data: dict) -> dict:
    return data["annotations"][0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: first_annotation(d).pop("bbox"), "bbox is missing or null, not 4 numbers"),
        (lambda d: first_annotation(d).pop("iscrowd"), "iscrowd is missing or null, not 0 or 1"),
        (lambda d: first_annotation(d).update(keypoints=[0] * 30),
         "annotation 183234: keypoints is [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ..., not 51"),
        (lambda d: first_annotation(d).update(keypoints=[None] * 51), "keypoints is [None, None"),
        (lambda d: d["images"].append(5), "image 409 is not an object"),
        (lambda d: d["images"][0].update(id=[1]), "image number 1: id is [1], not an integer"),
    ],
)  # fmt: skip
def test_a_malformed_annotation_is_one_line_naming_it(tmp_path, change, reason):
    """Each of these ended in an internal error (a KeyError or TypeError in pycocotools)."""
    annotations = tmp_path / "bad.json"
    write_annotations(annotations, change)
    for metric in ("coco", "st"):
        proc = run_cli("eval", "--annotations", annotations, "--images", COCO_IMAGES,
                       "--metric", metric, "--limit", "3")  # fmt: skip
        assert proc.returncode == 2
        [line] = proc.stderr.decode().splitlines()
        assert line.startswith(f"posecli: error: {annotations}: ") and reason in line


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("score", None, "score is missing or null, not a number"),
     ("score", "0.9", "score is '0.9', not a number"),
     ("keypoints", None, "keypoints is missing or null, not 51 numbers (3 per keypoint)"),
     ("image_id", [1], "image_id is [1], not an integer"),
     ("bbox", [1, 2], "bbox is [1, 2], not 4 numbers")],
)  # fmt: skip
def test_a_malformed_result_is_one_line_naming_it(tmp_path, field, value, reason):
    results = ground_truth_as_results()[:3]
    results[1][field] = value
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", path)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {path}: result number 2: {reason}"
    ]


def test_results_with_unknown_image_ids_are_refused(tmp_path):
    results = ground_truth_as_results()[:3]
    results[1]["image_id"] = 999999999
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--results", path)
    assert proc.returncode == 2
    assert f"{path}: image_id 999999999 matches no annotated image;" in proc.stderr.decode()


def test_results_without_category_id_score_as_the_keypoint_category(tmp_path):
    with_ids, without = tmp_path / "with.json", tmp_path / "without.json"
    results = ground_truth_as_results(perturb=0.1)
    with_ids.write_text(json.dumps(results))
    without.write_text(json.dumps([{k: v for k, v in r.items() if k != "category_id"}
                                   for r in results]))  # fmt: skip
    for metric in ("coco", "st"):
        scored = eval_json("--results", with_ids, "--metric", metric)["keypoints"]
        assert eval_json("--results", without, "--metric", metric)["keypoints"] == scored


def test_two_image_entries_naming_one_file_are_both_scored(tmp_path):
    """Two ids for one file: the file is run once and its poses count for both."""
    annotations = tmp_path / "ann.json"

    def share_a_file(data: dict) -> None:
        data["images"][1]["file_name"] = data["images"][0]["file_name"]

    write_annotations(annotations, share_a_file)
    proc = run_cli("eval", "--annotations", annotations, "--images", COCO_IMAGES, "--limit", "5",
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 5


def test_card_metric_with_no_image_it_keeps_says_so(tmp_path):
    annotations = tmp_path / "ann.json"
    write_annotations(annotations, lambda d: d.update(annotations=[]))
    proc = run_cli("eval", "--annotations", annotations, "--images", COCO_IMAGES,
                   "--metric", "st")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {annotations}: no image passes the card metric's filter (an image "
        "with at least one person with keypoints)"
    ]


def test_a_size_without_people_is_undefined_not_zero(tmp_path):
    """No person is large (area over 96²) in these annotations: APl is null in JSON and '-' in
    the table, as pycocotools leaves it undefined (-1), not a score of 0."""
    annotations = tmp_path / "ann.json"

    def small_people_only(data: dict) -> None:
        data["annotations"] = [a for a in data["annotations"] if a["area"] <= 96**2]

    write_annotations(annotations, small_people_only)
    args = ["eval", "--annotations", annotations, "--images", COCO_IMAGES, "--limit", "8"]
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["keypoints"]["APl"] is None and result["bbox"]["APl"] is None
    assert result["keypoints"]["APm"] is not None and result["keypoints"]["AP"] >= 0
    table = run_cli(*args).stdout.decode().splitlines()
    assert table[-1].split()[7] == "-"  # model, resize, images, AP, AP50, AP75, APm, APl
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    proc = run_cli("eval", "--annotations", annotations, "--results", empty, "--json")
    assert proc.returncode == 0, proc.stderr
    nothing = json.loads(proc.stdout)["keypoints"]
    assert nothing["APl"] is None and nothing["AP"] == nothing["APm"] == nothing["AR"] == 0
