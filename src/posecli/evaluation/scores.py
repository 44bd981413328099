"""Scoring detections under the chosen metric (COCO's, or the model card's), with the OKS
sigmas of a keypoint spec; the checks before scoring."""

from __future__ import annotations

from pathlib import Path

from posecli.core import files
from posecli.core.errors import PoseCliError
from posecli.core.keypoints import KeypointSpec, default_for, load_spec
from posecli.evaluation import coco as evaluate
from posecli.evaluation import st_metric


def refuse_overwriting(output: Path, inputs: list[Path]) -> None:
    """--save-results may not replace the annotation file or an image of the run (by inode)."""
    output_id = files.identity(output)
    if output_id is not None and any(files.identity(path) == output_id for path in inputs):
        raise PoseCliError(f"{output}: --save-results would write over an input of the run")


def results_spec(coco, annotations: Path, kpt_spec: str | None) -> KeypointSpec:
    """The spec whose sigmas score a results file: --kpt-spec's, else the built-in one for K."""
    count = evaluate.keypoint_category(coco)[1]
    spec = load_spec(kpt_spec) if kpt_spec else default_for(count)
    evaluate.check_keypoint_count(annotations, coco, spec, f"keypoint spec {spec.source}")
    return spec


def scored(name, settings, coco, detections, image_ids, metric, spec: KeypointSpec,
           failed=()) -> evaluate.EvalResult:  # fmt: skip
    """An EvalResult with the chosen metric's scores (OKS with the spec's sigmas)."""
    if metric == "st":
        kpt_scores, count = st_metric.score(coco, detections, image_ids, spec.oks_sigmas())
        return evaluate.EvalResult(name, settings, count, kpt_scores, {}, list(failed), metric)
    scores = evaluate.score(coco, detections, image_ids, spec.oks_sigmas())
    return evaluate.EvalResult(name, settings, len(image_ids), scores["keypoints"],
                               scores["bbox"], list(failed))  # fmt: skip
