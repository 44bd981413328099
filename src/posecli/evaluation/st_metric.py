"""ST's model-card accuracy metric: its image filter and order, OKS, matching and AP integration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import Params

THRESHOLDS = np.linspace(0.5, 0.95, 10)
AREA_FACTOR = 0.53  # ST scales the normalised box area by this before using it in OKS
SHUFFLE_SEED = 123
EPS = 1e-7
CARD_SETTINGS = {"resize": "stretch", "interp": "nearest", "iou": 0.1, "conf": 0.001,
                 "max_det": 100, "tta": "none"}  # fmt: skip
METRICS = ("AP50", "AP50_95", "AP75", "recall50")


@dataclass(frozen=True)
class StImage:
    """One image's ground truth as ST's converter keeps it, in coordinates normalised to 0..1."""

    image_id: int
    file_name: str
    keypoints: np.ndarray  # (N, K, 3): x, y, labelled (0 or 1)
    area: np.ndarray  # (N,) normalised box width * height
    counted: int  # people with any keypoint value set: recall's denominator


def coco_sigmas() -> np.ndarray:
    """COCO's 17 per-keypoint OKS sigmas, as pycocotools has them."""
    return np.asarray(Params(iouType="keypoints").kpt_oks_sigmas, dtype=np.float64)


def st_image(coco: COCO, image_id: int) -> StImage:
    """Drop crowds and empty boxes, normalise by the image size, mark v >= 1 as labelled."""
    name, size = coco.imgs[image_id]["file_name"], image_size(coco, image_id)
    anns = kept_annotations(coco, image_id)
    if not anns:
        return StImage(image_id, name, np.zeros((0, 0, 3)), np.zeros(0), 0)
    raw = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
    keypoints = np.concatenate((raw[..., :2] / size, raw[..., 2:] >= 1), axis=-1)
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)
    area = boxes[:, 2] * boxes[:, 3] / (size[0] * size[1])
    counted = int(np.any(keypoints != 0, axis=(1, 2)).sum())
    return StImage(image_id, name, keypoints, area, counted)


def kept_annotations(coco: COCO, image_id: int) -> list[dict]:
    """An image's people that ST keeps: keypoint annotations, not crowds, box w and h > 0."""
    return [
        a
        for a in coco.imgToAnns.get(image_id, [])
        if a.get("keypoints") and not a.get("iscrowd") and min(a["bbox"][2:4]) > 0
    ]


def kept_images(coco: COCO, image_ids: Iterable[int]) -> list[StImage]:
    """The images ST evaluates (some kept person has a labelled keypoint), in ST's order.

    ST sorts the kept images by file name and shuffles them with a seeded RandomState; the order
    decides how equal scores rank across images, so it moves the figure by a few tenths.
    """
    kept = [im for im in (st_image(coco, i) for i in image_ids) if im.keypoints[..., 2].any()]
    kept.sort(key=lambda im: im.file_name)
    order = np.arange(len(kept))
    np.random.RandomState(SHUFFLE_SEED).shuffle(order)
    return [kept[i] for i in order]


def oks_matrix(
    gt: np.ndarray, area: np.ndarray, pred: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """(N, M) OKS of N ground truths (N, K, 3) against M predicted (M, K, 2) keypoints."""
    d2 = np.square(gt[:, None, :, :2] - pred[None, :, :, :2]).sum(axis=-1)
    scale = np.square(2 * sigmas) * (area[:, None, None] * AREA_FACTOR + EPS) * 2
    labelled = gt[..., 2]
    similarity = (np.exp(-d2 / scale) * labelled[:, None, :]).sum(axis=-1)
    return similarity / (labelled.sum(axis=-1)[:, None] + EPS)


def matched_oks(oks: np.ndarray) -> np.ndarray:
    """(M,) OKS of each prediction with the ground truth it won, 0 if it won none.

    Scores play no part: each prediction picks its best-OKS ground truth, and each ground truth
    keeps the best-OKS prediction among those that picked it (equal OKS: the later one, as ST).
    """
    n, m = oks.shape
    if n == 0 or m == 0:
        return np.zeros(m)
    best_gt = n - 1 - np.argmax(oks[::-1], axis=0)
    contest = np.where(best_gt[None, :] == np.arange(n)[:, None], oks, -1.0)
    winner = m - 1 - np.argmax(contest[:, ::-1], axis=1)
    preds = np.arange(m)
    return np.where(winner[best_gt] == preds, oks[best_gt, preds], 0.0)


def average_precision(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """ST's AP and highest recall for each column of tp (D, T), detections in ST's order.

    Detections rank by score, equal scores the later first. The curve gets the sentinels
    (0, 1) and (1, 0) and its precision envelope, is sampled linearly at 101 recall points and
    integrated with trapezoids.
    """
    order = np.argsort(conf, kind="stable")[::-1]
    hits = tp[order].astype(np.float64)
    true_pos = np.cumsum(hits, axis=0)
    precision = true_pos / (np.arange(1, len(hits) + 1)[:, None] + EPS)
    recall = true_pos / (n_gt + EPS)
    ap = np.array([_area_under(precision[:, t], recall[:, t]) for t in range(tp.shape[1])])
    top_recall = recall.max(axis=0) if len(recall) else np.zeros(tp.shape[1])
    return ap, top_recall


def _area_under(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid area under the interpolated precision envelope, with ST's sentinels."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.maximum.accumulate(np.concatenate(([1.0], precision, [0.0]))[::-1])[::-1]
    mrec, first = np.unique(mrec, return_index=True)
    grid = np.linspace(0, 1, 101)
    curve = np.interp(grid, mrec, mpre[first])
    return float((curve[1:] + curve[:-1]).sum() / 2 * (grid[1] - grid[0]))


def image_hits(
    image: StImage, keypoints: np.ndarray, size: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """(M, T) true positives of one image's predictions (pixel keypoints (M, K, >=2))."""
    pred = keypoints[..., :2] / size
    return true_positives(matched_oks(oks_matrix(image.keypoints, image.area, pred, sigmas)))


def true_positives(matched: np.ndarray) -> np.ndarray:
    """(M, T): a match counts at a threshold only where its OKS is strictly above it."""
    return matched[:, None] > THRESHOLDS[None, :]


def score(
    coco: COCO, detections: list[dict], image_ids: Iterable[int], sigmas: np.ndarray | None = None
) -> tuple[dict[str, float], int]:
    """AP50, AP50_95, AP75 and the highest recall at OKS 0.5, in %, as ST computes them (OKS
    with these sigmas, COCO's by default), and the number of images ST's filter kept."""
    kept = kept_images(coco, image_ids)
    ap, top_recall = average_precision(*collect(coco, detections, kept, sigmas))
    values = (ap[0], ap.mean(), ap[5], top_recall[0])
    return {k: round(float(v) * 100, 2) for k, v in zip(METRICS, values, strict=True)}, len(kept)


def collect(
    coco: COCO, detections: list[dict], images: list[StImage], sigmas: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """True positives (D, T) and scores (D,) of the detections with a score > 0, image by image
    in the given order (OKS with these sigmas, COCO's by default), and the ground truths counted."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for d in detections:
        if d["score"] > 0:
            by_image[d["image_id"]].append(d)
    sigmas = coco_sigmas() if sigmas is None else sigmas
    hits, confs = [np.zeros((0, len(THRESHOLDS)), bool)], [np.zeros(0)]
    for image in images:
        dets = by_image.get(image.image_id, [])
        if dets:
            keypoints = np.array([d["keypoints"] for d in dets], dtype=np.float64)
            keypoints = keypoints.reshape(len(dets), -1, 3)
            hits.append(image_hits(image, keypoints, image_size(coco, image.image_id), sigmas))
            confs.append(np.array([d["score"] for d in dets], dtype=np.float64))
    return np.concatenate(hits), np.concatenate(confs), sum(im.counted for im in images)


def image_size(coco: COCO, image_id: int) -> np.ndarray:
    """(width, height) of an annotated image."""
    info = coco.imgs[image_id]
    return np.array([info["width"], info["height"]], dtype=np.float64)


def card_differences(settings: dict) -> list[str]:
    """Settings that differ from the model card's evaluation, as 'name value (card: value)'."""
    return [
        f"{name} {settings[name]} (card: {card})"
        for name, card in CARD_SETTINGS.items()
        if name in settings and settings[name] != card
    ]


def format_table(rows: list) -> str:
    """One row per model: ST's keypoint metrics in %."""
    lines = [f"{'model':<22}{'resize':<10}{'images':>7}  " + "".join(f"{m:>9}" for m in METRICS)]
    for r in rows:
        cells = "".join(f"{r.keypoints[m]:>9.2f}" for m in METRICS)
        lines.append(f"{r.model:<22}{r.settings['resize']:<10}{r.images:>7}  {cells}")
    return "\n".join(lines)
