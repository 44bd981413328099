"""COCO keypoint and box AP with pycocotools, for an estimator run or a saved results file."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posecli.core.errors import AnnotationError, ImageError
from posecli.core.filekinds import not_regular_reason
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, Pose
from posecli.estimator import PoseEstimator
from posecli.evaluation.coco_checks import (
    IMAGE_FIELDS,
    annotation_fields,
    check_entries,
    is_id,
    result_fields,
)
from posecli.output.writers import coco_detections, coco_image_id

METRICS = ("AP", "AP50", "AP75", "APm", "APl", "AR")
# Positions of METRICS in COCOeval.stats for each iouType.
STAT_INDEX = {"keypoints": (0, 1, 2, 3, 4, 5), "bbox": (0, 1, 2, 4, 5, 8)}


@dataclass(frozen=True)
class EvalImage:
    """One annotated image: its COCO id and where its file should be."""

    image_id: int
    path: Path


@dataclass
class EvalResult:
    """Scores (in %) for one model, with the settings and images behind them."""

    model: str
    settings: dict
    images: int
    keypoints: Mapping[str, float | None]
    bbox: Mapping[str, float | None]
    failed: list[tuple[str, str]] = field(default_factory=list)
    metric: str = "coco"

    def to_dict(self) -> dict:
        """The --json form; ST's metric has no box scores."""
        boxes = {"bbox": self.bbox} if self.metric == "coco" else {}
        return {
            "model": self.model,
            "metric": self.metric,
            "settings": self.settings,
            "images": self.images,
            "keypoints": self.keypoints,
            **boxes,
            "failed": len(self.failed),
        }


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """pycocotools prints progress on stdout; keep it off ours."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_annotations(path: Path) -> COCO:
    """Load a COCO keypoints annotation file, refusing anything else with a clear reason."""
    data = read_json(path)
    check_keypoint_dataset(path, data)
    coco = COCO()
    coco.dataset = data
    with _quiet_stdout():
        coco.createIndex()
    return coco


def read_json(path: Path, lines: bool = False) -> object:
    """A JSON file's content (with `lines`, JSON Lines too, and any object alone, as a list of
    records); a FIFO or device is refused rather than read (it may never end)."""
    reason = not_regular_reason(path)
    if reason:
        raise AnnotationError(f"{path}: {reason}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read as JSON ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        if lines:
            with contextlib.suppress(ValueError):
                return [json.loads(line) for line in text.splitlines() if line.strip()]
        raise AnnotationError(f"{path}: cannot read as JSON ({exc})") from exc
    return [data] if lines and isinstance(data, dict) else data


def check_keypoint_dataset(path: Path, data: object) -> None:
    """A COCO keypoints file has images, annotations and a category with keypoints."""
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise AnnotationError(
            f"{path}: not a COCO annotation file (needs images, annotations, categories)"
        )
    category = next((c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")),
                    None)  # fmt: skip
    if category is None or not isinstance(category["keypoints"], list):
        raise AnnotationError(f"{path}: not a COCO keypoints file (no category with keypoints)")
    if not is_id(category.get("id")):
        raise AnnotationError(f"{path}: the keypoints category has no integer id")
    check_entries(path, "image", data["images"], IMAGE_FIELDS)
    check_entries(path, "annotation", data["annotations"], {"category_id": (is_id, "an integer")})
    keyed = [a for a in data["annotations"] if a["category_id"] == category["id"]]
    check_entries(path, "annotation", keyed, annotation_fields(len(category["keypoints"])))
    image_ids = {img.get("id") for img in data["images"]}
    stray = next((a for a in data["annotations"] if a.get("image_id") not in image_ids), None)
    if stray is not None:
        raise AnnotationError(
            f"{path}: annotation {stray.get('id')} has image_id {stray.get('image_id')}, "
            "which no image in the file has"
        )


def keypoint_category(coco: COCO) -> tuple[int, int]:
    """The id and keypoint count K of the (first) annotated category with keypoints."""
    category = next(c for c in coco.dataset["categories"] if c.get("keypoints"))
    return int(category["id"]), len(category["keypoints"])


def check_keypoint_count(path: Path, coco: COCO, spec: KeypointSpec, what: str) -> None:
    """Refuse to score keypoints of a model or spec (`what`) whose K differs from the file's."""
    count = keypoint_category(coco)[1]
    if count != spec.count:
        raise AnnotationError(
            f"{path}: the annotations have {count} keypoints per object, "
            f"but {what} has {spec.count}"
        )


def annotated_images(coco: COCO, images_dir: Path, limit: int | None = None) -> list[EvalImage]:
    """Every image of the annotation file (the first `limit` by id), with its expected path."""
    ids = sorted(coco.getImgIds())[:limit]
    return [EvalImage(i, images_dir / coco.imgs[i]["file_name"]) for i in ids]


def run_model(
    estimator: PoseEstimator,
    coco: COCO,
    items: list[EvalImage],
    track: Callable[[Iterator[ImageResult]], Iterable[ImageResult]] = lambda r: r,
) -> tuple[list[dict], list[int], list[tuple[str, str]]]:
    """COCO detections for the images, the ids that were run, and the (path, reason) failures.

    Image entries that name the same file (under different ids) share its one run.
    """
    by_path: dict[str, list[int]] = {}
    for item in items:
        by_path.setdefault(str(item.path), []).append(item.image_id)
    category = keypoint_category(coco)[0]
    detections: list[dict] = []
    done: list[int] = []
    failed: list[tuple[str, str]] = []
    for result in track(estimator.predict_files(by_path)):
        if not result.ok:
            failed.append((result.path, result.error or "failed"))
            continue
        for image_id in by_path[result.path]:
            done.append(image_id)
            detections.extend(coco_detections(result.poses, image_id, category))
    return detections, done, failed


def load_results(path: Path, coco: COCO, warn: Callable[[str], None]) -> list[dict]:
    """A COCO results file, or posecli's json or jsonl (`warn` is told of its failed inputs),
    whose every image_id is in the annotations; a result without a category_id is taken as
    one of the annotations' keypoint category."""
    results = read_json(path, lines=True)
    if is_posecli_results(results):
        results = posecli_detections(path, results, warn)
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and {"image_id", "keypoints", "score"} <= r.keys() for r in results
    ):
        raise AnnotationError(f"{path}: not a COCO keypoint results list")
    category, count = keypoint_category(coco)
    results = [{"category_id": category, **r} for r in results]
    values = 3 * count
    lists = (r for r in results if isinstance(r["keypoints"], list))
    odd = next((r for r in lists if len(r["keypoints"]) != values), None)
    if odd is not None:
        raise AnnotationError(
            f"{path}: a result for image_id {odd['image_id']} has {len(odd['keypoints'])} "
            f"keypoint values; the annotations need {values} (3 per keypoint)"
        )
    check_entries(path, "result", results, result_fields(count), optional=("bbox",))
    unknown = sorted({r["image_id"] for r in results} - set(coco.getImgIds()))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise AnnotationError(
            f"{path}: image_id {unknown[0]}{more} matches no annotated image; were the ids "
            "taken from other file names?"
        )
    return results


def is_posecli_results(records: object) -> TypeGuard[list[dict]]:
    """Whether a results file's content is posecli's json or jsonl: records with an "image"."""
    return isinstance(records, list) and all(isinstance(r, dict) and "image" in r for r in records)


def posecli_detections(path: Path, records: list[dict], warn: Callable[[str], None]) -> list[dict]:
    """The COCO results of posecli's image records, image_id from each file name's number as
    -f coco derives it; records of failed inputs are left out (`warn` says how many)."""
    detections: list[dict] = []
    names: dict[int, str] = {}
    for record in records:
        if "error" in record:
            continue
        where = f"{path}: {record['image']}"
        if "frame" in record:
            raise AnnotationError(f"{where}: a video frame has no COCO image_id")
        try:
            image_id = coco_image_id(record["image"])
            poses = [Pose(p["score"], np.array(p["box"], float),
                          np.array(p["keypoints"], float)) for p in record["poses"]]  # fmt: skip
        except ImageError as exc:
            raise AnnotationError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{where}: not a posecli record with poses") from None
        if names.setdefault(image_id, record["image"]) != record["image"]:
            raise AnnotationError(f"{where}: image_id {image_id} is {names[image_id]}'s too")
        detections.extend(coco_detections(poses, image_id))
    failed = sum("error" in r for r in records)
    if failed:
        warn(f"{path}: inputs that failed (error records: {failed}) count as having no people")
    return detections


def images_after_last_result(results: list[dict], image_ids: list[int]) -> list[int]:
    """The image ids (of `image_ids`, in id order) after the last one that has a result."""
    covered = {r["image_id"] for r in results}
    last = max((i for i, image_id in enumerate(image_ids) if image_id in covered), default=-1)
    return image_ids[last + 1 :]


def score(
    coco: COCO, detections: list[dict], image_ids: list[int], sigmas: np.ndarray
) -> dict[str, dict[str, float | None]]:
    """Keypoint (OKS with these sigmas) and box AP/AR in % over image_ids; None where
    pycocotools has nothing to score (no person of that size: APm, APl), also with no
    detection at all."""
    scores: dict[str, dict[str, float | None]] = {}
    category, count = keypoint_category(coco)
    if not detections and image_ids:  # loadRes takes no empty list: one that matches nobody
        detections = [{"image_id": image_ids[0], "category_id": category, "score": 1e-9,
                       "bbox": [0, 0, 1, 1], "keypoints": [0.0] * (3 * count)}]  # fmt: skip
    for iou_type, index in STAT_INDEX.items():
        if not detections:
            scores[iou_type] = dict.fromkeys(METRICS)
            continue
        with _quiet_stdout():
            dt = coco.loadRes([dict(d) for d in detections])
            evaluator = COCOeval(coco, dt, iou_type)
            evaluator.params.imgIds = sorted(image_ids)
            evaluator.params.catIds = [category]
            evaluator.params.kpt_oks_sigmas = sigmas
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = evaluator.stats
        scores[iou_type] = {
            m: round(100 * float(stats[i]), 2) if stats[i] >= 0 else None
            for m, i in zip(METRICS, index, strict=True)
        }
    return scores


def _cell(value: float | None) -> str:
    """A score in a table column; '-' where it is undefined."""
    return f"{'-':>7}" if value is None else f"{value:>7.1f}"


def format_table(results: list[EvalResult]) -> str:
    """One row per model: keypoint then box metrics, in %."""
    head = f"{'model':<22}{'resize':<10}{'images':>7}  "
    metrics = "".join(f"{m:>7}" for m in METRICS)
    lines = [
        f"{'':<41}{'keypoints':<42}box",
        f"{head}{metrics} {metrics}",
    ]
    for r in results:
        kp = "".join(_cell(r.keypoints[m]) for m in METRICS)
        bx = "".join(_cell(r.bbox[m]) for m in METRICS)
        lines.append(f"{r.model:<22}{r.settings['resize']:<10}{r.images:>7}  {kp} {bx}")
    return "\n".join(lines)
