"""--tile: overlapping tiles of each frame run as images and merged, for small people.

The PETS street video's people are mostly 30-90 px tall in a 480 x 360 frame, which the 256
model sees at 256 x 192: alone it finds few of them; with tiles it finds most, once each.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posecli import PoseEstimator
from posecli.core.geometry import box_iou_matrix
from posecli.core.results import People
from posecli.media import video
from posecli.media.images import LoadedImage
from posecli.model import tiles
from posecli.model.decode import decode_people, nms
from posecli.pipeline.items import load

from conftest import BUS, DEFAULT_MODEL, SHARED, ZIDANE, jsonl_records, run_cli
from derived_models import gather_rows, keypoint_rows
from test_keypoints import CONSTANT_PERSON, wide_model  # noqa: F401 (a fixture)
from test_track_cli import cut_clip

PETS = SHARED / "videos" / "pets-vtest.avi"
FRAMES = range(0, 795, 40)  # 20 frames spread over the video


@pytest.fixture(scope="module")
def pets_frames() -> list[np.ndarray]:
    """Every 40th frame of the PETS video (BGR, 480 x 360)."""
    source = video.open_source(str(PETS))
    try:
        return [f.pixels for f in source.frames() if f.index in FRAMES]
    finally:
        source.close()


@pytest.fixture(scope="module")
def found(pets_frames):
    """Each frame's poses without tiles and with --tile 128."""
    plain, tiled = PoseEstimator(), PoseEstimator(tile=128)
    return [(plain.predict(f), tiled.predict(f)) for f in pets_frames]


def video_frame(bgr: np.ndarray) -> LoadedImage:
    return LoadedImage.whole(bgr)


def boxes(poses) -> np.ndarray:
    return np.array([p.box for p in poses], np.float64).reshape(-1, 4)


def test_tiles_find_several_times_the_people_of_the_whole_frame(found):
    plain = sum(len(a) for a, _ in found)
    tiled = sum(len(b) for _, b in found)
    assert tiled >= 4 * plain and tiled >= 5 * len(found)


def test_each_person_is_found_once(pets_frames, found):
    # A plain NMS over every run keeps a person's copies from neighbouring tiles and the part
    # a border cut; the merge keeps one. (Boxes of one run may still nest: its NMS kept both.)
    estimator = PoseEstimator(tile=128)
    for frame, (_, poses) in zip(pets_frames, found, strict=True):
        inputs = estimator.predictor.model_inputs(video_frame(frame))
        runs = [decode_people(estimator.predictor.run(rgb), (256, 256), t) for rgb, t in inputs]
        union = People.concat(runs)
        kept = nms(union.boxes, union.scores, 0.7, 100)
        assert len(poses) < len(kept)
    pairs = sum(int(np.triu(tiles.overlap_of_smaller(boxes(p)) > 0.5, 1).sum()) for _, p in found)
    people = sum(len(p) for _, p in found)
    assert pairs <= 0.05 * people


def test_the_people_of_the_whole_frame_are_kept(found):
    for plain, tiled in found:
        if plain:
            assert (box_iou_matrix(boxes(plain), boxes(tiled)).max(axis=1) >= 0.5).all()


def test_poses_are_inside_the_frame_best_first_with_17_keypoints(found):
    for _, poses in found:
        scores = [p.score for p in poses]
        assert scores == sorted(scores, reverse=True)
        for p in poses:
            assert p.keypoints.shape == (17, 3)
            assert (p.box >= 0).all() and p.box[2] <= 480 and p.box[3] <= 360
            assert p.box[0] < p.box[2] and p.box[1] < p.box[3]


def test_without_tile_the_estimator_is_unchanged_and_max_det_bounds_the_merge(pets_frames):
    frame = pets_frames[10]
    assert len(PoseEstimator(tile=128, max_det=3).predict(frame)) == 3
    same = PoseEstimator(tile=None).predict(frame)
    plain = PoseEstimator().predict(frame)
    assert [p.to_dict() for p in same] == [p.to_dict() for p in plain]


def test_tiles_cover_the_frame_with_the_overlap_asked():
    for width, height, side, overlap in ((480, 360, 128, 0.25), (1920, 1080, 360, 0.5),
                                         (500, 100, 128, 0.1)):  # fmt: skip
        regions = tiles.tile_regions(width, height, side, overlap)
        covered = np.zeros((height, width), bool)
        for x1, y1, x2, y2 in regions:
            covered[y1:y2, x1:x2] = True
            assert x2 - x1 == min(side, width) and y2 - y1 == min(side, height)
        assert covered.all()
        xs = sorted({int(r[0]) for r in regions})
        assert all(b - a <= side * (1 - overlap) + 1 for a, b in itertools.pairwise(xs))
    assert len(tiles.tile_regions(200, 100, 256, 0.25)) == 0


def test_auto_picks_a_third_of_the_shorter_side_and_never_under_half_the_input():
    assert tiles.tile_side("auto", 1920, 1080, (256, 256)) == 360
    assert tiles.tile_side("auto", 480, 360, (256, 256)) == 128
    assert tiles.tile_side("auto", 300, 200, (320, 192)) == 96


def test_a_tile_person_is_mapped_to_frame_pixels(wide_model, tmp_path):  # noqa: F811
    # The constant 192 x 320 model finds one person in the middle of any input. 640 x 480 cut in
    # 320 px tiles without overlap: 4 tiles, each letterboxed at 0.6 (content 192 x 192, pad x 64).
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(BUS)), (640, 480)))
    result = PoseEstimator(wide_model, tile=320, tile_overlap=0).predict_file(path)
    box_model = np.array(CONSTANT_PERSON[:2] * 2) * [320, 192, 320, 192]
    box_model += np.array(CONSTANT_PERSON[2:4] * 2) * [320, 192, 320, 192] / 2 * [-1, -1, 1, 1]
    in_tile = (box_model - [64, 0, 64, 0]) / 0.6  # (93.3, 80)-(226.7, 240)
    expected = [[220, 120, 420, 360]]  # the whole frame's, letterboxed at 0.4
    expected += [in_tile + np.array([x, y, x, y]) for y in (0, 160) for x in (0, 320)]
    got = sorted(p.box.tolist() for p in result.poses)
    assert np.allclose(got, sorted(np.array(expected).tolist()), atol=1e-3)
    kpt = result.poses[0].keypoints
    assert kpt.shape == (3, 3) and (kpt[:, 2] > 0.6).all()


def test_merge_prefers_the_whole_view_drops_large_cut_parts_and_breaks_ties_by_run_order():
    def one(box, score, mark):
        return People(np.array([box], float), np.array([score]), np.full((1, 2, 3), mark, float))

    runs = [
        one([10, 10, 30, 60], 0.5, 1),  # the whole frame's person
        one([10, 30, 30, 60], 0.9, 2),  # their lower part, cut by the tile's bottom edge
        one([200, 10, 220, 60], 0.5, 3),  # found whole in two tiles, equal scores
        one([200, 10, 220, 60], 0.5, 4),
        one([300, 50, 320, 100], 0.9, 5),  # cut, half a tile tall, seen nowhere else
        one([100, 100, 190, 200], 0.95, 6),  # cut, larger than half a tile: a part
    ]
    regions = np.array([[0, 0, 400, 200], [0, 0, 100, 60], [150, 0, 250, 100],
                        [180, 0, 280, 100], [250, 0, 350, 100], [100, 100, 200, 200]])  # fmt: skip
    merged = tiles.merge(runs, regions, 400, 200, max_det=10)
    assert merged.boxes.tolist() == [[300, 50, 320, 100], [10, 10, 30, 60], [200, 10, 220, 60]]
    assert merged.keypoints[:, 0, 0].tolist() == [5, 1, 3]
    assert len(tiles.merge(runs, regions, 400, 200, max_det=2)) == 2


def test_a_person_cut_by_an_inner_edge_only():
    region = np.array([100, 0, 228, 128])
    b = np.array([[101.0, 20, 120, 60], [150, 30, 170, 80], [150, 100, 170, 127.5],
                  [140, 1, 160, 40]])  # fmt: skip
    # x1 at the inner left edge; inside; at the bottom edge; near the top, which is the frame's
    # edge and cuts nobody.
    assert tiles.cut_by_inner_edge(b, region, 480, 360).tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    "kwargs", [{"tile": 16}, {"tile": "big"}, {"tile": True}, {"tile": 128, "tile_overlap": 0.9}]
)
def test_the_estimator_refuses_bad_tiles(kwargs):
    with pytest.raises(ValueError, match="tile"):
        PoseEstimator(**kwargs)


def test_flip_tta_and_a_k_keypoint_model_work_with_tiles(pets_frames, tmp_path):
    frame = pets_frames[5]
    flipped = PoseEstimator(tile=128, tta="flip").predict(frame)
    assert len(flipped) >= 3
    k12 = gather_rows(DEFAULT_MODEL, tmp_path / "k12.tflite", keypoint_rows(list(range(12))))
    full = PoseEstimator(tile=128).predict(frame)
    part = PoseEstimator(k12, tile=128).predict(frame)
    assert [p.box.tolist() for p in part] == [p.box.tolist() for p in full]
    for a, b in zip(full, part, strict=True):
        assert np.array_equal(a.keypoints[:12], b.keypoints)


def test_a_large_photo_is_decoded_no_smaller_than_its_tiles_need(tmp_path):
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(ZIDANE)), (3840, 2160)))
    assert load(PoseEstimator().predictor, str(path)).reduction == 4
    assert load(PoseEstimator(tile=128).predictor, str(path)).reduction == 1
    assert (
        load(PoseEstimator(tile=1024).predictor, str(path)).reduction == 2
    )  # 512 px tiles, still 2x 256


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """20 frames of PETS where people cross."""
    path = tmp_path_factory.mktemp("tiles") / "clip.mp4"
    cut_clip(PETS, path, 520, 20)
    return path


def test_cli_tile_on_a_clip_infer_and_track(clip):
    plain = jsonl_records(run_cli("infer", clip, "-q").stdout)
    proc = run_cli("infer", clip, "--tile", "128", "-q")
    assert proc.returncode == 0, proc.stderr
    tiled = jsonl_records(proc.stdout)
    assert len(tiled) == len(plain) == 20
    assert sum(len(r["poses"]) for r in tiled) >= 3 * sum(len(r["poses"]) for r in plain)
    track = run_cli("track", clip, "--tile", "auto", "-f", "mot", "-q")
    assert track.returncode == 0, track.stderr
    ids = {int(line.split(",")[1]) for line in track.stdout.decode().splitlines()}
    assert len(ids) >= 5


def test_cli_refuses_a_bad_tile_in_one_line(tmp_path):
    proc = run_cli("infer", BUS, "--tile", "8")
    assert proc.returncode == 2 and b"--tile" in proc.stderr and b"Traceback" not in proc.stderr


def test_bench_and_models_info_report_tiles(clip):
    proc = run_cli("bench", "--video", clip, "--tile", "128", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["runs_per_frame"] == 21 and report["frames"] == 20
    info = run_cli("models", "info", "yolov8n-pose-256", "--tile", "128").stdout.decode()
    assert "480x360: 20," in info
