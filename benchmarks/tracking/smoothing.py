"""What keypoint smoothing does: jitter on a still camera, lag behind the camera's motion, and
keypoint AP50 of the tracked poses."""

from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
from pycocotools.coco import COCO
from scipy.optimize import linear_sum_assignment

from benchmarks.tracking.clips import Clip
from benchmarks.tracking.scoring import MATCH_IOU, boxes_of, run_tracker
from benchmarks.tracking.synthesis import HEIGHT, WIDTH, Sequence, Truth
from posecli.core.geometry import box_iou_matrix
from posecli.core.keypoints import COCO17
from posecli.core.results import Pose
from posecli.evaluation.coco import score as coco_score
from posecli.output.writers import coco_detections
from posecli.tracking.tracker import TrackerSettings

CONFIDENT = 0.5  # keypoint confidence from which a keypoint is measured


def match_to_truth(poses: list[Pose], truth: Truth) -> list[tuple[int, int]]:
    """(pose, person row) pairs matched at box IoU >= MATCH_IOU."""
    if not poses or not len(truth.ids):
        return []
    iou = box_iou_matrix(truth.boxes, boxes_of(poses))
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [(int(c), int(r)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= MATCH_IOU]


def lag_frames(sequences: list[Sequence], outputs: list[list[list[Pose]]]) -> float:
    """How many frames the output keypoints trail the true motion: least squares of the error
    against the true velocity, over keypoints seen by both (confidence >= CONFIDENT)."""
    num = den = 0.0
    for seq, out in zip(sequences, outputs, strict=True):
        a, b = lag_sums(seq, out)
        num, den = num + a, den + b
    return -num / den if den else float("nan")


def lag_sums(seq: Sequence, outputs: list[list[Pose]]) -> tuple[float, float]:
    """Sums of error . velocity and velocity . velocity over one sequence."""
    num = den = 0.0
    for f in range(1, len(outputs) - 1):
        truth = seq.truth[f]
        step = (seq.mats[f + 1] - seq.mats[f - 1]) / 2  # per frame, photo to frame
        inverse_scale = 1 / seq.mats[f][0, 0]
        for k, row in match_to_truth(outputs[f], truth):
            pose, gt = outputs[f][k], truth.keypoints[row]
            ok = (gt[:, 2] > 0) & (pose.keypoints[:, 2] >= CONFIDENT)
            photo = (gt[ok, :2] - seq.mats[f][:, 2]) * inverse_scale
            velocity = photo * step[0, 0] + step[:, 2]
            error = pose.keypoints[ok, :2] - gt[ok, :2]
            num += float((error * velocity).sum())
            den += float((velocity * velocity).sum())
    return num, den


def keypoint_ap50(sequences: list[Sequence], outputs: list[list[list[Pose]]]) -> float:
    """Keypoint AP50 (pycocotools) over every frame of the sequences."""
    images, anns, dets = [], [], []
    for seq, out in zip(sequences, outputs, strict=True):
        for truth, poses in zip(seq.truth, out, strict=True):
            image_id = len(images) + 1
            images.append({"id": image_id, "width": WIDTH, "height": HEIGHT})
            anns += frame_annotations(truth, image_id, first_id=len(anns) + 1)
            dets.extend(coco_detections(poses, image_id))
    coco = COCO()
    person = {"id": 1, "name": "person", "keypoints": [""] * 17}
    coco.dataset = {"images": images, "annotations": anns, "categories": [person]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    ids = [i["id"] for i in images]
    return coco_score(coco, dets, ids, COCO17.oks_sigmas())["keypoints"]["AP50"]


def frame_annotations(truth: Truth, image_id: int, first_id: int) -> list[dict]:
    """COCO annotations of one frame: its scored people, then its ignore and crowd regions as
    crowd annotations."""
    anns = []
    for box, kpts, area in zip(truth.boxes, truth.keypoints, truth.areas, strict=True):
        anns.append(annotation(first_id + len(anns), image_id, box, kpts, area, crowd=False))
    for box in np.concatenate((truth.ignore, truth.crowd)):
        area = float(np.prod(box[2:] - box[:2]))
        anns.append(annotation(first_id + len(anns), image_id, box, np.zeros((17, 3)), area,
                               crowd=True))  # fmt: skip
    return anns


def annotation(ann_id, image_id, box, kpts, area, crowd: bool) -> dict:
    """A COCO person annotation."""
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": int(crowd),
        "bbox": [*box[:2].tolist(), *(box[2:] - box[:2]).tolist()], "area": float(area),
        "keypoints": (kpts * [1, 1, 2]).ravel().tolist(), "num_keypoints": int(kpts[:, 2].sum()),
    }  # fmt: skip


def keypoint_moves(tracked: list[list[Pose]]) -> list[np.ndarray]:
    """Per pair of frames, how far (px) each tracked person's confident keypoints moved."""
    moves = []
    for before, after in itertools.pairwise(tracked):
        last = {p.track_id: p.keypoints for p in before}
        for p in after:
            if p.track_id in last:
                a, b = last[p.track_id], p.keypoints
                ok = (a[:, 2] >= CONFIDENT) & (b[:, 2] >= CONFIDENT)
                moves.append(np.linalg.norm(b[ok, :2] - a[ok, :2], axis=1))
    return moves


def still_jitter(clips: list[Clip]) -> tuple[float, float]:
    """Mean frame-to-frame keypoint movement (px) of tracked people in still-camera clips,
    without and with smoothing."""
    moves: dict[bool, list[np.ndarray]] = {False: [], True: []}
    for clip in clips:
        for smooth in (False, True):
            out, _ = run_tracker(clip.detections, TrackerSettings(), smooth, clip.camera.transforms)
            moves[smooth] += keypoint_moves(out)
    raw, smoothed = (float(np.concatenate(moves[s]).mean()) for s in (False, True))
    return raw, smoothed
