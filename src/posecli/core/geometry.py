"""Box geometry, keypoint similarity (OKS) and assignment, shared by decoding, tiles, tracking
and evaluation. Boxes are (N, 4) x1 y1 x2 y2 unless a name says centre, width, height."""

from __future__ import annotations

import numpy as np


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes to centre, width, height."""
    return np.concatenate(((boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]), axis=1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) centre, width, height boxes to corners."""
    half = boxes[:, 2:] / 2
    return np.concatenate((boxes[:, :2] - half, boxes[:, :2] + half), axis=1)


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) areas shared by xyxy boxes a (N, 4) and b (M, 4)."""
    side = np.maximum(
        np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0
    )
    return side[..., 0] * side[..., 1]


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas of xyxy boxes (0 for inverted ones)."""
    return np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0), axis=1)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes a (N, 4) with b (M, 4); 0 where the union is empty."""
    inter = intersections(a, b)
    size_a, size_b = np.maximum(a[:, 2:] - a[:, :2], 0), np.maximum(b[:, 2:] - b[:, :2], 0)
    union = (size_a[:, 0] * size_a[:, 1])[:, None] + size_b[:, 0] * size_b[:, 1] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of (N, 4) boxes; 0 where the union is empty."""
    return box_iou_matrix(box[None], boxes)[0]


def inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) share of each xyxy box a (N, 4) that lies inside each b (M, 4)."""
    inter, area = intersections(a, b), box_areas(a)[:, None]
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


def overlap_of_smaller(boxes: np.ndarray) -> np.ndarray:
    """(N, N) intersection of each pair of boxes over the smaller one's area (0 if empty)."""
    inter, area = intersections(boxes, boxes), box_areas(boxes)
    smaller = np.minimum(area[:, None], area[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def oks_matrix(
    a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, M) OKS of keypoints a (N, K, 3) with b (M, K, 3), each keypoint weighted by the
    product of its two confidences; `areas` (N,) set the scale. Also the (N, M) weight sums."""
    e = (a[:, None, :, 0] - b[None, :, :, 0]) ** 2
    e += (a[:, None, :, 1] - b[None, :, :, 1]) ** 2
    e *= (-1 / (8 * np.maximum(areas, 1.0)[:, None] * sigmas**2))[:, None, :]
    np.exp(e, out=e)
    total = a[:, :, 2] @ b[:, :, 2].T
    similar = np.einsum("nk,mk,nmk->nm", a[:, :, 2], b[:, :, 2], e)
    return np.divide(similar, total, out=np.zeros_like(total), where=total > 0), total


def match(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the assignment that matches most cheaply, each pair costing <= limit.

    A pair over the limit is never taken, and leaving two unmatched costs the limit, as in the
    cost-limited LAPJV that ByteTrack uses.
    """
    if not cost.size:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    from scipy.optimize import linear_sum_assignment  # here: importing it takes ~0.3 s

    gain = np.maximum(limit - cost, 0.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    keep = cost[rows, cols] <= limit
    return rows[keep], cols[keep]
