"""Models with K keypoints of D values and N x M inputs, and the keypoint specs that name them.

The K x D models are ST's 256 model with a GATHER on its output rows (tests/derived_models.py):
real weights, so their poses must be the 17-keypoint model's on the same keypoints, exactly.
"""

from __future__ import annotations

import csv
import io
import json
import os
from importlib import resources

import cv2
import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posecli import COCO17, KeypointSpec, PoseEstimator, SpecError, load_spec
from posecli.model.decode import decode_poses
from posecli.model.preprocess import Transform
from posecli.pipeline.items import load

from conftest import BUS, COCO_IMAGES, DEFAULT_MODEL, ZIDANE, coco_files, jsonl_records, run_cli
from derived_models import gather_rows, keypoint_rows
from tflite_builder import write_constant_model

PHOTOS = [BUS, ZIDANE, *coco_files(12)]
# 21 keypoints: the 17, then nose, left shoulder, right shoulder and left wrist again.
REPEATED = [*range(17), 0, 5, 6, 9]
HAND_NAMES = [f"joint_{i}" for i in range(21)]
ULTRALYTICS_YAML = f"""\
# An Ultralytics dataset YAML as written for a retrained model
path: hand-keypoints
train: images/train
val: images/val
kpt_shape: [21, 3]
flip_idx: [0, 1, 2, 4, 3, 10, 11, 12, 13, 14, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 20]
names:
  0: hand
kpt_names:
  0: {json.dumps(HAND_NAMES)}
"""


@pytest.fixture(scope="session")
def derived(tmp_path_factory):
    """The derived models by name, built once: (path, keypoints of the 17 they hold, D)."""
    folder = tmp_path_factory.mktemp("derived")
    layouts = {
        "k12": (list(range(12)), 3),
        "k21": (REPEATED, 3),
        "k17d2": (list(range(17)), 2),
        "k18d2": ([*range(17), 0], 2),  # 36 values: 12 x 3 or 18 x 2, only a spec can tell
    }
    models = {}
    for name, (kpts, dims) in layouts.items():
        path = gather_rows(DEFAULT_MODEL, folder / f"{name}.tflite", keypoint_rows(kpts, dims))
        models[name] = (path, kpts, dims)
    models["rows12"] = (
        gather_rows(DEFAULT_MODEL, folder / "rows12.tflite", list(range(12))),
        [],
        0,
    )
    return models


@pytest.fixture(scope="module")
def original_poses():
    """The 17-keypoint model's poses on the photos."""
    estimator = PoseEstimator(DEFAULT_MODEL)
    return [estimator.predict(cv2.imread(str(p))) for p in PHOTOS]


def assert_same_people(original, derived, keypoints: list[int], dims: int) -> None:
    """Same scores and boxes; each derived keypoint is the original's (x, y and conf if D = 3)."""
    assert len(derived) == len(original)
    for a, b in zip(original, derived, strict=True):
        assert a.score == b.score and np.array_equal(a.box, b.box)
        assert b.keypoints.shape == (len(keypoints), 3)
        assert np.array_equal(b.keypoints[:, :dims], a.keypoints[keypoints, :dims])
        if dims == 2:
            assert (b.keypoints[:, 2] == 1.0).all()


@pytest.mark.parametrize("name", ["k12", "k21", "k17d2"])
def test_derived_models_give_the_same_people_and_exactly_their_keypoints(
    derived, original_poses, name
):
    path, keypoints, dims = derived[name]
    estimator = PoseEstimator(path)
    assert (estimator.keypoint_spec.count, estimator.keypoint_dims) == (len(keypoints), dims)
    found = [estimator.predict(cv2.imread(str(p))) for p in PHOTOS]
    assert sum(map(len, found)) >= 20
    for original, poses in zip(original_poses, found, strict=True):
        assert_same_people(original, poses, keypoints, dims)


def test_a_spec_settles_a_row_count_that_fits_both_d3_and_d2(derived, original_poses, tmp_path):
    path, keypoints, dims = derived["k18d2"]
    unsettled = PoseEstimator(path)
    assert (unsettled.keypoint_spec.count, unsettled.keypoint_dims) == (12, 3)
    spec = tmp_path / "spec.yaml"
    spec.write_text("kpt_shape: [18, 2]\n")
    settled = PoseEstimator(path, kpt_spec=spec)
    assert (settled.keypoint_spec.count, settled.keypoint_dims) == (18, 2)
    names_only = tmp_path / "names.json"
    names_only.write_text(json.dumps({"keypoints": [f"p{i}" for i in range(18)]}))
    assert PoseEstimator(path, kpt_spec=names_only).keypoint_dims == 2
    poses = settled.predict(cv2.imread(str(BUS)))
    assert_same_people(original_poses[0], poses, keypoints, dims)


def test_ultralytics_dataset_yaml_names_become_the_csv_columns(derived, tmp_path):
    spec = tmp_path / "hand-keypoints.yaml"
    spec.write_text(ULTRALYTICS_YAML)
    out = tmp_path / "poses.csv"
    proc = run_cli("infer", "-m", derived["k21"][0], "--kpt-spec", spec, BUS, "-o", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    keypoint_columns = [f"{n}_{axis}" for n in HAND_NAMES for axis in ("x", "y", "conf")]
    assert rows[0] == [
        "image",
        "frame",
        "time",
        "person",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
        *keypoint_columns,
    ]
    assert len(rows) > 2 and all(len(r) == len(rows[0]) for r in rows)
    loaded = load_spec(spec)
    assert loaded.names == tuple(HAND_NAMES) and (3, 4) in loaded.flip_pairs


def test_a_spec_beside_the_model_is_used_and_generic_names_without_one(derived, tmp_path):
    model = tmp_path / "hands.tflite"
    model.write_bytes(derived["k21"][0].read_bytes())
    header = run_cli("infer", "-m", model, BUS, "-f", "csv").stdout.decode().splitlines()[0]
    assert header.endswith("kp20_x,kp20_y,kp20_conf") and "kp0_x,kp0_y,kp0_conf" in header
    (tmp_path / "hands.yaml").write_text(ULTRALYTICS_YAML)
    header = run_cli("infer", "-m", model, BUS, "-f", "csv").stdout.decode().splitlines()[0]
    assert header.endswith("joint_20_x,joint_20_y,joint_20_conf")
    info = run_cli("models", "info", model).stdout.decode()
    assert "input size: 256 x 256" in info and "K = 21, D = 3" in info
    assert f"keypoint spec: {tmp_path / 'hands.yaml'} (21 keypoints" in info
    assert "class 'hand'" in info
    text = run_cli("infer", "-m", model, BUS, ZIDANE, "-f", "text").stdout.decode()
    counts = [line.split(", ")[1].split(" (")[0] for line in text.splitlines()]
    assert counts and all(c.endswith((" hand", " hands")) for c in counts), text


@pytest.mark.parametrize(("name", "count"), [("k12", 12), ("k17d2", 17)])
def test_json_records_carry_k_keypoints_and_match_the_schema(derived, name, count):
    schema = json.loads(resources.files("posecli").joinpath("pose-result.schema.json").read_text())
    proc = run_cli("infer", "-m", derived[name][0], BUS, ZIDANE, "-f", "jsonl")
    records = jsonl_records(proc.stdout)
    poses = [p for r in records for p in r["poses"]]
    assert poses and all(len(p["keypoints"]) == count for p in poses)
    for record in records:
        jsonschema.validate(record, schema, cls=jsonschema.Draft202012Validator)


def test_an_annotated_copy_is_written_for_a_model_without_a_skeleton(derived, tmp_path):
    model = derived["k12"][0]
    proc = run_cli("infer", "-m", model, BUS, "--save-dir", tmp_path, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    drawn = cv2.imread(str(tmp_path / "bus.jpg"))
    assert drawn is not None and drawn.shape == cv2.imread(str(BUS)).shape
    pose = jsonl_records(proc.stdout)[0]["poses"][0]
    x, y, conf = max(pose["keypoints"], key=lambda k: k[2])
    b, g, r = drawn[round(y), round(x)].astype(int)
    assert conf >= 0.5 and r > 200 and g < 60 and b < 60, "a red dot on the keypoint"


# A 192 x 320 (N x M) model whose constant output holds one person (column 7); everything else 0.
# Normalised values: box cx, cy, w, h, score, then K = 3 keypoints (x, y, conf).
CONSTANT_PERSON = [0.5, 0.5, 0.25, 0.5, 0.9, 0.25, 0.25, 0.9, 0.75, 0.5, 0.8, 0.5, 0.5, 0.7]
# In model pixels (x * 320, y * 192): box (120, 48)-(200, 144); keypoints (80, 48), (240, 96),
# (160, 96). Back in the image:
#   640 x 480 letterboxed: ratio min(320/640, 192/480) = 0.4, content 256 x 192, pad x 32, y 0:
#     box (220, 120)-(420, 360); keypoints (120, 120), (520, 240), (320, 240).
#   480 x 640 letterboxed: ratio min(320/480, 192/640) = 0.3, content 144 x 192, pad x 88:
#     box (106.67, 160)-(373.33, 480); keypoints (0, 160) clipped from -26.7, (506.67, 320)
#     clipped to the width 480, (240, 320).
#   640 x 480 stretched: scales 0.5 and 0.4, no pad: box (240, 120)-(400, 360);
#     keypoints (160, 120), (480, 240), (320, 240).
#   4000 x 3000 letterboxed (decoded at 1/4): ratio 0.064, content 256 x 192, pad x 32:
#     box (1375, 750)-(2625, 2250); keypoints (750, 750), (3250, 1500), (2000, 1500).
EXPECTED = {
    ((640, 480), "letterbox"): ([220, 120, 420, 360], [[120, 120], [520, 240], [320, 240]]),
    ((480, 640), "letterbox"): (
        [320 / 3, 160, 1120 / 3, 480], [[0, 160], [480, 320], [240, 320]]
    ),
    ((640, 480), "stretch"): ([240, 120, 400, 360], [[160, 120], [480, 240], [320, 240]]),
    ((4000, 3000), "letterbox"): (
        [1375, 750, 2625, 2250], [[750, 750], [3250, 1500], [2000, 1500]]
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """The constant 192 x 320 model: F = 24*40 + 12*20 + 6*10 = 1260 columns."""
    output = np.zeros((1, 14, 1260), np.float32)
    output[0, :, 7] = CONSTANT_PERSON
    path = tmp_path_factory.mktemp("wide") / "wide.tflite"
    return write_constant_model(path, (192, 320), [1, 14, 1260], output)


@pytest.mark.parametrize(("size", "mode"), list(EXPECTED))
def test_an_n_by_m_model_maps_its_person_to_the_right_pixels(wide_model, tmp_path, size, mode):
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(BUS)), size))
    estimator = PoseEstimator(wide_model, resize=mode)
    assert estimator.input_size == (320, 192)
    result = estimator.predict_file(path)
    assert result.ok and len(result.poses) == 1
    box, points = EXPECTED[size, mode]
    pose = result.poses[0]
    assert pose.score == pytest.approx(0.9)
    assert pose.box == pytest.approx(box, abs=1e-3)
    assert pose.keypoints[:, :2] == pytest.approx(np.array(points), abs=1e-3)
    assert pose.keypoints[:, 2] == pytest.approx([0.9, 0.8, 0.7])


def test_the_reduced_decode_of_a_wide_model_uses_both_axes(wide_model, tmp_path):
    """4000 x 3000 fits 256 x 192 inside 320 x 192: 15.6x smaller, so 1/4 keeps the 2x margin.

    Fitting it to 192 on its long side (a square 192 model) would allow 1/8.
    """
    path = tmp_path / "large.jpg"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(BUS)), (4000, 3000)))
    assert load(PoseEstimator(wide_model).predictor, path).reduction == 4


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 30),
    dims=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**32 - 1),
    nan_share=st.floats(0, 0.5),
)
def test_decoder_gives_k_keypoints_for_any_k_and_d(count, dims, seed, nan_share):
    """Random (5 + K*D, F) outputs of a 192 x 320 model, NaN included: K valid keypoints each."""
    rng = np.random.default_rng(seed)
    output = rng.uniform(-0.2, 1.2, (5 + count * dims, 1260)).astype(np.float32)
    output[rng.uniform(size=output.shape) < nan_share] = np.nan
    transform = Transform(0.4, 0.4, 32, 0)  # 640 x 480 letterboxed into 320 x 192
    poses = decode_poses(output, (320, 192), transform, (640, 480), 0.5, 0.7, 50, dims)
    assert poses
    for p in poses:
        assert p.keypoints.shape == (count, 3) and np.isfinite(p.keypoints).all()
        assert (p.keypoints >= 0).all() and (p.keypoints[:, 0] <= 640).all()
        assert (p.keypoints[:, 1] <= 480).all() and (p.keypoints[:, 2] <= 1).all()
        if dims == 2:
            assert (p.keypoints[:, 2] == 1.0).all()


def bad_spec_cases(tmp_path, derived) -> dict[str, tuple[list, str]]:
    """Each bad spec or model: the infer arguments and the reason its one error line gives."""

    def spec(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return path

    k12 = derived["k12"][0]
    fifo = tmp_path / "spec.yaml.fifo"
    os.mkfifo(fifo)
    return {
        "missing": (["-m", k12, "--kpt-spec", tmp_path / "nowhere.yaml"], "cannot read"),
        "fifo": (["-m", k12, "--kpt-spec", fifo], "not a regular file but a FIFO"),
        "not-yaml": (["-m", k12, "--kpt-spec", spec("a.yaml", "kpt_shape: [12, 3\n")],
                     "not valid YAML"),
        "not-json": (["-m", k12, "--kpt-spec", spec("a.json", "{kpt_shape: 1}")],
                     "not valid JSON"),
        "a-list": (["-m", k12, "--kpt-spec", spec("b.yaml", "- 1\n- 2\n")], "mapping"),
        "empty": (["-m", k12, "--kpt-spec", spec("c.yaml", "names: {0: hand}\n")],
                  "neither kpt_shape nor keypoint names"),
        "wrong-k": (["-m", k12, "--kpt-spec", spec("d.yaml", "kpt_shape: [10, 3]\n")],
                    "the spec has 10 keypoints x 3 values"),
        "wrong-d": (["-m", k12, "--kpt-spec", spec("e.yaml", "kpt_shape: [12, 2]\n")],
                    "the spec has 12 keypoints x 2 values"),
        "bad-shape": (["-m", k12, "--kpt-spec", spec("f.yaml", "kpt_shape: [12, 4]\n")],
                      "kpt_shape must be [K, D]"),
        "names-count": (["-m", k12, "--kpt-spec",
                         spec("g.yaml", "kpt_shape: [12, 3]\nkpt_names: {0: [a, b]}\n")],
                        "kpt_shape says 12 keypoints but 2 names"),
        "skeleton": (["-m", k12, "--kpt-spec",
                      spec("h.yaml", "kpt_shape: [12, 3]\nskeleton: [[0, 12]]\n")],
                     "skeleton pair [0, 12] is out of range"),
        "flip": (["-m", k12, "--kpt-spec",
                  spec("i.yaml", "kpt_shape: [12, 3]\nflip_idx: [0, 1]\n")],
                 "flip_idx must be a permutation of 0..11"),
        "sigmas": (["-m", k12, "--kpt-spec",
                    spec("j.yaml", "kpt_shape: [12, 3]\nsigmas: [0.1, 0.2]\n")],
                   "sigmas must be a list of 12 numbers"),
        "two-classes": (["-m", k12, "--kpt-spec",
                         spec("k.yaml", "kpt_shape: [12, 3]\nnames: {0: hand, 1: foot}\n")],
                        "names must give one class"),
        "fits-nothing": (["-m", derived["rows12"][0]], "is not the pose layout"),
    }  # fmt: skip


def test_every_bad_spec_or_model_gives_one_line_and_exit_2(derived, tmp_path):
    for case, (args, reason) in bad_spec_cases(tmp_path, derived).items():
        for command in (["infer", BUS], ["models", "info"]):
            if command[0] == "models":
                args = [a for a in args if a != "-m"]
            proc = run_cli(*command, *args)
            lines = proc.stderr.decode().splitlines()
            assert proc.returncode == 2, (case, command, lines)
            assert len(lines) == 1 and lines[0].startswith("posecli: error: "), (case, lines)
            assert reason in lines[0], (case, lines)
            named = args[args.index("--kpt-spec") + 1] if "--kpt-spec" in args else args[-1]
            assert f"{named}:" in lines[0], (case, lines)


def test_the_coco17_spec_matches_ultralytics_coco_pose():
    assert COCO17.count == 17 and len(COCO17.skeleton) == 19
    assert COCO17.flip_pairs[:3] == ((1, 2), (3, 4), (5, 6))
    assert COCO17.oks_sigmas()[0] == 0.026


def test_load_spec_reads_every_kpt_names_form(tmp_path):
    forms = {
        "dict.yaml": "kpt_shape: [2, 3]\nkpt_names: {0: [a, b]}\n",
        "nested.yaml": "kpt_shape: [2, 3]\nkpt_names: [[a, b]]\n",
        "flat.yaml": "kpt_names: [a, b]\n",
        "posecli.json": json.dumps({"keypoints": ["a", "b"], "skeleton": [[0, 1]],
                                    "sigmas": [0.05, 0.1], "flip_idx": [1, 0]}),
    }  # fmt: skip
    for name, text in forms.items():
        path = tmp_path / name
        path.write_text(text)
        spec = load_spec(path)
        assert spec.names == ("a", "b") and spec.source == str(path)
    assert spec.skeleton == ((0, 1),) and spec.flip_pairs == ((0, 1),)
    assert spec.oks_sigmas().tolist() == [0.05, 0.1]
    assert load_spec(tmp_path / "flat.yaml").oks_sigmas().tolist() == [0.5, 0.5]
    with pytest.raises(SpecError):
        load_spec(tmp_path / "missing.yaml")


def keypoint_subset_annotations(tmp_path, keep: list[int]):
    """The COCO dev annotations with only the kept keypoints (and the skeleton among them)."""
    from conftest import COCO_ANNOTATIONS

    data = json.loads(COCO_ANNOTATIONS.read_text())
    for category in data["categories"]:
        category["keypoints"] = [category["keypoints"][k] for k in keep]
        category["skeleton"] = []
    for ann in data["annotations"]:
        kpts = np.array(ann["keypoints"]).reshape(-1, 3)[keep]
        ann["keypoints"] = kpts.ravel().tolist()
        ann["num_keypoints"] = int((kpts[:, 2] > 0).sum())
    path = tmp_path / "ann12.json"
    path.write_text(json.dumps(data))
    return path


def rescore(annotations, results, sigmas) -> float:
    """Keypoint AP (%) of a results file, by pycocotools directly with the given sigmas."""
    import contextlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        evaluator = COCOeval(gt, gt.loadRes(str(results)), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.params.imgIds = sorted({r["image_id"] for r in json.loads(results.read_text())})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]) * 100


def test_eval_scores_a_k_keypoint_model_with_its_specs_sigmas(derived, tmp_path):
    annotations = keypoint_subset_annotations(tmp_path, list(range(12)))
    spec = tmp_path / "k12.json"
    spec.write_text(json.dumps({"kpt_shape": [12, 3], "sigmas": COCO17.sigmas[:12].tolist()}))
    args = ["eval", "--annotations", annotations, "--images", COCO_IMAGES, "--limit", "40",
            "-m", derived["k12"][0], "--json"]  # fmt: skip
    scores = {}
    for label, extra, sigmas in [
        ("spec", ["--kpt-spec", spec], COCO17.sigmas[:12]),
        ("default", [], np.full(12, 1 / 12)),
    ]:
        results = tmp_path / f"{label}.json"
        proc = run_cli(*args, *extra, "--save-results", results)
        assert proc.returncode == 0, proc.stderr
        ap = json.loads(proc.stdout)["keypoints"]["AP"]
        assert ap == pytest.approx(rescore(annotations, results, sigmas), abs=0.01)
        scores[label] = ap
    assert scores["spec"] != scores["default"] and scores["spec"] > 10


def test_eval_refuses_annotations_with_another_keypoint_count(derived):
    from conftest import COCO_ANNOTATIONS

    proc = run_cli("eval", "--annotations", COCO_ANNOTATIONS, "--images", COCO_IMAGES,
                   "-m", derived["k12"][0])  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {COCO_ANNOTATIONS}: the annotations have 17 keypoints per object, "
        f"but model {derived['k12'][0].name} has 12"
    ]


def test_tta_flip_needs_to_know_which_keypoints_swap(derived, tmp_path):
    """With generic names nothing says which keypoints are left and right: flipping would
    average a left eye with the right one. A spec with flip_idx makes it work."""
    k12 = derived["k12"][0]
    proc = run_cli("infer", BUS, "-m", k12, "--tta", "flip")
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"posecli: error: {k12}: --tta flip needs to know which keypoints swap in a mirror "
        "image: give --kpt-spec with flip_idx"
    ]
    spec = tmp_path / "k12.yaml"
    spec.write_text("kpt_shape: [12, 3]\nflip_idx: [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 11]\n")
    assert run_cli("infer", BUS, "-m", k12, "--tta", "flip", "--kpt-spec", spec).returncode == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"flip_idx": (1, 0)}, "flip_idx must be a permutation of 0..16"),
     ({"skeleton": ((0, 17),)}, r"skeleton pair \[0, 17\] is out of range"),
     ({"sigmas": np.ones(5)}, "sigmas must be a list of 17 numbers"),
     ({"names": ("a", "a")}, "unique")],
)  # fmt: skip
def test_a_keypoint_spec_built_in_code_is_held_to_a_spec_files_rules(fields, reason):
    """A short flip_idx gave keypoints hundreds of pixels off under --tta flip, without a word."""
    spec = KeypointSpec(**{"names": COCO17.names, **fields})
    with pytest.raises(SpecError, match=reason):
        PoseEstimator(kpt_spec=spec, tta="flip")
