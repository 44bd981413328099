"""Annotated images: every score label inside the image, readable, none over another."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from posecli import COCO17, PoseEstimator
from posecli.core.results import Pose
from posecli.output.draw import DrawStyle, box_color, draw_poses, label_rects, line_width, luminance

from conftest import BUS, COCO_IMAGES

# The COCO dev photos where the default model finds the most people at --conf 0.05.
CROWDS = ["000000005001.jpg", "000000350679.jpg", "000000376322.jpg", "000000388056.jpg"]


@pytest.fixture(scope="module")
def low_conf_estimator() -> PoseEstimator:
    """The default model keeping weak detections too, for crowded pictures."""
    return PoseEstimator(conf=0.05)


def pairwise_overlap(rects: np.ndarray) -> np.ndarray:
    """(N, N) intersection areas of rectangles, zero on the diagonal."""
    lo = np.maximum(rects[:, None, :2], rects[None, :, :2])
    hi = np.minimum(rects[:, None, 2:], rects[None, :, 2:])
    area = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    np.fill_diagonal(area, 0)
    return area


def check_labels(image: np.ndarray, poses: list[Pose]) -> np.ndarray:
    """Label rectangles inside the image, not overlapping, and drawn where they say."""
    rects = label_rects(poses, image.shape, line_width(image))
    height, width = image.shape[:2]
    assert (rects[:, :2] >= 0).all() and (rects[:, 2] <= width).all()
    assert (rects[:, 3] <= height).all()
    assert not pairwise_overlap(rects).any()
    drawn = draw_poses(image, poses, 0.5, COCO17)
    for index, (x1, y1, x2, y2) in enumerate(rects):
        tag = drawn[y1:y2, x1:x2].reshape(-1, 3)
        fill = box_color(poses[index], index)
        assert (tag == fill).all(axis=1).mean() > 0.5  # the tag's fill, under white text
        assert (tag == 255).all(axis=1).any()  # the text
    return rects


@pytest.mark.parametrize("name", CROWDS)
def test_crowd_labels_stay_inside_and_apart(low_conf_estimator, name):
    image = cv2.imread(str(COCO_IMAGES / name))
    poses = low_conf_estimator.predict(image)
    assert len(poses) >= 15
    check_labels(image, poses)


def test_labels_of_people_at_the_right_and_top_edges_are_whole():
    image = cv2.imread(str(BUS))
    height, width = image.shape[:2]
    keypoints = np.zeros((17, 3), np.float32)
    poses = [
        Pose(0.9, np.array([width - 20, 0, width, 300], np.float32), keypoints),
        Pose(0.8, np.array([width - 25, 5, width, 310], np.float32), keypoints),
        Pose(0.7, np.array([0, height - 15, 30, height], np.float32), keypoints),
    ]
    rects = check_labels(image, poses)
    assert rects[0, 2] == width and rects[0, 1] == 0


def test_a_label_wider_than_the_image_is_shrunk_to_fit():
    image = cv2.resize(cv2.imread(str(BUS)), (60, 80))
    pose = Pose(0.5, np.array([5, 5, 50, 70], np.float32), np.zeros((17, 3), np.float32))
    rects = check_labels(image, [pose])
    assert rects[0, 2] - rects[0, 0] <= 60


def test_an_untracked_label_names_the_specs_class():
    """A model whose spec names its class 'dog' labels its boxes 'dog 0.90', not 'person'."""
    image = cv2.imread(str(BUS))
    pose = Pose(0.9, np.array([100, 100, 300, 500], np.float32), np.zeros((17, 3), np.float32))
    lw = line_width(image)
    (dx1, _, dx2, _), (px1, py1, px2, py2) = (
        label_rects([pose], image.shape, lw, name)[0] for name in ("dog", "person")
    )
    assert dx2 - dx1 < px2 - px1  # 'dog 0.90' is the shorter text
    dog = draw_poses(image, [pose], 0.5, replace(COCO17, label="dog"))
    person = draw_poses(image, [pose], 0.5, COCO17)
    assert (dog[py1:py2, px1:px2] != person[py1:py2, px1:px2]).any()


def two_people() -> list[Pose]:
    """Two people side by side on a 400 x 300 picture, with every keypoint confident."""
    poses = []
    for x in (40, 220):
        keypoints = np.c_[np.full(17, x + 70.0), np.linspace(60, 260, 17), np.ones(17)]
        poses.append(Pose(0.9, np.array([x, 40, x + 140, 280], np.float32), keypoints))
    return poses


@pytest.mark.parametrize("background", [0, 255])
def test_each_person_has_a_colour_of_their_own_readable_on_dark_and_light(background):
    """infer colours people by index: box, keypoints and label tag in one colour per person,
    with 4.5:1 contrast against black and white (WCAG's text threshold)."""
    image = np.full((300, 400, 3), background, np.uint8)
    poses = two_people()
    drawn = draw_poses(image, poses, 0.5, replace(COCO17, skeleton=()))
    colours = [box_color(pose, i) for i, pose in enumerate(poses)]
    assert colours[0] != colours[1]
    for pose, colour in zip(poses, colours, strict=True):
        x1, y1, _, y2 = pose.box.astype(int)
        assert tuple(drawn[(y1 + y2) // 2, x1]) == colour  # the box's left edge
        assert tuple(drawn[160, int(pose.keypoints[0, 0])]) == colour  # a keypoint dot
    for key in range(40):
        blue, green, red = box_color(Pose(0.9, np.zeros(4), np.zeros((17, 3))), key)
        lum = luminance((red / 255, green / 255, blue / 255))
        assert (lum + 0.05) / 0.05 >= 4.5 and 1.05 / (lum + 0.05) >= 4.5


def test_drawing_switches_line_width_boxes_labels_and_scores():
    image = np.full((300, 400, 3), 255, np.uint8)
    poses = two_people()
    spec = replace(COCO17, skeleton=())
    plain = draw_poses(image, poses, 0.5, spec, DrawStyle(line_width=5))
    x1, y = int(poses[0].box[0]), 200
    assert (plain[y, x1 - 2 : x1 + 3] == box_color(poses[0], 0)).all()  # 5 px wide
    assert (plain[y, x1 - 4] == 255).all() and (plain[y, x1 + 4] == 255).all()
    no_boxes = draw_poses(image, poses, 0.5, spec, DrawStyle(boxes=False))
    assert (no_boxes[y, x1 - 3 : x1 + 4] == 255).all()
    rects = label_rects(poses, image.shape, line_width(image))
    no_labels = draw_poses(image, poses, 0.5, spec, DrawStyle(boxes=False, labels=False))
    for rx1, ry1, rx2, ry2 in rects:
        assert (no_labels[ry1:ry2, rx1:rx2] == 255).all(axis=2).mean() > 0.9
    short = label_rects(poses, image.shape, line_width(image), conf=False)
    assert ((short[:, 2] - short[:, 0]) < (rects[:, 2] - rects[:, 0])).all()  # 'person' alone
