"""The library pipeline on the real models and photos: people found, letterbox, NMS, decoder."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from posecli import PoseEstimator
from posecli.model.decode import decode_poses, nms
from posecli.model.preprocess import Transform, to_model_input

from conftest import BUS, COCO_IMAGES, ZIDANE, coco_files, jsonl_records, run_cli
from reference import ReferencePose, iou, match

# People checked by eye on the sample photos, as [x1, y1, x2, y2] in image pixels.
BUS_PEOPLE = [[50, 398, 245, 905], [215, 405, 345, 860], [668, 390, 810, 880]]
ZIDANE_PEOPLE = [[125, 195, 715, 720], [745, 40, 1160, 715]]


@pytest.mark.parametrize(("path", "people"), [(BUS, BUS_PEOPLE), (ZIDANE, ZIDANE_PEOPLE)])
def test_finds_the_people_with_keypoints_on_them(estimator, path, people):
    poses = estimator.predict(cv2.imread(str(path)))
    for person in people:
        best = max(poses, key=lambda p: iou(person, p.box))
        assert iou(person, best.box) > 0.7, f"no detection for the person at {person}"
        confident = best.keypoints[best.keypoints[:, 2] > 0.5, :2]
        assert len(confident) >= 5
        x1, y1, x2, y2 = person
        inside = (confident[:, 0] >= x1 - 10) & (confident[:, 0] <= x2 + 10)
        inside &= (confident[:, 1] >= y1 - 10) & (confident[:, 1] <= y2 + 10)
        assert inside.all(), "confident keypoints must lie on the person"


def test_pose_fields_are_plain_arrays_in_image_pixels(estimator):
    image = cv2.imread(str(ZIDANE))
    poses = estimator.predict(image)
    assert poses and all(0 < p.score <= 1 for p in poses)
    for p in poses:
        assert p.box.shape == (4,) and p.keypoints.shape == (17, 3)
        assert (p.box[[0, 2]] <= 1280).all() and (p.box[[1, 3]] <= 720).all()
        assert p.box[0] <= p.box[2] and p.box[1] <= p.box[3]
    assert [p.score for p in poses] == sorted((p.score for p in poses), reverse=True)


def test_grayscale_and_bgra_arrays_are_accepted(estimator):
    image = cv2.imread(str(BUS))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert len(estimator.predict(gray)) >= 2
    assert len(estimator.predict(bgra)) == len(estimator.predict(image))


def test_predict_from_several_threads_gives_each_its_own_poses():
    """Two threads predicting at once on one estimator (one interpreter) each get the poses of
    their own image, as one thread alone would."""
    estimator = PoseEstimator(threads=1)
    images = [cv2.imread(str(BUS)), cv2.imread(str(ZIDANE))]
    expected = [[p.score for p in estimator.predict(image)] for image in images]

    def scores(k: int) -> list[list[float]]:
        return [[p.score for p in estimator.predict(images[k])] for _ in range(60)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(scores, [0, 1]))
    for k in (0, 1):
        assert all(found == expected[k] for found in results[k])


def test_non_image_arrays_are_refused_with_a_clear_error(estimator):
    for bad in (np.zeros((0, 10, 3), np.uint8), np.zeros((8, 8, 2), np.uint8),
                np.zeros((8, 8, 5), np.uint8), np.zeros((1, 8, 8, 3), np.uint8)):  # fmt: skip
        with pytest.raises(ValueError, match="image"):
            estimator.predict(bad)


def test_what_is_not_an_array_or_a_list_of_paths_is_refused(estimator):
    with pytest.raises(TypeError, match="numpy array, got NoneType"):
        estimator.predict(cv2.imread("no-such-file.jpg"))
    with pytest.raises(TypeError, match="not one path"):
        estimator.predict_files(str(BUS))


@pytest.mark.parametrize(
    "option",
    [{"conf": 2}, {"conf": float("nan")}, {"conf": "0.5"}, {"iou": -1}, {"iou": float("nan")},
     {"max_det": 0}, {"max_det": 2.5}, {"max_pixels": 0}, {"threads": -3}],
)  # fmt: skip
def test_estimator_options_out_of_range_are_refused_as_the_cli_refuses_them(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"^{name} must be"):
        PoseEstimator(**option)


def test_input_size_is_read_from_the_model():
    assert PoseEstimator(model="yolov8n-pose-192").input_size == (192, 192)
    assert PoseEstimator(model="yolov8n-pose-320").input_size == (320, 320)


def _agreement(reference: ReferencePose, records: list[dict], files: list) -> tuple[float, float]:
    """Share of reference people matched at IoU > 0.9, and the worst keypoint gap among them."""
    pairs = [
        p for f, rec in zip(files, records, strict=True) for p in match(reference(f), rec["poses"])
    ]
    matched = [(r, f) for r, f, overlap in pairs if overlap > 0.9]
    worst = max(
        np.abs(np.array(r["keypoints"])[:, :2] - np.array(f["keypoints"])[:, :2]).max()
        for r, f in matched
    )
    return len(matched) / len(pairs), worst


def large_photos(folder) -> list:
    """bus.jpg and zidane.jpg enlarged to 3000x4000 and 4400x2475 (15.6x and 17.2x a 256 input)."""
    paths = []
    for source, size in [(BUS, (3000, 4000)), (ZIDANE, (4400, 2475))]:
        path = folder / f"large_{source.name}"
        big = cv2.resize(cv2.imread(str(source)), size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


@pytest.mark.parametrize("reduced", [False, True], ids=["full-decode", "reduced-decode"])
def test_cli_agrees_with_an_independent_implementation(reduced, tmp_path):
    """By default a JPEG is decoded at 1/2, 1/4 or 1/8 scale if that leaves it twice its resize.

    At 256 that is 1/2 for the samples, 1/4 and 1/8 for the enlarged ones, and full size for the
    640-pixel COCO photos; --full-decode decodes every one in full.
    """
    files = [BUS, ZIDANE, *coco_files(50), *large_photos(tmp_path)]
    args = ["infer", *files, "--format", "jsonl"] + ([] if reduced else ["--full-decode"])
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    records = jsonl_records(proc.stdout)
    assert [r["image"] for r in records] == [str(f) for f in files]
    reference = ReferencePose(
        BUS.parents[1] / "models/yolov8n_256_quant_pc_uf_pose_coco-st.tflite", reduced=reduced
    )
    reductions = [reference.reduction(r["width"], r["height"]) for r in records]
    assert reductions == [2, 2] + [1] * 50 + [4, 8]
    share, worst = _agreement(reference, records, files)
    assert share >= 0.95
    assert worst <= 2.0
    assert sum(len(r["poses"]) for r in records) == sum(len(reference(f)) for f in files)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(8, 3000),
    height=st.integers(8, 3000),
    size=st.sampled_from([(192, 192), (256, 256), (320, 320), (320, 192), (256, 320)]),
    mode=st.sampled_from(["letterbox", "stretch"]),
    fx=st.floats(0.2, 0.8),
    fy=st.floats(0.2, 0.8),
)
def test_letterbox_inverse_finds_a_marker_within_a_pixel(width, height, size, mode, fx, fy):
    """A bright square drawn in the image is found again, mapped back, within one model pixel."""
    assume(max(width, height) <= 8 * min(width, height))
    image = np.zeros((height, width, 3), np.uint8)
    half_w, half_h = max(width / 12, 1.5), max(height / 12, 1.5)
    cx, cy = fx * width, fy * height
    x1, x2 = round(cx - half_w), round(cx + half_w)
    y1, y2 = round(cy - half_h), round(cy + half_h)
    image[y1:y2, x1:x2] = 255
    rgb, transform = to_model_input(image, size, mode)
    assert rgb.shape == (size[1], size[0], 3) and rgb.dtype == np.uint8
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]] + 0.5
    content = (xs > transform.pad_x) & (xs < transform.pad_x + width * transform.scale_x)
    content &= (ys > transform.pad_y) & (ys < transform.pad_y + height * transform.scale_y)
    weights = rgb[..., 0].astype(np.float64) * content
    found = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
    back = transform.inverse_points(found)
    true_center = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    tolerance = np.array([1 / transform.scale_x, 1 / transform.scale_y])
    assert (np.abs(back - true_center) <= tolerance).all()


def test_letterbox_pads_with_114_and_centres():
    rgb, t = to_model_input(np.zeros((100, 200, 3), np.uint8), (256, 256))
    assert (t.pad_x, t.pad_y) == (0, 64)
    assert (rgb[:64] == 114).all() and (rgb[192:] == 114).all() and (rgb[64:192] == 0).all()


def brute_force_nms(boxes, scores, threshold, max_det):
    """Keep each box, best score first, unless it overlaps a kept one by more than threshold."""
    kept = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if len(kept) < max_det and all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    threshold=st.floats(0.05, 0.95),
    max_det=st.integers(1, 100),
)
def test_nms_matches_brute_force(n, seed, threshold, max_det):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 80, (n, 2))], axis=1)
    scores = rng.uniform(0, 1, n)
    assert nms(boxes, scores, threshold, max_det).tolist() == brute_force_nms(
        boxes.tolist(), scores.tolist(), threshold, max_det
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    output=arrays(
        np.float32, (56, 756), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)
    ),
    width=st.integers(1, 5000),
    height=st.integers(1, 5000),
    conf=st.floats(0, 1),
    max_det=st.integers(1, 300),
)
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_decoder_gives_valid_poses_for_any_output(output, width, height, conf, max_det):
    """Any (56, F) output, NaN and inf included, decodes to valid poses or none."""
    scale = 192 / max(width, height)
    transform = Transform(scale, scale, (192 - width * scale) / 2, (192 - height * scale) / 2)
    poses = decode_poses(output, (192, 192), transform, (width, height), conf, 0.7, max_det)
    assert len(poses) <= max_det
    for p in poses:
        assert 0 <= p.score <= 1 and np.isfinite(p.score)
        for arr in (p.box, p.keypoints):
            assert np.isfinite(arr).all()
        assert (p.box[[0, 2]] >= 0).all() and (p.box[[0, 2]] <= width).all()
        assert (p.box[[1, 3]] >= 0).all() and (p.box[[1, 3]] <= height).all()
        assert (p.keypoints[:, 0] <= width).all() and (p.keypoints[:, 1] <= height).all()
        assert (p.keypoints >= 0).all() and (p.keypoints[:, 2] <= 1).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_decoder_maps_infinite_keypoints_to_the_image_edge_without_a_warning(value):
    """A keypoint at +-inf or NaN lands on the image's edge (or 0), and numpy does not warn."""
    output = np.full((56, 756), 0.5, np.float32)
    output[5:, 0] = value
    poses = decode_poses(output, (192, 192), Transform(1.0, 1.0, 0.0, 0.0), (192, 192), 0.4)
    edge = {np.inf: 192.0, -np.inf: 0.0}.get(value, 0.0)
    assert poses and (poses[0].keypoints[:, :2] == edge).all()


def test_decoder_on_random_model_scale_outputs_keeps_score_order():
    rng = np.random.default_rng(0)
    output = rng.uniform(0, 1, (56, 1344)).astype(np.float32)
    poses = decode_poses(output, (256, 256), Transform(0.5, 0.5, 0, 0), (512, 512), 0.9, 0.5, 100)
    assert poses and [p.score for p in poses] == sorted((p.score for p in poses), reverse=True)
    assert all(p.score > 0.9 for p in poses)


def test_coco_folder_processes_every_image_in_order():
    proc = run_cli("infer", COCO_IMAGES, "--format", "jsonl", "--quiet")
    assert proc.returncode == 0 and proc.stderr == b""
    records = jsonl_records(proc.stdout)
    assert [r["image"] for r in records] == [str(p) for p in coco_files()]


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
@pytest.mark.parametrize("size", [(1, 1), (100, 80), (4000, 3000), (300, 5000)])
def test_any_jpeg_size_decodes_in_both_resize_modes(tmp_path, mode, size):
    """Small images (no reduction possible) and large ones (reduced) both give results."""
    path = tmp_path / "image.jpg"
    image = cv2.resize(cv2.imread(str(BUS)), size)
    cv2.imwrite(str(path), image)
    result = PoseEstimator(resize=mode).predict_file(path)
    assert result.ok, result.error
    assert (result.width, result.height) == size
