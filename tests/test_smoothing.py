"""The One Euro keypoint filter against a plain scalar implementation of the paper's equations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posecli.tracking.smoothing import KeypointSmoother


class ScalarOneEuro:
    """Casiez et al. 2012 for one value: X^_i = a X_i + (1 - a) X^_(i-1), a = 1 / (1 + tau / Te),
    tau = 1 / (2 pi fc), fc = fcmin + beta |dX^_i|, dX^ the speed low-passed at fc = dcutoff;
    the speed (X_i - X_(i-1)) / Te divided by the person's size, as MediaPipe."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.last: tuple[float, float, float, float, float] | None = None

    @staticmethod
    def alpha(te: float, cutoff: float) -> float:
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff) / te)

    def __call__(self, t: float, x: float, conf: float, size: float) -> tuple[float, float]:
        if self.last is None:
            self.last = (t, x, x, 0.0, conf)
            return x, conf
        t0, raw0, smooth0, speed0, _ = self.last
        te = t - t0
        speed = (x - raw0) / te / size
        a_d = self.alpha(te, self.d_cutoff)
        speed = a_d * speed + (1 - a_d) * speed0
        a = self.alpha(te, self.min_cutoff + self.beta * abs(speed))
        smooth = a * x + (1 - a) * smooth0
        self.last = (t, x, smooth, speed, conf)
        return smooth, a


@pytest.mark.parametrize("params", [(0.05, 80.0, 1.0), (1.0, 0.5, 2.0)])
def test_matches_scalar_reference(params):
    rng = np.random.default_rng(1)
    n, k, frames = 3, 5, 40
    times = np.cumsum(rng.uniform(0.02, 0.06, frames))  # irregular frame times
    sizes = rng.uniform(80, 200, (frames, n))
    path = np.cumsum(rng.normal(0, 3, (frames, n, k, 2)), axis=0) + rng.uniform(0, 500, (n, k, 2))
    confs = rng.uniform(0, 1, (frames, n, k))
    smoother = KeypointSmoother(*params)
    ids = np.array([7, 3, 11])
    got = []
    for f in range(frames):
        kpts = np.concatenate((path[f], confs[f][..., None]), axis=-1)
        got.append(smoother(ids, kpts, sizes[f], times[f]))
    got_arr = np.array(got)

    for person in range(n):
        for kp in range(k):
            filters = [ScalarOneEuro(*params) for _ in range(2)]
            conf = None
            for f in range(frames):
                outs = [
                    filters[axis](times[f], path[f, person, kp, axis], confs[f, person, kp],
                                  sizes[f, person])
                    for axis in range(2)
                ]  # fmt: skip
                for axis in range(2):
                    assert got_arr[f, person, kp, axis] == pytest.approx(outs[axis][0], rel=1e-9)
                if f == 0:
                    conf = confs[f, person, kp]
                else:
                    a = (outs[0][1] + outs[1][1]) / 2
                    conf = a * confs[f, person, kp] + (1 - a) * conf
                assert got_arr[f, person, kp, 2] == pytest.approx(conf, rel=1e-9)


def test_tracks_are_filtered_independently_and_in_any_order():
    rng = np.random.default_rng(2)
    kpts = rng.uniform(0, 100, (6, 2, 4, 3))
    sizes = np.array([50.0, 90.0])
    both = KeypointSmoother()
    alone = [KeypointSmoother(), KeypointSmoother()]
    for f in range(6):
        order = [1, 0] if f % 2 else [0, 1]  # the tracker may list people in any order
        out = both(np.array([10, 20])[order], kpts[f][order], sizes[order], f / 30)
        for row, person in enumerate(order):
            solo = alone[person](np.array([1]), kpts[f][person : person + 1],
                                 sizes[person : person + 1], f / 30)  # fmt: skip
            np.testing.assert_allclose(out[row], solo[0])


def test_a_track_missing_from_a_frame_starts_afresh():
    smoother = KeypointSmoother()
    still = np.zeros((1, 3, 3))
    for f in range(5):
        smoother(np.array([1]), still, np.array([100.0]), f / 30)
    smoother(np.array([2]), still, np.array([100.0]), 5 / 30)  # person 1 lost this frame
    moved = still + np.array([40.0, 40.0, 0.5])
    out = smoother(np.array([1]), moved, np.array([100.0]), 6 / 30)
    np.testing.assert_array_equal(out, moved)  # no memory of the old position


def test_an_unseen_keypoint_is_passed_through_and_its_filter_holds():
    """A keypoint given as NaN (unseen) for a second comes out as NaN then, and the frame after
    it is where it was, with the confidence it had, not pulled toward (0, 0) and 0; one unseen
    from the start begins where it is first seen, at its own confidence."""
    smoother = KeypointSmoother()
    point = np.array([[[118.8, 137.5, 0.9], [np.nan, np.nan, np.nan]]])
    for f in range(5):
        smoother(np.array([1]), point, np.array([100.0]), f / 30)
    hidden = point.copy()
    hidden[0, 0] = np.nan
    for f in range(5, 35):
        out = smoother(np.array([1]), hidden, np.array([100.0]), f / 30)
        assert np.isnan(out[0]).all()
    seen = point.copy()
    seen[0, 1] = [50.0, 60.0, 0.8]
    out = smoother(np.array([1]), seen, np.array([100.0]), 35 / 30)
    np.testing.assert_allclose(out[0, :, :2], seen[0, :, :2], atol=1e-9)
    assert out[0, :, 2] == pytest.approx([0.9, 0.8])


def test_still_noise_is_damped_and_motion_followed():
    rng = np.random.default_rng(3)
    smoother = KeypointSmoother()
    noisy = 300 + rng.normal(0, 2, (90, 1, 17, 2))
    kpts = np.concatenate((noisy, np.ones((90, 1, 17, 1))), axis=-1)
    out = np.array([smoother(np.array([1]), k, np.array([150.0]), f / 30)
                    for f, k in enumerate(kpts)])[:, 0, :, :2]  # fmt: skip
    raw_jitter = np.abs(np.diff(noisy[30:, 0], axis=0)).mean()
    assert np.abs(np.diff(out[30:], axis=0)).mean() < 0.6 * raw_jitter
    # a fast pan: 5 px a frame; the filter opens up and trails by less than a frame
    smoother = KeypointSmoother()
    pan = 300 + 5.0 * np.arange(60)[:, None, None, None] + np.zeros((60, 1, 17, 2))
    kpts = np.concatenate((pan, np.ones((60, 1, 17, 1))), axis=-1)
    out = np.array([smoother(np.array([1]), k, np.array([150.0]), f / 30)
                    for f, k in enumerate(kpts)])[:, 0, :, :2]  # fmt: skip
    assert np.all(pan[30:, 0] - out[30:] < 5.0)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        KeypointSmoother(min_cutoff=0)
    with pytest.raises(ValueError):
        KeypointSmoother(beta=-1)
    for nan in ({"min_cutoff": math.nan}, {"beta": math.nan}, {"d_cutoff": math.nan}):
        with pytest.raises(ValueError, match="NaN"):
            KeypointSmoother(**nan)
