"""One Euro filtering (Casiez et al. 2012) of every keypoint of every track, vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STEP = 1e-3  # seconds: the shortest time step the filter is given, against repeated times
MIN_CUTOFF, BETA, D_CUTOFF = 0.05, 15.0, 1.0  # the defaults (see KeypointSmoother)


def alpha(step: np.ndarray, cutoff: np.ndarray | float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter at `cutoff` Hz for a `step` in seconds."""
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / step)


@dataclass
class _State:
    """What the filter keeps of each track it saw in the previous frame."""

    ids: np.ndarray  # (N,) track IDs
    raw: np.ndarray  # (N, K, 2) unfiltered keypoints
    smooth: np.ndarray  # (N, K, 2) filtered keypoints
    speed: np.ndarray  # (N, K, 2) filtered velocity, in person sizes per second
    conf: np.ndarray  # (N, K) filtered confidences
    time: np.ndarray  # (N,) seconds


class KeypointSmoother:
    """One Euro filter on each coordinate of each keypoint of each track, in one array operation.

    The speed that opens the filter is measured in person sizes per second (the size being the
    mean of the box's width and height), as MediaPipe's pose smoothing does, with its min_cutoff
    and d_cutoff; beta is 15 rather than its 80, which leaves two thirds of this model's jitter
    (docs/tracking.md). The speed comes from consecutive raw values, as in the authors' code.
    A keypoint's confidence is low-passed with that keypoint's position factor. A track missing
    from a frame is forgotten: when it comes back, its filter starts afresh. A keypoint that is
    not finite (unseen) is returned as given, and its filter holds its last seen position and
    confidence.
    """

    def __init__(
        self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF
    ):
        if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):  # NaN fails too
            raise ValueError("cutoffs must be positive and beta not negative (and not NaN)")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._state: _State | None = None

    def __call__(
        self, ids: np.ndarray, keypoints: np.ndarray, sizes: np.ndarray, time: float
    ) -> np.ndarray:
        """Filtered (M, K, 3) keypoints of the tracks `ids` seen at `time` (seconds)."""
        kpts = np.asarray(keypoints, dtype=np.float64)
        ids = np.asarray(ids)
        seen = np.asarray(np.isfinite(kpts).all(axis=-1))
        new = _State(
            ids=ids,
            raw=np.where(seen[..., None], kpts[..., :2], np.nan),
            smooth=np.where(seen[..., None], kpts[..., :2], np.nan),
            speed=np.zeros_like(kpts[..., :2]),
            conf=np.where(seen, kpts[..., 2], 0.0),
            time=np.full(len(ids), float(time)),
        )
        rows, prev = self._previous_rows(ids, kpts.shape[1])
        if len(rows):
            sizes = np.maximum(np.asarray(sizes, np.float64)[rows], 1.0)
            self._filter(new, rows, prev, sizes, seen[rows])
        self._state = new
        smoothed = np.concatenate((new.smooth, new.conf[..., None]), axis=-1)
        return np.where(seen[..., None], smoothed, kpts)

    def _previous_rows(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `ids` that the filter saw last frame, and their rows in its state."""
        old = self._state
        if old is None or not len(old.ids) or not len(ids) or old.raw.shape[1] != k:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        row_of = {track: row for row, track in enumerate(old.ids.tolist())}
        prev = [row_of.get(track, -1) for track in ids.tolist()]
        rows = [i for i, r in enumerate(prev) if r >= 0]
        return np.array(rows, dtype=np.intp), np.array([prev[i] for i in rows], dtype=np.intp)

    def _filter(
        self, new: _State, rows: np.ndarray, prev: np.ndarray, sizes: np.ndarray, seen: np.ndarray
    ) -> None:
        """One step for the tracks at `rows` of `new`, from their `prev` rows in the state;
        `seen` (len(rows), K) says which keypoints were seen now."""
        old = self._state
        assert old is not None
        step = np.maximum(new.time[rows] - old.time[prev], MIN_STEP)[:, None, None]
        last = old.raw[prev]
        raw = np.where(seen[..., None], new.raw[rows], last)  # unseen: position and confidence held
        before = np.isfinite(last).all(axis=-1)  # seen in an earlier frame
        last = np.where(before[..., None], last, raw)  # never seen before: starts here
        a_speed = alpha(step, self.d_cutoff)
        speed = (raw - last) * (a_speed / (step * sizes[:, None, None]))
        speed += (1 - a_speed) * old.speed[prev]
        speed[~np.isfinite(speed)] = 0.0  # a keypoint not seen yet has no speed
        a = alpha(step, self.min_cutoff + self.beta * np.abs(speed))
        smooth = np.where(before[..., None], old.smooth[prev], raw)
        smooth += a * (raw - smooth)
        new.raw[rows] = raw
        new.smooth[rows] = smooth
        new.speed[rows] = speed
        a_conf = (a[..., 0] + a[..., 1]) / 2
        conf = np.where(before, old.conf[prev], new.conf[rows])
        new.conf[rows] = np.where(seen, conf + a_conf * (new.conf[rows] - conf), conf)
