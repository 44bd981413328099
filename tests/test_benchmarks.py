"""The tracking benchmark's package without running a model: ground truth of synthetic frames,
scoring, the bound, caches of the former script, and a report whose numbers all come from the
values it is given."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from benchmarks.tracking import cache, report, synthesis
from benchmarks.tracking.clips import LARGER, MODEL, CameraMotions, Clip
from benchmarks.tracking.measure import Measurements, SetSize
from benchmarks.tracking.scoring import (
    HEIGHT_BINS,
    Bound,
    Row,
    best_possible,
    mot_counts,
    scored_poses,
)
from benchmarks.tracking.synthesis import HEIGHT, WIDTH, Person, Sequence, Truth
from posecli.core.results import Pose
from posecli.evaluation.mot import MotCounts
from posecli.tracking.tracker import TrackerSettings

STILL = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # photo pixels are frame pixels


def block_person(x0: int, y0: int, w: int, h: int) -> Person:
    """A person whose mask is a full w x h block at (x0, y0), keypoints at its corners."""
    keypoints = np.zeros((17, 3))
    keypoints[:4] = [[x0, y0, 2], [x0 + w - 1, y0, 2], [x0, y0 + h - 1, 2], [x0 + 5, y0 + 5, 2]]
    return Person(np.ones((h, w), bool), x0, y0, keypoints, crowd=False)


def pose(box, track_id: int | None = None, score: float = 0.9) -> Pose:
    return Pose(score, np.array(box, np.float64), np.zeros((17, 3)), track_id)


def truth_of(ids, boxes, ignore=()) -> Truth:
    n = len(ids)
    return Truth(np.array(ids, np.int64), np.array(boxes, np.float64).reshape(-1, 4),
                 np.zeros((n, 17, 3)), np.ones(n), np.array(ignore, np.float64).reshape(-1, 4),
                 np.arange(len(ignore), dtype=np.int64) + 100, np.zeros((0, 4)))  # fmt: skip


def test_frame_truth_scores_visible_people_and_ignores_hidden_and_small_ones():
    people = [block_person(10, 10, 40, 100), block_person(200, 10, 40, 100),
              block_person(400, 10, 10, 20)]  # fmt: skip
    truth = synthesis.frame_truth(people, STILL, (190.0, 230.0))  # the occluder hides 75 %
    assert truth.ids.tolist() == [1]
    np.testing.assert_array_equal(truth.boxes, [[10, 10, 50, 110]])
    assert truth.areas.tolist() == [4000]
    assert truth.ignore_ids.tolist() == [2, 3]  # mostly hidden; under MIN_HEIGHT
    assert truth.keypoints[0, :4, 2].tolist() == [1, 1, 1, 1]


def test_keypoints_behind_the_occluder_or_outside_the_frame_are_unlabelled():
    person = block_person(10, 10, 40, 100)
    shifted = STILL + np.array([[0, 0, -20], [0, 0, 0]])  # 20 px of the person out of the frame
    k = synthesis.frame_keypoints(person, shifted, (25.0, 26.0))
    assert k[:4, 2].tolist() == [0, 1, 0, 0]  # left edge out; (15, 15) - 20 out too
    assert not k[0].any()


def test_the_occluder_is_pasted_only_where_it_is_inside_the_frame():
    strip = np.full((HEIGHT, 50, 3), 7, np.uint8)
    for left, columns in ((-20, range(30)), (WIDTH - 10, range(WIDTH - 10, WIDTH))):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        synthesis.paste_occluder(frame, strip, left)
        assert np.flatnonzero(frame[0, :, 0]).tolist() == list(columns)


def test_camera_path_eases_between_two_views_of_the_frame_shape():
    rng = np.random.default_rng(1)
    mats = synthesis.camera_path(rng, 1000, 800, 30, np.array([[500.0, 400.0]]))
    assert mats.shape == (30, 2, 3)
    scale = mats[:, 0, 0]
    assert np.allclose(scale, mats[:, 1, 1])
    assert abs(scale[1] - scale[0]) < abs(scale[15] - scale[14])  # eases in
    assert scale.min() >= WIDTH / 1000  # never wider than the photo


def test_poses_on_ignore_regions_count_neither_way():
    truth = truth_of([1], [[0, 0, 100, 200]], ignore=[[300, 0, 400, 200]])
    poses = [pose([0, 0, 100, 200]), pose([300, 0, 400, 200]), pose([310, 10, 390, 100]),
             pose([500, 0, 600, 200])]  # fmt: skip
    kept = scored_poses(poses, truth)
    assert [p.box[0] for p in kept] == [0, 500]


def test_a_perfect_tracker_scores_mota_and_idf1_one_and_an_id_change_is_a_switch():
    truth = [truth_of([1, 2], [[0, 0, 100, 200], [200, 0, 300, 200]]) for _ in range(4)]
    perfect = [[pose([0, 0, 100, 200], 1), pose([200, 0, 300, 200], 2)] for _ in range(4)]
    c = mot_counts(perfect, truth)
    assert (c.mota, c.idf1, c.switches) == (1.0, 1.0, 0)
    changed = perfect[:2] + [[pose([0, 0, 100, 200], 3), pose([200, 0, 300, 200], 2)]] * 2
    assert mot_counts(changed, truth).switches == 1


def clip_of(truth: list[Truth], detections: list[list[Pose]]) -> Clip:
    frames = [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * len(truth)
    people = len({int(i) for t in truth for i in t.ids})
    sequence = Sequence("clip.jpg", frames, truth, np.tile(STILL, (len(truth), 1, 1)), people)
    return Clip(sequence, detections, CameraMotions(frames))


def test_a_gap_in_the_detections_longer_than_the_buffer_forces_a_switch():
    settings = TrackerSettings(buffer=5)
    box = [0, 0, 100, 200]
    truth = [truth_of([1], [box]) for _ in range(20)]
    seen = [[pose(box)] if f < 5 or f >= 12 else [] for f in range(20)]
    bound = best_possible(clip_of(truth, seen), settings)
    assert (bound.objects, bound.longest, bound.forced, bound.people) == (20, 8, 1, 1)
    short_gap = [[pose(box)] if f < 5 or f >= 9 else [] for f in range(20)]
    assert best_possible(clip_of(truth, short_gap), settings).forced == 0


def test_caches_of_the_former_script_load_into_this_package(tmp_path):
    sequence = Sequence("a.jpg", [np.zeros((2, 2, 3), np.uint8)], [truth_of([1], [[0, 0, 1, 1]])],
                        np.tile(STILL, (1, 1, 1)), 1)  # fmt: skip
    item = (sequence, [[pose([0, 0, 1, 1])]])
    text = pickle.dumps(item, protocol=0)  # names its classes' modules as plain text
    old = text.replace(b"benchmarks.tracking.synthesis", b"track_benchmark")
    old = old.replace(b"posecli.core.results", b"posecli.pose")
    assert old != text
    path = tmp_path / "885.pkl"
    path.write_bytes(old)
    loaded, detections = cache.read(path)
    assert isinstance(loaded, Sequence) and isinstance(loaded.truth[0], Truth)
    assert isinstance(detections[0][0], Pose)
    np.testing.assert_array_equal(loaded.truth[0].boxes, [[0, 0, 1, 1]])


def test_cached_computes_once_and_reads_back(tmp_path):
    calls = []
    compute = lambda: calls.append(1) or {"x": 1}  # noqa: E731
    assert cache.cached(tmp_path / "deep" / "v.pkl", compute) == {"x": 1}
    assert cache.cached(tmp_path / "deep" / "v.pkl", compute) == {"x": 1}
    assert cache.cached(None, compute) == {"x": 1}
    assert len(calls) == 2


def counts(mota_errors: int, switches: int, idf1_tp: int) -> MotCounts:
    """Counts of 1000 objects and as many predictions."""
    return MotCounts(frames=100, objects=1000, predictions=1000, matches=900,
                     misses=mota_errors, false_positives=0, switches=switches,
                     id_true_positives=idf1_tp, switch_gaps=[0] * switches)  # fmt: skip


def measurements(reference: bool) -> Measurements:
    """Measurements with distinct made-up values."""
    names = ["ours", "box", "no keypoints", "long", "no camera", "larger"]
    names += ["ultralytics"] if reference else []

    def rows(offset: int) -> dict[str, Row]:
        return {n: Row(n, counts(100 + i + offset, 3 + i, 600 + i), counts(50, 2, 800), 40, 100,
                       None if n == "ultralytics" else 0.03)
                for i, n in enumerate(names)}  # fmt: skip

    bins = len(HEIGHT_BINS)
    by_height = (np.arange(bins) + 10, np.linspace(0.1, 0.9, bins))
    return Measurements(
        sizes={"tuning": SetSize(20, 1861, 95), "held-out": SetSize(20, 1804, 88)},
        rows={"tuning": rows(0), "held-out": rows(50)},
        dev_rows={True: rows(7)["ours"], False: rows(9)["no camera"]}, dev_videos=50,
        bounds={"tuning": Bound(4526, 2454, 4, 95), "held-out": Bound(3710, 2558, 7, 88)},
        larger_bound=Bound(3710, 2900, 5, 88), by_height={MODEL: by_height, LARGER: by_height},
        model_ms={MODEL: 4.0, LARGER: 6.1}, seen_at={MODEL: (256, 144), LARGER: (320, 180)},
        tracking_ms={False: 0.23, True: 0.33}, camera_ms=2.08,
        camera_errors=np.linspace(0, 4, 101), add_us=0.24, lag={False: -0.17, True: 0.25},
        ap={False: 51.1, True: 52.6}, raw_ap=54.3, jitter=(4.03, 1.30), still_videos=6,
        reference="ultralytics 8.4.190" if reference else None, libraries="numpy 2.4.6",
    )  # fmt: skip


@pytest.mark.parametrize("reference", [False, True])
def test_the_report_fills_every_value_of_its_templates(reference):
    text = report.render(measurements(reference), 40, 6, 50)
    assert "{" not in text and "}" not in text
    assert "python -m benchmarks.tracking --sequences 40 --still 6 --dev 50" in text
    assert ("--reference DIR`" in text) == reference
    assert ("Ultralytics row:" in text) == reference
    assert ("ultralytics 8.4.190" in text) == reference
    row = "| still camera: keypoint movement frame to frame (px) | 4.03 | 1.30 (68 % less) |"
    assert row in text


NAMES_WITH_DIGITS = ("IDF1", "AP50", "H.264", "libx264", "per 10 people")


@pytest.mark.parametrize("name", ["template.md", "ultralytics.md"])
def test_every_number_of_the_report_is_a_value_given_to_the_template(name):
    """Numbers in the prose would be past results the run does not reproduce."""
    text = (report.HERE / name).read_text()
    prose = re.sub(r"\{[^}]*\}", "", text)
    for word in NAMES_WITH_DIGITS:
        prose = prose.replace(word, "")
    assert not re.findall(r".{0,30}\d.{0,30}", prose)
