"""The tracks' Kalman filter: centre-size boxes at constant velocity, every track at once, with
noise relative to the box's size (so one filter serves people near and far)."""

from __future__ import annotations

import numpy as np

POSITION_NOISE, VELOCITY_NOISE = 1 / 20, 1 / 160  # Kalman noise, relative to box size


def noise_scale(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) width, height, width, height of centre-size boxes, at least 1 px, which the
    Kalman noise is relative to (so a zero-size box still has some)."""
    return np.maximum(boxes[:, [2, 3, 2, 3]], 1.0)


def kalman_start(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State and variances of new tracks at (N, 4) centre-size boxes, at rest."""
    size = noise_scale(boxes)
    var = np.stack(
        ((2 * POSITION_NOISE * size) ** 2, np.zeros_like(size), (10 * VELOCITY_NOISE * size) ** 2),
        axis=1,
    )
    return np.concatenate((boxes, np.zeros_like(boxes)), axis=1), var


def kalman_predict(mean: np.ndarray, var: np.ndarray, step: float) -> None:
    """Advance (N, 8) states and (N, 3, 4) variances by `step` frames at constant velocity."""
    size = noise_scale(mean)
    mean[:, :4] += step * mean[:, 4:]
    pp, pv, vv = var[:, 0], var[:, 1], var[:, 2]
    pp += step * (2 * pv + step * vv) + step * (POSITION_NOISE * size) ** 2
    pv += step * vv
    vv += step * (VELOCITY_NOISE * size) ** 2


def kalman_update(mean: np.ndarray, var: np.ndarray, boxes: np.ndarray) -> None:
    """Correct (N, 8) states and (N, 3, 4) variances with measured (N, 4) centre-size boxes."""
    pp, pv, vv = var[:, 0], var[:, 1], var[:, 2]
    innovation_var = pp + (POSITION_NOISE * noise_scale(mean)) ** 2
    gain_p, gain_v = pp / innovation_var, pv / innovation_var
    innovation = boxes - mean[:, :4]
    mean[:, :4] += gain_p * innovation
    mean[:, 4:] += gain_v * innovation
    vv -= gain_v * pv
    pv *= 1 - gain_p
    pp *= 1 - gain_p
