"""An independent, deliberately plain implementation of the pipeline, to check posecli against.

Written from the model description alone: cv2.imread, a canvas-and-paste letterbox (or a
stretch) with the bit-exact bilinear resize posecli documents, the raw LiteRT interpreter, and
per-candidate Python loops for decoding and NMS.
"""

from __future__ import annotations

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

EXACT = cv2.INTER_LINEAR_EXACT
REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class ReferencePose:
    """Straightforward pose estimator: one image at a time, no vectorisation."""

    def __init__(
        self, model_path, conf=0.25, iou=0.7, max_det=100, resize="letterbox", reduced=False
    ):
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=2)
        self.interpreter.allocate_tensors()
        self.size = int(self.interpreter.get_input_details()[0]["shape"][1])
        self.conf, self.iou, self.max_det, self.resize = conf, iou, max_det, resize
        self.reduced = reduced

    def __call__(self, image_path) -> list[dict]:
        """People in the image: dicts with score, box [x1, y1, x2, y2], keypoints 17 x [x, y, c]."""
        img = cv2.imread(str(image_path))
        h, w = img.shape[:2]
        S = self.size
        f = self.reduction(w, h) if self.reduced else 1
        if f > 1:
            img = cv2.imread(str(image_path), REDUCED_FLAGS[f])
        w_in, h_in = img.shape[1], img.shape[0]
        if self.resize == "letterbox":
            r = min(S / w_in, S / h_in)
            nw, nh = round(w_in * r), round(h_in * r)
            canvas = np.full((S, S, 3), 114, dtype=np.uint8)
            dx, dy = (S - nw) // 2, (S - nh) // 2
            canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(img, (nw, nh), interpolation=EXACT)
            sx, sy = nw / w_in, nh / h_in
        else:
            canvas = cv2.resize(img, (S, S), interpolation=EXACT)
            dx = dy = 0
            sx, sy = S / w_in, S / h_in
        inp = np.ascontiguousarray(canvas[:, :, ::-1])[np.newaxis]
        self.interpreter.set_tensor(self.interpreter.get_input_details()[0]["index"], inp)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.interpreter.get_output_details()[0]["index"])[0]

        dets = []
        for j in range(out.shape[1]):
            score = float(out[4, j])
            if not score > self.conf:
                continue
            cx, cy, bw, bh = (float(v) * S for v in out[0:4, j])
            kpts = [
                [
                    float(out[5 + 3 * k, j]) * S,
                    float(out[6 + 3 * k, j]) * S,
                    float(out[7 + 3 * k, j]),
                ]
                for k in range(17)
            ]
            dets.append(
                {
                    "score": score,
                    "box": [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2],
                    "keypoints": kpts,
                }
            )
        dets.sort(key=lambda d: -d["score"])
        kept = []
        for d in dets:
            if len(kept) == self.max_det:
                break
            if all(iou(d["box"], k["box"]) <= self.iou for k in kept):
                kept.append(d)

        def back(x, y):
            return (min(max((x - dx) / sx * f, 0.0), w), min(max((y - dy) / sy * f, 0.0), h))

        people = []
        for d in kept:
            x1, y1 = back(d["box"][0], d["box"][1])
            x2, y2 = back(d["box"][2], d["box"][3])
            kpts = [[*back(x, y), c] for x, y, c in d["keypoints"]]
            people.append({"score": d["score"], "box": [x1, y1, x2, y2], "keypoints": kpts})
        return people

    def reduction(self, w: int, h: int) -> int:
        """JPEG scale-down 8, 4 or 2, the largest that leaves the image twice its resize; else 1."""
        S = self.size
        if self.resize == "letterbox":
            r = min(S / w, S / h)
            need_w, need_h = round(w * r), round(h * r)
        else:
            need_w, need_h = S, S
        for f in (8, 4, 2):
            if w / f >= 2 * need_w and h / f >= 2 * need_h:
                return f
        return 1


def iou(a, b) -> float:
    """IoU of two [x1, y1, x2, y2] boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(reference: list[dict], found: list[dict]) -> list[tuple[dict, dict | None, float]]:
    """Pair each reference person with the found person of highest box IoU."""
    pairs = []
    for r in reference:
        best = max(found, key=lambda f: iou(r["box"], f["box"]), default=None)
        pairs.append((r, best, iou(r["box"], best["box"]) if best else 0.0))
    return pairs
