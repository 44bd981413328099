"""PoseTracker on synthetic people (crossing, occlusion, leaving, empty frames) and on real
detections of a virtual-camera pan over a COCO photo; MOT rows and CLEAR-MOT/ID scores."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from posecli.core.results import Pose
from posecli.evaluation.mot import MotAccumulator, iou_distances
from posecli.output.mot import mot_rows
from posecli.tracking.tracker import PoseTracker, TrackerSettings

from conftest import COCO_IMAGES

RNG = np.random.default_rng(0)
SHAPES = RNG.uniform(0, 1, (8, 17, 2))  # each synthetic person's keypoints, relative to the box


def person(shape: int, cx: float, cy: float = 300.0, h: float = 200.0, score: float = 0.9):
    """A synthetic pose: box of height h (width h / 2) centred at (cx, cy), keypoints by shape."""
    w = h / 2
    box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)
    kpts = np.empty((SHAPES.shape[1], 3), np.float32)
    kpts[:, :2] = box[:2] + SHAPES[shape] * [w, h]
    kpts[:, 2] = 0.9
    return Pose(score, box, kpts)


def run(tracker: PoseTracker, frames: list[list[Pose]], fps: float = 30.0) -> list[list[Pose]]:
    """Each frame through the tracker at fps."""
    return [tracker.update(poses, i / fps) for i, poses in enumerate(frames)]


def ids_of(frame: list[Pose]) -> list[int | None]:
    return [p.track_id for p in frame]


def id_near(frame: list[Pose], cx: float) -> int | None:
    """The track ID of the pose whose box centre is nearest cx."""
    return min(frame, key=lambda p: abs((p.box[0] + p.box[2]) / 2 - cx)).track_id


@pytest.mark.parametrize("box_only", [False, True])
def test_two_people_crossing_keep_their_ids(box_only):
    frames = []
    for f in range(60):
        a, b = 100 + 8.0 * f, 580 - 8.0 * f  # they meet at frame 30
        poses = [person(0, a, h=200), person(1, b, h=190)]
        if 27 <= f <= 33:  # b walks behind a and is hidden
            poses = poses[:1]
        frames.append(poses)
    tracker = PoseTracker(TrackerSettings(use_keypoints=not box_only))
    out = run(tracker, frames)
    assert ids_of(out[0]) == [1, 2]
    for f in (20, 40, 59):
        a, b = 100 + 8.0 * f, 580 - 8.0 * f
        assert id_near(out[f], a) == 1 and id_near(out[f], b) == 2


def test_keypoints_decide_when_boxes_mislead():
    """Two people side by side (one walked up to the other) whose detected boxes swap for a
    frame: box IoU alone swaps their IDs, the keypoints keep them."""
    a, b = person(2, 300), person(3, 310)
    walk = [[a, person(3, 310 + 20.0 * (10 - f))] for f in range(10)]
    swapped = [Pose(0.9, b.box, a.keypoints), Pose(0.9, a.box, b.keypoints)]
    for use_keypoints, expected in ((True, [1, 2]), (False, [2, 1])):
        tracker = PoseTracker(TrackerSettings(use_keypoints=use_keypoints))
        out = run(tracker, walk + [[a, b]] * 10 + [swapped])
        assert ids_of(out[-1]) == expected


@pytest.mark.parametrize("hidden, same_id", [(20, True), (40, False)])
def test_occlusion_shorter_than_the_buffer_keeps_the_id(hidden, same_id):
    """A still person hidden for `hidden` frames at 30 fps (buffer 30 frames)."""
    frames = [[person(0, 300), person(1, 600)] for _ in range(70)]
    for f in range(10, 10 + hidden):
        frames[f] = frames[f][1:]
    out = run(PoseTracker(), frames)
    back = out[10 + hidden + 1]  # a new track is output from its second frame
    assert (id_near(back, 300) == 1) is same_id
    assert id_near(back, 600) == 2
    if not same_id:
        assert id_near(back, 300) == 3
        assert ids_of(out[10 + hidden]) == [2]  # the new track's first frame is not output


def test_buffer_is_in_time_so_it_scales_with_the_frame_rate():
    """At 60 fps the same 30-frame buffer keeps a lost track for 60 frames (one second)."""
    frames = [[person(0, 300)] for _ in range(100)]
    for f in range(10, 60):  # 50 frames: under a second at 60 fps
        frames[f] = []
    out = run(PoseTracker(fps=60.0), frames, fps=60.0)
    assert ids_of(out[61]) == [1]


def test_a_person_leaving_and_coming_back_later_gets_a_new_id():
    frames = []
    for f in range(150):
        x = 400 + 12.0 * f if f < 50 else 1000 - 12.0 * (f - 100)
        visible = x < 900  # the frame is 900 px wide: out from frame 42 to 108
        frames.append([person(4, 200)] + ([person(5, x)] if visible else []))
    out = run(PoseTracker(), frames)
    assert ids_of(out[10]) == [1, 2]
    assert id_near(out[149], 200) == 1
    assert id_near(out[149], 1000 - 12.0 * 49) == 3


def test_empty_frames_and_a_single_frame():
    tracker = PoseTracker()
    assert tracker.update([], 0.0) == []
    assert tracker.update([], 0.1) == []
    one = PoseTracker().update([person(0, 100, score=0.9), person(1, 400, score=0.05),
                                person(2, 700, score=0.5)], 0.0)  # fmt: skip
    assert ids_of(one) == [1, 2]  # the first frame starts tracks at once; 0.05 < low is dropped
    assert [float(p.box[0]) for p in one] == [50.0, 650.0]
    frames = [[person(0, 300)], [], [], [person(0, 300)], []]
    assert [ids_of(f) for f in run(PoseTracker(), frames)] == [[1], [], [], [1], []]


def test_low_scores_only_continue_tracks():
    """A detection between low and high keeps a track going but never starts one."""
    frames = [[person(0, 300, score=0.9)]] + [[person(0, 300, score=0.15)]] * 5
    frames += [[person(1, 700, score=0.15)]] * 5
    out = run(PoseTracker(), frames)
    assert [ids_of(f) for f in out[:6]] == [[1]] * 6
    assert all(f == [] for f in out[6:])


def test_ids_are_never_reused():
    rng = np.random.default_rng(5)
    frames, present = [], np.zeros(6, bool)
    for _ in range(400):
        present ^= rng.random(6) < 0.04  # people come and go
        frames.append([person(i, 120.0 * i + 80, score=rng.uniform(0.3, 1)) for i in
                       np.flatnonzero(present & (rng.random(6) < 0.9))])  # fmt: skip
    out = run(PoseTracker(), frames)
    last_seen: dict[int, int] = {}
    first_seen: dict[int, int] = {}
    for f, poses in enumerate(out):
        ids = ids_of(poses)
        assert len(set(ids)) == len(ids) and None not in ids
        for i in ids:
            assert f - last_seen.get(i, f) <= 31  # a track is gone after a 30-frame buffer
            last_seen[i] = f
            first_seen.setdefault(i, f)
    starts = [first_seen[i] for i in sorted(first_seen)]
    assert starts == sorted(starts)  # IDs count up in the order people appear
    assert sorted(first_seen) == list(range(1, len(first_seen) + 1))
    assert len(first_seen) > 6


def test_any_number_of_keypoints_and_smoothing():
    rng = np.random.default_rng(6)
    base = rng.uniform(0, 100, (5, 2))
    tracker = PoseTracker(smooth=True)
    for f in range(10):
        kpts = np.column_stack((base + 3 * f + rng.normal(0, 1, (5, 2)), np.ones(5)))
        box = np.array([3 * f, 3 * f, 100 + 3 * f, 100 + 3 * f], np.float32)
        out = tracker.update([Pose(0.9, box, kpts.astype(np.float32))], f / 30)
        assert ids_of(out) == [1] and out[0].keypoints.shape == (5, 3)
        assert out[0].keypoints.dtype == np.float32
    with pytest.raises(ValueError, match="keypoints"):
        tracker.update([person(0, 100)], 1.0)


def test_times_that_do_not_increase_count_as_one_frame():
    frames = [[person(0, 100 + 10.0 * f)] for f in range(20)]
    tracker = PoseTracker()
    out = [tracker.update(p, None if f % 3 else 0.0) for f, p in enumerate(frames)]
    assert all(ids_of(f) == [1] for f in out)


@pytest.mark.parametrize(("back", "same_id"), [(1.0, True), (1.5, False), (3.0, False)])
def test_a_jump_in_time_ends_a_track_as_the_frames_between_would(back, same_id):
    """Frames missing (a seek, a stalled stream): a person lost at 0.5 s and found again at
    `back` keeps their ID only if they were missed for at most the buffer (1 s)."""
    tracker = PoseTracker()
    first = tracker.update([person(0, 100)], 0.0)
    tracker.update([], 0.5)
    again = tracker.update([person(0, 100)], back) + tracker.update([person(0, 100)], back + 0.03)
    assert ids_of(first) == [1]
    assert ids_of(again) == ([1, 1] if same_id else [2])


def test_a_person_seen_in_the_frame_before_a_long_gap_keeps_their_id():
    """A stalled stream or a slow device: the next frame comes 1.9 s later, and the person
    tracked in the frame before it is matched as usual (only lost tracks run out)."""
    tracker = PoseTracker()
    out = [tracker.update([person(0, 100)], t) for t in (0.0, 1 / 30, 2 / 30, 0.1, 2.0, 2.033)]
    assert all(ids_of(frame) == [1] for frame in out)


def test_zero_size_boxes_and_odd_inputs_do_not_break_the_tracker():
    """A box clipped to nothing at the image edge (it overlaps nothing, so it continues no track),
    NaN keypoints, NaN and infinite times: no error, and the whole person keeps their ID."""
    flat = person(0, 100)
    flat = Pose(flat.score, flat.box * [1, 1, 0, 1] + [0, 0, flat.box[0], 0], flat.keypoints)
    assert flat.box[2] == flat.box[0]
    holes = person(1, 400)
    unseen = holes.keypoints.copy()
    unseen[:5] = np.nan
    holes = replace(holes, keypoints=unseen)
    tracker = PoseTracker()
    out = [tracker.update([flat, holes], t) for t in (0.0, float("nan"), 2 / 30, float("inf"))]
    assert ids_of(out[0]) == [1, 2] and all(ids_of(frame)[-1] == 2 for frame in out)
    with pytest.raises(ValueError, match="boxes must be finite"):
        tracker.update([Pose(0.9, np.full(4, np.nan, np.float32), flat.keypoints)], 1.0)


@pytest.mark.parametrize(
    "camera",
    [np.full((2, 3), np.nan), [[1, 0, np.inf], [0, 1, 0]], np.zeros((2, 3)),
     [[1e200, 0, 0], [0, 1e200, 0]]],
)  # fmt: skip
def test_a_broken_camera_transform_is_ignored(camera):
    """A NaN, infinite, zero or absurd camera transform (an API caller's bad estimate) moves no
    track: the person keeps their ID, and the tracker keeps working with good ones after."""
    tracker = PoseTracker()
    out = [tracker.update([person(0, 100 + f)], f / 30, camera if f == 2 else None)
           for f in range(4)]  # fmt: skip
    out.append(tracker.update([person(0, 104)], 4 / 30, np.eye(2, 3)))
    assert all(ids_of(frame) == [1] for frame in out)


def test_a_gap_of_ages_and_odd_frame_rates_do_not_break_the_tracker():
    """A clock that jumps by 1e300 s (its next times, 1e300 + 1/30 ..., do not increase and count
    as one frame each): the walking person is tracked again, under one ID, once they are seen
    twice after it; frame rates whose frame time is infinite are refused."""
    tracker = PoseTracker()
    out = [tracker.update([person(0, 100 + 5 * f)], t)
           for f, t in enumerate((0.0, 1 / 30, 1e300, 1e300, 1e300, 1e300))]  # fmt: skip
    assert ids_of(out[0]) == [1] and len({i for f in out[3:] for i in ids_of(f)}) == 1
    assert all(len(frame) == 1 for frame in out[3:])
    with pytest.raises(ValueError, match="fps"):
        PoseTracker(fps=1e-310)


def test_a_box_given_corners_first_is_tracked_as_well():
    """Boxes given as (x2, y2, x1, y1): the same person, the same ID in every frame, and the box
    comes back (and goes to MOTChallenge rows) with its corners in order."""
    tracker = PoseTracker()
    out = []
    for f in range(4):
        p = person(0, 100 + 5 * f)
        out.append(tracker.update([Pose(p.score, p.box[[2, 3, 0, 1]], p.keypoints)], f / 30))
    assert all(ids_of(frame) == [1] for frame in out)
    np.testing.assert_array_equal(out[-1][0].box, person(0, 115).box)
    inverted = Pose(0.9, np.array([100.0, 200, 50, 100]), np.zeros((17, 3)), 3)
    assert mot_rows(0, [inverted]) == ["1,3,50.00,100.00,50.00,100.00,0.90000,-1,-1,-1"]


def test_a_refused_frame_changes_nothing():
    """A frame refused for a bad pose leaves the tracker as it was: sent again without that pose
    (with the camera's motion), the person keeps their ID and place; refused as the first
    frame, the next one still counts as first (its people are confirmed at once)."""
    shift = np.array([[1.0, 0, 300], [0, 1, 0]])
    bad = Pose(0.9, np.array([0, 0, np.nan, 10], np.float32), person(0, 0).keypoints)
    fewer = Pose(0.9, person(1, 700).box, person(1, 700).keypoints[:5])
    for refused, camera in (([person(0, 400), bad], shift), ([fewer], shift),
                            ([person(0, 400)], np.eye(3))):  # fmt: skip
        tracker = PoseTracker()
        tracker.update([person(0, 100)], 0.0)
        with pytest.raises(ValueError):
            tracker.update(refused, 1 / 30, camera)
        assert ids_of(tracker.update([person(0, 400)], 1 / 30, shift)) == [1]
    for poses, camera in (([bad], None), ([person(0, 100)], np.eye(3))):
        tracker = PoseTracker()
        with pytest.raises(ValueError):
            tracker.update(poses, 0.0, camera)
        assert ids_of(tracker.update([person(0, 100)], 1 / 30)) == [1]


def test_mixed_keypoint_counts_in_a_frame_are_refused_clearly():
    odd = Pose(0.9, person(1, 400).box, person(1, 400).keypoints[:5])
    with pytest.raises(ValueError, match="one K for all poses"):
        PoseTracker().update([person(0, 100), odd], 0.0)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        PoseTracker().update([Pose(0.9, person(0, 100).box, np.zeros((17, 2)))], 0.0)
    with pytest.raises(ValueError, match="sigmas"):
        PoseTracker(sigmas=np.full(5, 0.05)).update([person(0, 100)], 0.0)


def test_non_finite_scores_are_refused():
    tracker = PoseTracker()
    flawed = person(0, 100)
    with pytest.raises(ValueError, match="scores must be finite"):
        tracker.update([Pose(float("inf"), flawed.box, flawed.keypoints)], 0.0)


def test_poses_without_keypoints_are_tracked_by_their_boxes():
    """A detection-only model (K = 0 keypoints): boxes alone carry the IDs."""
    tracker = PoseTracker()
    out = []
    for f in range(5):
        box = person(0, 100 + 5 * f).box
        out.append(tracker.update([Pose(0.9, box, np.empty((0, 3), np.float32))], f / 30))
    assert all(ids_of(frame) == [1] for frame in out)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        TrackerSettings(low=0.5, high=0.3)
    for bad in ({"keypoint_scale": 0}, {"keypoint_scale": np.nan}, {"buffer": np.nan}):
        with pytest.raises(ValueError):
            TrackerSettings(**bad)
    for sigmas in (np.zeros(17), np.full(17, np.nan)):
        with pytest.raises(ValueError, match="sigmas"):
            PoseTracker(sigmas=sigmas)
    for fps in (0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="fps"):
            PoseTracker(fps=fps)


def test_mot_rows():
    poses = [Pose(0.875, np.array([10, 20, 40.5, 80], np.float32), np.zeros((17, 3)), 7),
             Pose(0.5, np.array([0, 0, 1, 2], np.float32), np.zeros((17, 3)))]  # fmt: skip
    assert mot_rows(0, poses) == [
        "1,7,10.00,20.00,30.50,60.00,0.87500,-1,-1,-1",
        "1,-1,0.00,0.00,1.00,2.00,0.50000,-1,-1,-1",
    ]
    assert poses[0].to_dict()["id"] == 7 and "id" not in poses[1].to_dict()


def test_iou_distances_of_an_empty_frame_given_as_lists():
    assert iou_distances([], [[0, 0, 10, 10]]).shape == (0, 1)
    assert iou_distances([[0, 0, 10, 10]], []).shape == (1, 0)


def test_mot_scores_match_the_motmetrics_readme_example():
    """The worked example of py-motmetrics' README: 3 frames, then its first 2 ('part'), and
    both together ('OVERALL'): MOTA 50 %, MOTP 0.34, IDF1 83.3 / 75 / 80 %, one switch."""
    frames = [
        ([1, 2], [1, 2, 3], [[0.1, np.nan, 0.3], [0.5, 0.2, 0.3]]),
        ([1, 2], [1], [[0.2], [0.4]]),
        ([1, 2], [1, 3], [[0.6, 0.2], [0.1, 0.6]]),
    ]
    full, part = MotAccumulator(), MotAccumulator()
    for i, frame in enumerate(frames):
        full.update(*frame)
        if i < 2:
            part.update(*frame)
    f, p = full.finish(), part.finish()
    # motmetrics lists the switched pair apart from its 4 MATCH events; here it is a match too
    assert (f.matches, f.misses, f.false_positives, f.switches) == (5, 1, 1, 1)
    assert f.mota == pytest.approx(0.5) and f.motp == pytest.approx(0.34)
    assert f.idf1 == pytest.approx(5 / 6)
    assert (p.switches, p.mota, p.motp) == (0, pytest.approx(0.5), pytest.approx(0.5 / 3))
    assert p.idf1 == pytest.approx(0.75)
    assert (f + p).idf1 == pytest.approx(0.8) and (f + p).mota == pytest.approx(0.5)


def test_mot_scores_on_boxes():
    """A hand-counted run: a switch, a miss, a false positive; IoU under 0.5 is no match."""
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    acc = MotAccumulator()
    acc.update([1, 2], [5, 6], iou_distances(gt, gt))
    acc.update([1, 2], [5, 6], iou_distances(gt, gt[::-1]))  # the tracker swapped them: 2 IDSW
    acc.update(
        [1, 2], [5], iou_distances(gt, gt[:1] + np.array([6.0, 0, 6, 0]))
    )  # IoU 0.25: FN 2, FP 1
    s = acc.finish()
    assert (s.objects, s.matches, s.switches, s.misses, s.false_positives) == (6, 4, 2, 2, 1)
    assert s.mota == pytest.approx(1 - 5 / 6)
    assert s.idf1 == pytest.approx(2 * 2 / (6 + 5))
    assert s.switch_gaps == [0, 0]


def test_mot_switch_gaps_count_the_frames_the_object_went_unmatched():
    box = np.array([[0, 0, 10, 10]], float)
    acc = MotAccumulator()
    acc.update([1], [5], iou_distances(box, box))
    acc.update([1], [], np.empty((1, 0)))
    acc.update([], [5], np.empty((0, 1)))
    acc.update([1], [7], iou_distances(box, box))  # back after 2 frames with a new ID
    acc.update([1], [7], iou_distances(box, box))
    acc.update([1], [5], iou_distances(box, box))  # the old ID again, at once
    s = acc.finish()
    assert s.switches == 2 and s.switch_gaps == [2, 0]
    assert (s + s).switch_gaps == [2, 0, 2, 0]


def pan_frames(photo: np.ndarray, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n 16:9 frames of a virtual camera that pans and zooms in over the photo, with the 2x3
    photo-to-frame matrix of each."""
    h, w = photo.shape[:2]
    frames, mats = [], []
    for i in range(n):
        t = i / (n - 1)
        crop_w = w * (1.0 - 0.15 * t)
        x0, y0 = (w - crop_w) * (0.2 + 0.6 * t), (h - crop_w * 9 / 16) * (0.7 - 0.4 * t)
        s = 640 / crop_w
        mat = np.array([[s, 0, -s * x0], [0, s, -s * y0]])
        frames.append(cv2.warpAffine(photo, mat, (640, 360), flags=cv2.INTER_LINEAR))
        mats.append(mat)
    return frames, mats


def test_ids_are_stable_on_real_detections_of_a_panning_camera(estimator):
    """Every person found clearly inside the first frame (people stand 100 px or more apart) is
    found in nearly every frame of a pan-and-zoom, always with their first ID."""
    photo = cv2.imread(str(COCO_IMAGES / "000000380913.jpg"))  # six people
    frames, mats = pan_frames(photo, 36)
    tracker = PoseTracker()
    seen: list[tuple[int, np.ndarray, float]] = []  # frame, box centre in the photo, score
    ids: list[int | None] = []
    for i, (frame, mat) in enumerate(zip(frames, mats, strict=True)):
        for p in tracker.update(estimator.predict(frame), i / 30):
            inside = p.box[0] > 20 and p.box[2] < 620
            centre = ((p.box[:2] + p.box[2:]) / 2 - mat[:, 2]) / mat[0, 0]
            seen.append((i, centre, p.score if inside else 0.0))
            ids.append(p.track_id)
    people = [(c, ids[k]) for k, (f, c, score) in enumerate(seen) if f == 0 and score >= 0.5]
    assert len(people) >= 3
    for centre, first_id in people:
        near = [k for k, (_, c, _) in enumerate(seen) if np.linalg.norm(c - centre) < 50]
        assert len({seen[k][0] for k in near}) >= 0.9 * len(frames)
        assert {ids[k] for k in near} == {first_id}


def upper_body(whole: Pose, score: float) -> Pose:
    """A second, upper-body box on the same person (box IoU 0.6 with the whole one)."""
    box = whole.box.copy()
    box[3] = box[1] + 0.6 * (box[3] - box[1])
    return Pose(score, box, whole.keypoints)


def test_duplicate_one_turns_the_rule_off_even_for_identical_boxes():
    twins = [person(0, 100), person(0, 100)]
    out = PoseTracker(TrackerSettings(duplicate=1.0)).update(twins, 0.0)
    assert ids_of(out) == [1, 2]


@pytest.mark.parametrize(("duplicate", "ids"), [(0.5, 1), (1.0, 2)])
def test_a_second_box_on_a_tracked_person_starts_no_track(duplicate, ids):
    """NMS can leave an upper-body box beside a whole-body one; two tracks on one person would
    take turns on them. With the rule off, the second box becomes a second person."""
    frames = []
    for f in range(20):
        whole = person(0, 200 + 2.0 * f)
        frames.append([whole, upper_body(whole, 0.6)] if f >= 5 else [whole])
    out = run(PoseTracker(TrackerSettings(duplicate=duplicate)), frames)
    assert {p.track_id for frame in out for p in frame} == set(range(1, ids + 1))
    assert all(id_near(frame, 200 + 2.0 * f) == 1 for f, frame in enumerate(out))


@pytest.mark.parametrize("start", [0, 5])
def test_two_boxes_on_a_new_person_start_one_track(start):
    """Both boxes unmatched at once (in the first frame, or when the person walks in): the surer
    one starts the track, the other none, and the person keeps that one ID."""
    frames = []
    for f in range(20):
        whole = person(0, 200 + 2.0 * f, score=0.8)
        frames.append([upper_body(whole, 0.6), whole] if f >= start else [])
    out = run(PoseTracker(), frames)
    assert {p.track_id for frame in out for p in frame} == {1}
    assert all(len(frame) == 1 for frame in out[start + 1 :])
    assert [p.score for p in out[-1]] == [pytest.approx(0.8)]


def test_a_newcomer_beside_a_tracked_person_gets_a_track():
    frames = [[person(0, 200)] + ([person(1, 290)] if f >= 5 else []) for f in range(20)]
    out = run(PoseTracker(), frames)
    assert ids_of(out[-1]) == [1, 2]
