"""The PETS street video against its MOTChallenge ground truth: detection recall and precision,
and `posecli track`'s scores, with and without tiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.tiles import PETS, TILE, cache_file, tile_value
from benchmarks.tracking.cache import cached
from posecli import PoseEstimator
from posecli.core.geometry import box_iou_matrix, overlap_of_smaller
from posecli.evaluation.mot import MotAccumulator, iou_distances
from posecli.media import video

PETS_SCALE = 480 / 768  # MOT15's PETS09-S2L1 is 768x576; the shared copy 480x360
PETS_BANDS = (0, 40, 60, 80)  # px, lower edges of person-height bands in the 480x360 frame
PETS_FRAMES = 795


def load_mot_gt(path: Path, frames: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame: person ids, their xyxy boxes and the ignore boxes (flag 0), in video pixels."""
    rows = np.loadtxt(path, delimiter=",").reshape(-1, 10)
    out = []
    for f in range(1, frames + 1):
        r = rows[rows[:, 0] == f]
        boxes = np.c_[r[:, 2:4], r[:, 2:4] + r[:, 4:6]] * PETS_SCALE
        keep = r[:, 6] != 0
        out.append((r[keep, 1].astype(int), boxes[keep], boxes[~keep]))
    return out


def pets_frames() -> list[np.ndarray]:
    """Every frame of the PETS video."""
    source = video.open_source(str(PETS))
    try:
        return [f.pixels for f in source.frames()]
    finally:
        source.close()


def unignored(boxes: np.ndarray, ignore: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Which unmatched boxes do not lie mostly inside an ignore region."""
    if not len(ignore) or not len(boxes):
        return ~matched
    inside = overlap_of_smaller(np.concatenate((boxes, ignore)))[: len(boxes), len(boxes) :]
    return ~matched & (inside.max(axis=1) < 0.5)


def detection_scores(gt, boxes_per_frame: list[np.ndarray]) -> dict:
    """Recall, precision (IoU 0.5, one-to-one) and recall by person height band."""
    tp = fp = 0
    heights, hits = [], []
    for (_, truth, ignore), boxes in zip(gt, boxes_per_frame, strict=True):
        iou = box_iou_matrix(truth, boxes)
        rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
        good = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5]
        found, used = np.zeros(len(truth), bool), np.zeros(len(boxes), bool)
        for r, c in good:
            found[r], used[c] = True, True
        tp += len(good)
        fp += int(unignored(boxes, ignore, used).sum())
        heights.append(truth[:, 3] - truth[:, 1])
        hits.append(found)
    band = np.digitize(np.concatenate(heights), PETS_BANDS[1:])
    found_all = np.concatenate(hits)
    count = np.bincount(band, minlength=len(PETS_BANDS))
    by_band = np.bincount(band, found_all, minlength=len(PETS_BANDS)) / np.maximum(count, 1)
    return {"recall": tp / len(found_all), "precision": tp / max(tp + fp, 1),
            "boxes": len(found_all), "band_counts": count.tolist(),
            "band_recall": by_band.tolist()}  # fmt: skip


def pets_detections(tile: str | None) -> list[np.ndarray]:
    """Boxes per frame of `posecli infer`'s defaults (score 0.25) with this tile."""
    estimator = PoseEstimator(tile=None if tile is None else tile_value(tile))
    return [np.array([p.box for p in estimator.predict(f)], np.float64).reshape(-1, 4)
            for f in pets_frames()]  # fmt: skip


def pets_tracking(gt, tile: str | None) -> dict:
    """`posecli track PETS [--tile]`'s MOT rows scored: MOTA, IDF1, switches, ids."""
    args = ["track", str(PETS), "-f", "mot", "-q", *(["--tile", tile] if tile else [])]
    out = subprocess.run([sys.executable, "-m", "posecli", *args], capture_output=True,
                         check=True, text=True).stdout  # fmt: skip
    rows = np.array([line.split(",") for line in out.splitlines()], np.float64).reshape(-1, 10)
    accumulator = MotAccumulator()
    for f, (ids, truth, ignore) in enumerate(gt, 1):
        r = rows[rows[:, 0] == f]
        boxes = np.c_[r[:, 2:4], r[:, 2:4] + r[:, 4:6]]
        dist = iou_distances(truth, boxes)
        keep = unignored(boxes, ignore, np.isfinite(dist).any(axis=0)) | np.isfinite(dist).any(0)
        accumulator.update(ids, r[keep, 1], dist[:, keep])
    c = accumulator.finish()
    return {"mota": c.mota, "idf1": c.idf1, "switches": c.switches,
            "ids": len(set(rows[:, 1].tolist()))}  # fmt: skip


def pets_section(pets_gt: Path | None, cache: Path | None) -> str:
    """Markdown for the PETS video, or a note when no ground truth was given."""
    if pets_gt is None:
        return "(Not measured in this run: give `--pets-gt` the MOT15 PETS09-S2L1 gt.txt.)"
    gt = load_mot_gt(pets_gt, PETS_FRAMES)
    rows = []
    for tile in (None, TILE):
        det = cached(cache_file(cache, f"pets-det-{tile}"), lambda t=tile: pets_detections(t))
        d = detection_scores(gt, det)
        t = cached(cache_file(cache, f"pets-track-{tile}"), lambda t=tile: pets_tracking(gt, t))
        name = f"`--tile {tile}`" if tile else "whole frame only"
        bands = " | ".join(f"{100 * r:.0f} %" for r in d["band_recall"])
        rows.append(f"| {name} | {100 * d['recall']:.1f} % | {100 * d['precision']:.1f} % | "
                    f"{bands} | {100 * t['mota']:.1f} | {100 * t['idf1']:.1f} | "
                    f"{t['switches']} | {t['ids']} |")  # fmt: skip
    edges = [*PETS_BANDS[1:], None]
    bands = " | ".join(f"recall {lo}-{hi} px" if hi else f"recall {lo}+ px"
                       for lo, hi in zip(PETS_BANDS, edges, strict=True))  # fmt: skip
    bands_n = zip(PETS_BANDS, edges, d["band_counts"], strict=True)
    counts = ", ".join(f"{n} {lo}-{hi} px" if hi else f"{n} of {lo} px or more"
                       for lo, hi, n in bands_n)  # fmt: skip
    return "\n".join([
        f"{d['boxes']} annotated person boxes in {PETS_FRAMES} frames ({counts}); "
        f"{gt_people(gt)} people.",
        "",
        f"| run | recall | precision | {bands} | MOTA | IDF1 | ID switches | IDs |",
        "|---|---|---|" + "---|" * (len(PETS_BANDS) + 4),
        *rows,
    ])  # fmt: skip


def gt_people(gt) -> int:
    """How many people the ground truth has."""
    return len({int(i) for ids, _, _ in gt for i in ids})
