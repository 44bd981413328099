"""Camera motion measured on a real photo moved by a known pan and zoom, and a tracker that uses
it to find a person again on the far side of what hid them."""

from __future__ import annotations

import importlib
from dataclasses import replace

import cv2
import numpy as np
import pytest

from posecli import PoseEstimator
from posecli.cli.track import track
from posecli.core.results import Pose
from posecli.pipeline import flow as pipeline
from posecli.pipeline.events import StreamOptions
from posecli.tracking.camera_motion import CameraMotion, grey_thumbnail
from posecli.tracking.stage import TrackOptions, track_events
from posecli.tracking.tracker import PoseTracker, TrackerSettings

from conftest import COCO_IMAGES, IMAGES


def view(photo: np.ndarray, zoom: float, x: float, y: float) -> np.ndarray:
    """A 640x360 frame of the photo, zoomed about its corner and shifted."""
    mat = np.array([[zoom, 0, x], [0, zoom, y]])
    return cv2.warpAffine(photo, mat, (640, 360), flags=cv2.INTER_LINEAR)


def test_pan_and_zoom_are_measured_to_a_fraction_of_a_pixel():
    photo = cv2.imread(str(IMAGES / "bus.jpg"))
    motion = CameraMotion()
    first, second = view(photo, 1.0, -50, -300), view(photo, 1.02, -53, -304)
    assert np.allclose(motion(grey_thumbnail(first), 640), np.eye(2, 3))  # nothing before it
    found = motion(grey_thumbnail(second), 640)
    true = np.array([[1.02, 0, -53 + 50 * 1.02], [0, 1.02, -304 + 300 * 1.02]])
    for point in ([100.0, 50.0], [320.0, 180.0], [600.0, 300.0]):
        assert found[:, :2] @ point + found[:, 2] == pytest.approx(
            true[:, :2] @ point + true[:, 2], abs=0.3
        )


def test_a_frame_of_another_size_is_a_zoom():
    """The same view at twice the size (images of one --sequence saved at two sizes): the same
    thumbnail, but the last frame's pixels land at twice their coordinates."""
    photo = cv2.imread(str(IMAGES / "bus.jpg"))
    small = view(photo, 1.0, -50, -300)
    motion = CameraMotion()
    motion(grey_thumbnail(small), 640)
    found = motion(grey_thumbnail(cv2.resize(small, (1280, 720))), 1280)
    for point in ([100.0, 50.0], [320.0, 180.0], [600.0, 300.0]):
        assert found[:, :2] @ point + found[:, 2] == pytest.approx(2 * np.array(point), abs=1.0)


def test_a_small_grey_frame_is_copied_not_kept():
    """A thumbnail is never the caller's buffer, which a reader may fill with the next frame."""
    frame = np.zeros((180, 320), np.uint8)
    assert not np.shares_memory(grey_thumbnail(frame), frame)


def test_a_frame_without_texture_moves_nothing():
    motion = CameraMotion()
    flat = np.full((360, 640), 90, np.uint8)
    motion(grey_thumbnail(flat), 640)
    assert np.array_equal(motion(grey_thumbnail(flat), 640), np.eye(2, 3))


@pytest.mark.parametrize("left", [0, 300, 560])
def test_a_textured_screen_crossing_the_view_is_not_taken_for_the_camera(left):
    """A sharp strip of bus.jpg, a third of the frame wide, slides left by 5 px a frame over a
    COCO photo with a soft background that the camera pans across by 3 px a frame, with sensor
    noise (the tracking benchmark's occluder; corners are strongest on it). The pan is what is
    measured."""
    scene = cv2.imread(str(COCO_IMAGES / "000000011051.jpg"))
    strip = cv2.imread(str(IMAGES / "bus.jpg"))[300:660, left : left + 213]
    noise = np.random.default_rng(0)
    motion = CameraMotion()
    for f in range(3):
        frame = view(scene, 1.0, -3 * f, 0)
        frame[:, 300 - 5 * f : 513 - 5 * f] = strip
        frame = np.clip(frame + noise.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        found = motion(grey_thumbnail(frame), 640)
    assert found[:, 2] == pytest.approx([-3.0, 0.0], abs=0.3)
    assert found[:, :2] == pytest.approx(np.eye(2), abs=0.002)


def sliver(x1: float, x2: float, shift: float) -> Pose:
    """A person's visible part from x1 to x2 in the world, seen by a camera panned by shift."""
    box = np.array([x1 - shift, 100, x2 - shift, 300], np.float32)
    kpts = np.zeros((17, 3), np.float32)
    return Pose(0.8, box, kpts)


@pytest.mark.parametrize("with_camera", [True, False])
def test_a_person_hidden_by_a_passing_screen_is_found_on_its_other_side(with_camera):
    """A still person (x 200-300) in a panning view (3 px a frame): a screen covers their left
    half, then all of them for 15 frames, then leaves only their left half visible. The two
    halves do not overlap; the person's extent, moved with the camera, ties them."""
    frames = [[sliver(200, 300, 3 * f)] for f in range(10)]
    frames += [[sliver(250, 300, 3 * f)] for f in range(10, 14)]
    frames += [[] for _ in range(14, 29)]
    frames += [[sliver(200, 250, 3 * f)] for f in range(29, 40)]
    pan = np.array([[1.0, 0, -3.0], [0, 1.0, 0]])
    tracker = PoseTracker()
    ids = set()
    for f, poses in enumerate(frames):
        out = tracker.update(poses, f / 30, pan if with_camera and f else None)
        ids |= {p.track_id for p in out}
    assert ids == ({1} if with_camera else {1, 2})


@pytest.mark.parametrize(("low_refind", "ids"), [(0.85, {1}), (1.0, {1, 2})])
def test_a_person_coming_out_at_a_low_score_is_found_in_their_extent(low_refind, ids):
    """As above, but the person comes out at score 0.2 (under `high`, so no track of theirs is
    matched and none starts) for 20 frames before the model is sure of them again, by then more
    than the buffer after their last match: the low-score boxes inside their extent keep them."""
    frames = [[sliver(200, 300, 3 * f)] for f in range(14)]
    frames += [[] for _ in range(14, 29)]
    frames += [[replace(sliver(200, 250, 3 * f), score=0.2)] for f in range(29, 49)]
    frames += [[sliver(200, 300, 3 * f)] for f in range(49, 60)]
    pan = np.array([[1.0, 0, -3.0], [0, 1.0, 0]])
    tracker = PoseTracker(TrackerSettings(low_refind=low_refind))
    out = [tracker.update(poses, f / 30, pan if f else None) for f, poses in enumerate(frames)]
    assert {p.track_id for frame in out for p in frame} == ids
    assert len(out[29]) == (low_refind < 1)


def test_images_of_a_sequence_move_the_tracks_with_the_camera(tmp_path):
    """Photos of one view panned 40 px an image (as frames saved from a moving camera) tracked
    as a sequence: a still person's box moves 40 px (IoU 0.2 with the last) and is tracked in
    every image only because the images' own motion moves the track (else each image starts
    a new track, which no next image confirms)."""
    photo = cv2.imread(str(IMAGES / "bus.jpg"))
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"view_{i}.png"))
        cv2.imwrite(paths[-1], view(photo, 1.0, -40 * i, -300))
    estimator = PoseEstimator()
    options = StreamOptions(measure=grey_thumbnail, measure_images=True)
    events = list(pipeline.run(estimator.predictor, paths, options))
    assert all(e.measured is not None and e.measured.shape == (180, 320) for e in events)
    for i, event in enumerate(events):  # one made-up person, fixed in the photo
        box = np.array([300 - 40 * i, 100, 360 - 40 * i, 300], np.float32)
        person = [Pose(0.9, box, np.zeros((17, 3), np.float32))]
        events[i] = replace(event, result=replace(event.result, poses=person))
    ids = {}
    for camera_motion in (True, False):
        options = TrackOptions(sequence_fps=30.0, camera_motion=camera_motion)
        tracked = track_events(events, options)
        ids[camera_motion] = [[p.track_id for p in e.result.poses] for e in tracked]
    assert ids == {True: [[1]] * 6, False: [[1]] + [[]] * 5}


def write_video(path, frames: list[np.ndarray]) -> None:
    """An MJPEG AVI of 640x360 BGR frames at 30 fps."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (640, 360))
    for frame in frames:
        out.write(frame)
    out.release()


@pytest.mark.parametrize(
    ("video", "flags", "thumbnails"),
    [(False, (), 0), (False, ("--sequence",), 2), (False, ("--sequence", "--no-camera-motion"), 0),
     (True, (), 3), (True, ("--no-camera-motion",), 0)],
)  # fmt: skip
def test_thumbnails_are_made_only_where_camera_motion_is_measured(
    monkeypatch, tmp_path, video, flags, thumbnails
):
    """`posecli track` makes grey thumbnails for the camera's motion of every video frame and of
    the images of a --sequence, and none without camera motion or for images tracked each on
    their own (each would be made for nothing)."""
    made = []

    def counted(bgr: np.ndarray) -> np.ndarray:
        made.append(bgr.shape)
        return grey_thumbnail(bgr)

    monkeypatch.setattr(importlib.import_module("posecli.cli.track"), "grey_thumbnail", counted)
    photo = cv2.imread(str(IMAGES / "bus.jpg"))
    sources = [str(IMAGES / "bus.jpg"), str(IMAGES / "zidane.jpg")]
    if video:
        sources = [str(tmp_path / "pan.avi")]
        write_video(sources[0], [view(photo, 1.0, -10 * i, -300) for i in range(3)])
    out = tmp_path / "out.jsonl"
    code = track.main([*sources, "--quiet", "-f", "jsonl", "-o", str(out), *flags],
                      standalone_mode=False)  # fmt: skip
    assert code == 0 and len(out.read_text().splitlines()) == (3 if video else 2)
    assert len(made) == thumbnails
