"""A deliberately plain re-implementation of ST's card metric and pipeline, to check posecli's.

Written from ST's description (stm32ai-modelzoo-services, pose_estimation/) with loops and no
posecli code: JSON annotations, TensorFlow-style half-pixel nearest resize by index arithmetic,
the raw interpreter, greedy NMS on normalised boxes, OKS, ST's rank-based matching and its
sentinel-ramp AP.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np

SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
          0.107, 0.107, 0.087, 0.087, 0.089, 0.089]  # fmt: skip


def ground_truth(annotation_file: Path) -> list[dict]:
    """ST's converter: kept images (a kept person with a labelled keypoint), sorted, shuffled."""
    data = json.loads(Path(annotation_file).read_text())
    images = []
    for info in data["images"]:
        people = []
        for ann in data["annotations"]:
            if ann["image_id"] != info["id"] or ann.get("iscrowd", 0):
                continue
            w, h = ann["bbox"][2:4]
            if w <= 0 or h <= 0:
                continue
            kpts = []
            for k in range(17):
                kx, ky, v = ann["keypoints"][3 * k : 3 * k + 3]
                kpts.append((kx / info["width"], ky / info["height"], 1 if v >= 1 else 0))
            people.append({"kpts": kpts, "area": w * h / (info["width"] * info["height"])})
        labelled = sum(v for p in people for _, _, v in p["kpts"])
        if labelled >= 1:
            images.append({"file_name": info["file_name"], "people": people})
    images.sort(key=lambda im: im["file_name"])
    np.random.RandomState(123).shuffle(images)
    return images


def tf_nearest_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow's nearest resize: source index floorf((i + 0.5f) * (in / out)) in float32."""
    h, w = rgb.shape[:2]
    half = np.float32(0.5)
    scale_y, scale_x = np.float32(h) / np.float32(size), np.float32(w) / np.float32(size)
    rows = [min(math.floor((np.float32(i) + half) * scale_y), h - 1) for i in range(size)]
    cols = [min(math.floor((np.float32(j) + half) * scale_x), w - 1) for j in range(size)]
    out = np.zeros((size, size, 3), np.uint8)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[i, j] = rgb[r, c]
    return out


@cache
def interpreter(model_path: Path):
    """A TFLite interpreter for the model, allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    return interp


def run_model(model_path: Path, rgb: np.ndarray) -> np.ndarray:
    """The (56, F) dequantised output of the TFLite model for one (S, S, 3) uint8 input."""
    interp = interpreter(model_path)
    interp.set_tensor(interp.get_input_details()[0]["index"], rgb[None])
    interp.invoke()
    detail = interp.get_output_details()[0]
    raw = interp.get_tensor(detail["index"])[0]
    scale, zero = detail["quantization"]
    return raw.astype(np.float32) if raw.dtype == np.float32 else (raw - zero) * scale


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def card_postprocess(output: np.ndarray) -> list[dict]:
    """Score > 0.001, greedy NMS at IoU 0.1 on normalised boxes, at most 100 people."""
    cands = []
    for f in range(output.shape[1]):
        score = float(output[4, f])
        if score > 0.001:
            cx, cy, w, h = (float(v) for v in output[:4, f])
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            kpts = [(float(output[5 + 3 * k, f]), float(output[6 + 3 * k, f])) for k in range(17)]
            cands.append((score, f, box, kpts))
    cands.sort(key=lambda c: (-c[0], c[1]))
    kept: list[tuple] = []
    for cand in cands:
        if len(kept) == 100:
            break
        if all(iou(cand[2], k[2]) <= 0.1 for k in kept):
            kept.append(cand)
    return [{"score": c[0], "kpts": c[3]} for c in kept]


def oks(person: dict, kpts: list[tuple[float, float]]) -> float:
    """ST's OKS: area x 0.53, visible keypoints only."""
    total, count = 0.0, 0
    for k, (gx, gy, v) in enumerate(person["kpts"]):
        if v:
            d2 = (gx - kpts[k][0]) ** 2 + (gy - kpts[k][1]) ** 2
            total += math.exp(-d2 / ((2 * SIGMAS[k]) ** 2 * (person["area"] * 0.53 + 1e-7) * 2))
            count += 1
    return total / (count + 1e-7)


def match(people: list[dict], preds: list[dict]) -> list[float]:
    """Per prediction: the OKS with the ground truth that kept it, else 0 (ranks over all pairs)."""
    pairs = [(oks(p, d["kpts"]), n * len(preds) + m, n, m)
             for n, p in enumerate(people) for m, d in enumerate(preds)]  # fmt: skip
    rank = {}
    for r, pair in enumerate(sorted(pairs, key=lambda q: (q[0], q[1]))):
        rank[(pair[2], pair[3])] = r
    choice = {}
    for m in range(len(preds)):
        choice[m] = max(range(len(people)), key=lambda n: rank[(n, m)])
    result = []
    for m in range(len(preds)):
        n = choice[m]
        rivals = [r for r in range(len(preds)) if choice[r] == n]
        best = max(rivals, key=lambda r: rank[(n, r)])
        result.append(next(q[0] for q in pairs if q[2] == n and q[3] == m) if best == m else 0.0)
    return result


def average_precision(hits: list[tuple[float, bool]], n_gt: int) -> float:
    """Sentinels, precision envelope, linear interpolation at 101 recalls, trapezoids."""
    order = sorted(range(len(hits)), key=lambda i: (hits[i][0], i))[::-1]
    recalls, precisions, tp = [0.0], [1.0], 0
    for rank, i in enumerate(order, start=1):
        tp += hits[i][1]
        recalls.append(tp / (n_gt + 1e-7))
        precisions.append(tp / (rank + 1e-7))
    recalls.append(1.0)
    precisions.append(0.0)
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    points: dict[float, float] = {}
    for r, p in zip(recalls, precisions, strict=True):
        points.setdefault(r, p)
    xs = sorted(points)
    curve = [float(np.interp(t / 100, xs, [points[x] for x in xs])) for t in range(101)]
    return sum((curve[t] + curve[t + 1]) / 2 * 0.01 for t in range(100))


def card_ap50(model_path: Path, annotation_file: Path, images_dir: Path) -> float:
    """The card's AP50 (in %) of a model on the annotated images, with the card's pipeline."""
    size = int(interpreter(model_path).get_input_details()[0]["shape"][1])
    hits, n_gt = [], 0
    for image in ground_truth(annotation_file):
        rgb = cv2.cvtColor(cv2.imread(str(images_dir / image["file_name"])), cv2.COLOR_BGR2RGB)
        preds = card_postprocess(run_model(model_path, tf_nearest_resize(rgb, size)))
        n_gt += sum(any(any(v) for v in p["kpts"]) for p in image["people"])
        for d, value in zip(preds, match(image["people"], preds), strict=True):
            hits.append((d["score"], value > 0.5))
    return 100 * average_precision(hits, n_gt)
