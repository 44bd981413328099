#!/usr/bin/env python3
"""Measures what --tile gains and costs, and writes docs/tiles.md.

- PETS street video (../shared/videos/pets-vtest.avi): detection recall and precision at box IoU
  0.5, and `posecli track`'s MOTA, IDF1 and ID switches, against a MOTChallenge ground-truth
  file of the scene given with --pets-gt (the public MOT15 PETS09-S2L1 annotations, 768x576,
  scaled to the video's 480x360; not shipped here).
- The tracking benchmark's synthetic videos (scripts/track_benchmark.py): the share of people
  found by height, and the held-out tracking scores, with and without tiles.
- COCO dev photos: keypoint AP50 (all, and large people) and small people's box AP.
- Speed: scripts/bench_tiles.py, measured in this run.

--cache keeps the detections, so a rerun on a quiet machine only re-measures the speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from posecli import PoseEstimator
from posecli.core.geometry import box_iou_matrix, overlap_of_smaller
from posecli.evaluation.coco import annotated_images, run_model
from posecli.evaluation.mot import MotAccumulator, iou_distances
from posecli.media import video
from posecli.tracking.tracker import TrackerSettings

import bench_tiles
import track_benchmark as tb

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PETS = SHARED / "videos" / "pets-vtest.avi"
PETS_SCALE = 480 / 768  # MOT15's PETS09-S2L1 is 768x576; the shared copy 480x360
PETS_BANDS = (0, 40, 60, 80)  # px, lower edges of person-height bands in the 480x360 frame
TILE = "128"


def cached(cache: Path | None, name: str, compute: Callable[[], object]) -> object:
    """compute(), kept in cache/name.pkl when a cache folder is given."""
    path = cache / f"{name}.pkl" if cache else None
    if path and path.exists():
        return pickle.loads(path.read_bytes())
    value = compute()
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(value))
    return value


# --- PETS -------------------------------------------------------------------------------------


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


def tile_value(tile: str) -> int | str:
    return tile if tile == "auto" else int(tile)


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


def pets_section(args) -> str:
    """Markdown for the PETS video, or a note when no ground truth was given."""
    if args.pets_gt is None:
        return "(Not measured in this run: give `--pets-gt` the MOT15 PETS09-S2L1 gt.txt.)"
    gt = load_mot_gt(args.pets_gt, 795)
    rows = []
    for tile in (None, TILE):
        det = cached(args.cache, f"pets-det-{tile}", lambda t=tile: pets_detections(t))
        d = detection_scores(gt, det)
        t = cached(args.cache, f"pets-track-{tile}", lambda t=tile: pets_tracking(gt, t))
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
        f"{d['boxes']} annotated person boxes in 795 frames ({counts}); {gt_people(gt)} people.",
        "",
        f"| run | recall | precision | {bands} | MOTA | IDF1 | ID switches | IDs |",
        "|---|---|---|" + "---|" * (len(PETS_BANDS) + 4),
        *rows,
    ])  # fmt: skip


def gt_people(gt) -> int:
    return len({int(i) for ids, _, _ in gt for i in ids})


# --- synthetic tracking videos ----------------------------------------------------------------


def synthetic_section(args) -> str:
    """Markdown: people found by height, and held-out tracking, with and without tiles."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tb.COCO_DIR / "person_keypoints_val2017_dev.json"))
    low = TrackerSettings().low
    plain = PoseEstimator(tb.MODEL, conf=low)
    tiled = PoseEstimator(tb.MODEL, conf=low, tile=tile_value(TILE))
    ids = tb.pick_images(coco, args.sequences)
    data = tb.load_sequences(coco, plain, ids, args.cache / "sequences" if args.cache else None)
    tiled_data = [(seq, cached(args.cache, f"synthetic-{Path(seq.name).stem}-tile{TILE}",
                               lambda s=seq: tb.detect(tiled, s.frames)))
                  for seq, _ in data]  # fmt: skip
    heights = {"whole frame only": tb.found_by_height(data, low),
               f"--tile {TILE}": tb.found_by_height(tiled_data, low)}  # fmt: skip
    lines = ["| person height (px) | scored boxes | " + " | ".join(f"found, {k}" for k in heights)
             + " |", "|---|---|" + "---|" * len(heights)]  # fmt: skip
    edges = [*tb.HEIGHT_BINS[1:], None]
    boxes = next(iter(heights.values()))[0]
    for i, (lo, hi) in enumerate(zip(tb.HEIGHT_BINS, edges, strict=True)):
        band = f"{lo}-{hi}" if hi else f"{lo} or more"
        shares = " | ".join(f"{100 * h[1][i]:.0f} %" for h in heights.values())
        lines.append(f"| {band} | {boxes[i]} | {shares} |")
    test_plain, test_tiled = data[1::2], tiled_data[1::2]
    settings = TrackerSettings()
    table = ["| held-out videos | MOTA | IDF1 | ID switches | per 10 people | false positives | "
             "misses | IDF1 on detected people | switches there | tracker ms/frame |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, chosen in (("whole frame only", test_plain), (f"--tile {TILE}", test_tiled)):
        table.append(tb.evaluate(name, settings, chosen).cells())
    bound = sum((tb.best_possible(q, d, settings) for q, d in test_tiled), tb.Bound(0, 0, 0, 0))
    people = sum(q.people for q, _ in test_tiled)
    return "\n".join([*lines, "", *table, "",
                      f"With `--tile {TILE}` the best IDF1 any tracker can reach with these "
                      f"detections (tracking.md's bound) is {100 * bound.idf1:.1f}, with at "
                      f"least {bound.forced} ID switches ({10 * bound.forced / people:.2f} per 10 "
                      "people)."])  # fmt: skip


# --- COCO -------------------------------------------------------------------------------------


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


COCO_COLUMNS = ("keypoints AP50 all", "keypoints AP50 medium", "keypoints AP50 large",
                "keypoints AP", "bbox AP small", "bbox AP50 small")  # fmt: skip


def coco_section(args) -> str:
    """Markdown: the COCO scores with and without tiles."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(SHARED / "coco" / "person_keypoints_val2017_dev.json"))
    lines = ["| run | " + " | ".join(COCO_COLUMNS) + " |", "|---|" + "---|" * len(COCO_COLUMNS)]
    for tile in (None, "auto", TILE):
        s = cached(args.cache, f"coco-{tile}", lambda t=tile: coco_scores(coco, t))
        name = f"`--tile {tile}`" if tile else "whole image only"
        cells = " | ".join("-" if s[c] is None else f"{s[c]:.1f}" for c in COCO_COLUMNS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


# --- speed and report -------------------------------------------------------------------------


def speed_section() -> str:
    """Markdown: bench_tiles' figures, measured now."""
    lines = ["| run | runs/frame | decode + prep ms | invoke ms | ceiling frames/s | "
             "`infer` frames/s | share | `track` frames/s | share | real time |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for tile in (None, TILE):
        r = bench_tiles.measure(PETS, tile)
        name = f"`--tile {tile}`" if tile else "whole frame only"
        lines.append(f"| {name} | {r['runs_per_frame']} | {r['decode_cpu_ms']:.2f} | "
                     f"{r['invoke_cpu_ms']:.1f} | {r['ceiling_fps']:.1f} | "
                     f"{r['end_to_end_fps']:.1f} | {r['ratio']:.2f} | {r['track_fps']:.1f} | "
                     f"{r['track_ratio']:.2f} | {r['track_fps'] / 10:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def versions() -> str:
    names = ("ai-edge-litert", "opencv-python-headless", "numpy", "av")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pets-gt", type=Path, help="MOT15 PETS09-S2L1 gt/gt.txt")
    parser.add_argument("--sequences", type=int, default=40, help="synthetic videos")
    parser.add_argument("--cache", type=Path, help="keep detections here")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "tiles.md")
    args = parser.parse_args()
    sections = {}
    for name, make in (("pets", pets_section), ("synthetic", synthetic_section),
                       ("coco", coco_section)):  # fmt: skip
        sections[name] = make(args)
        print(sections[name], flush=True)
    sections["speed"] = speed_section()
    print(sections["speed"])
    template = (Path(__file__).parent / "tiles_template.md").read_text()
    args.output.write_text(template.format(**sections, tile=TILE, versions=versions(),
                                           sequences=args.sequences))  # fmt: skip
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
