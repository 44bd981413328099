"""COCO dev photos with and without tiles: keypoint AP50 by area and small people's box AP."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from benchmarks.tiles import SHARED, TILE, cache_file, tile_value
from benchmarks.tracking.cache import cached
from benchmarks.tracking.synthesis import load_coco
from posecli import PoseEstimator
from posecli.evaluation.coco import annotated_images, run_model

COCO_COLUMNS = ("keypoints AP50 all", "keypoints AP50 medium", "keypoints AP50 large",
                "keypoints AP", "bbox AP small", "bbox AP50 small")  # fmt: skip


def coco_scores(coco: COCO, tile: str | None) -> dict:
    """Keypoint AP50 (all, medium, large) and box AP and AP50 of small people, in %."""
    estimator = PoseEstimator(conf=0.001, tile=None if tile is None else tile_value(tile))
    items = annotated_images(coco, SHARED / "coco" / "val2017")
    detections, done, _ = run_model(estimator, coco, items)
    scores = {}
    for iou_type in ("keypoints", "bbox"):
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(coco, coco.loadRes([dict(d) for d in detections]), iou_type)
            evaluator.params.imgIds = sorted(done)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        precision = evaluator.eval["precision"]  # [IoU, recall, class, area, max dets]
        for a, area in enumerate(evaluator.params.areaRngLbl):
            p = precision[0, :, 0, a, -1]
            p = p[p > -1]
            scores[f"{iou_type} AP50 {area}"] = 100 * float(p.mean()) if p.size else None
        scores[f"{iou_type} AP"] = 100 * float(evaluator.stats[0])
        scores[f"{iou_type} AP small"] = 100 * float(evaluator.stats[3])
    return scores


def coco_section(cache: Path | None) -> str:
    """Markdown: the COCO scores with and without tiles."""
    coco = load_coco()
    lines = ["| run | " + " | ".join(COCO_COLUMNS) + " |", "|---|" + "---|" * len(COCO_COLUMNS)]
    for tile in (None, "auto", TILE):
        s = cached(cache_file(cache, f"coco-{tile}"), lambda t=tile: coco_scores(coco, t))
        name = f"`--tile {tile}`" if tile else "whole image only"
        cells = " | ".join("-" if s[c] is None else f"{s[c]:.1f}" for c in COCO_COLUMNS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
