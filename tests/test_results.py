"""A frame's people as one container of arrays: indexing, equality, read-only arrays, records."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from posecli import ImageResult, People, Pose, PoseTracker

from conftest import BUS, ZIDANE


@pytest.fixture(scope="module")
def people(estimator) -> People:
    """The people in bus.jpg, as decoded."""
    found = estimator.predict(cv2.imread(str(BUS)))
    assert len(found) >= 3
    return found


def test_predict_gives_people_as_arrays_iterable_person_by_person(people):
    n = len(people)
    assert people.boxes.shape == (n, 4) and people.scores.shape == (n,)
    assert people.keypoints.shape == (n, 17, 3) and people.ids is None
    poses = list(people)
    assert all(isinstance(p, Pose) for p in poses) and len(poses) == n
    assert [p.score for p in poses] == people.scores.tolist()
    assert np.array_equal(poses[1].box, people.boxes[1])


def test_indexing_by_int_slice_mask_and_indices(people):
    assert people[0] == next(iter(people)) and people[-1] == list(people)[-1]
    assert len(people[1:3]) == 2 and people[1:3][0] == people[1]
    sure = people[people.scores > 0.5]
    assert isinstance(sure, People) and len(sure) == int((people.scores > 0.5).sum())
    assert people[np.array([2, 0])][1] == people[0]
    with pytest.raises(IndexError):
        people[len(people)]


def test_people_and_poses_compare_by_value(estimator, people):
    again = estimator.predict(cv2.imread(str(BUS)))
    assert again == people and again is not people
    assert again[0] == people[0] and hash(again[0]) == hash(people[0])
    assert people != estimator.predict(cv2.imread(str(ZIDANE)))
    assert people[0] != replace(people[0], track_id=3)
    assert len({people[0], again[0], people[1]}) == 2


def test_results_cannot_be_changed_in_place(people):
    """A frozen result is frozen: its arrays are read-only, so no caller changes another's."""
    with pytest.raises(ValueError, match="read-only"):
        people.boxes[0, 0] = 9
    with pytest.raises(ValueError, match="read-only"):
        people[0].box[0] = 9
    mine = np.array([1.0, 2.0, 30.0, 40.0])
    pose = Pose(0.5, mine, np.zeros((17, 3)))
    mine[0] = 9  # the caller's array stays the caller's
    assert pose.box[0] == 1.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="boxes"):
        People(np.zeros((2, 3)), np.zeros(2), np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match="ids"):
        People(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 17, 3)), ids=np.arange(3))


def test_tracked_people_carry_ids_into_records(people):
    tracker = PoseTracker()
    first = tracker.update(people, 0.0)
    assert first.ids is not None and first.ids.tolist() == list(range(1, len(first) + 1))
    records = ImageResult("bus.jpg", 810, 1080, first).to_dict()["poses"]
    assert [r["id"] for r in records] == first.ids.tolist()
    assert json.loads(json.dumps(records)) == records


def test_a_list_of_poses_is_taken_as_people(people):
    result = ImageResult("bus.jpg", 810, 1080, list(people))
    assert isinstance(result.poses, People)
    assert result.to_dict() == ImageResult("bus.jpg", 810, 1080, people).to_dict()
