"""`posecli eval`: COCO keypoint and box AP (or ST's card metric) of models or a results file."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path

import click

from posecli.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    echo,
    error,
    info,
    warning,
    with_progress,
)
from posecli.cli.options import build_estimator, conf_option, model_choice, pipeline_options
from posecli.core import files
from posecli.core.errors import OutputError, PoseCliError
from posecli.core.files import write_bytes_atomic
from posecli.core.keypoints import KeypointSpec
from posecli.core.text import printable_path
from posecli.evaluation import coco as evaluate
from posecli.evaluation import st_metric
from posecli.evaluation.scores import refuse_overwriting, results_spec, scored
from posecli.model import registry as models

TAIL_WARNING = 0.1  # share of the images after the last result that calls for a warning


@click.command(name="eval")
@click.option(
    "--annotations",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="COCO person keypoints annotation file.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the annotated images.",
)
@click.option(
    "--results",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score this COCO results file (or posecli's json or jsonl of COCO images) instead of "
    "running a model.",
)
@click.option(
    "-m",
    "--model",
    "model_names",
    multiple=True,
    help="Model name or .tflite or .onnx path; repeat for a row per model.",
)
@click.option(
    "--imgsz",
    type=click.Choice(["192", "256", "320"]),
    default=None,
    help="Pick the yolov8n-pose model with this input size.",
)
@click.option("--all-models", is_flag=True, help="A row for every model in the manifest.")
@click.option(
    "--metric",
    type=click.Choice(("coco", "st")),
    default="coco",
    show_default=True,
    help="coco: pycocotools; st: the metric of ST's model card (its images, matching and AP).",
)
@pipeline_options
@conf_option(default=0.001)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images.")
@click.option(
    "--save-results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the COCO results of the (single) model to FILE.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model, for scripts.")
@click.option("-q", "--quiet", is_flag=True, help="Nothing on standard error but errors.")
def eval_command(annotations, images_dir, results, model_names, imgsz, all_models, metric,
                 limit, save_results, as_json, quiet, **options) -> int:  # fmt: skip
    """Keypoint and box AP of models (or a results file): pycocotools, or ST's card metric."""
    if results is not None and (model_names or imgsz or all_models or save_results or images_dir):
        raise click.UsageError(
            "--results scores a results file: -m, --imgsz, --all-models, --save-results and "
            "--images do not apply"
        )
    if imgsz and (model_names or all_models):
        raise click.UsageError("give either -m/--model, --all-models or --imgsz, not two")
    coco = evaluate.load_annotations(annotations)
    if results is not None:
        spec = results_spec(coco, annotations, options["kpt_spec"])
        print_eval([score_results_file(coco, results, limit, metric, spec, quiet)], as_json)
        return EXIT_OK
    if images_dir is None:
        raise click.UsageError("--images DIR is needed unless --results is given")
    names = list(model_names) or [model_choice(None, imgsz)]
    if all_models:
        names = list(models.load_manifest()[1])
    if save_results and len(names) > 1:
        raise click.UsageError("--save-results takes a single model")
    items = evaluate.annotated_images(coco, images_dir, limit)
    if metric == "st":
        kept = {im.image_id for im in st_metric.kept_images(coco, [i.image_id for i in items])}
        items = [item for item in items if item.image_id in kept]
        if not items:
            raise PoseCliError(f"{annotations}: no image passes the card metric's filter (an "
                               "image with at least one person with keypoints)")  # fmt: skip
    if save_results:
        refuse_overwriting(save_results, [annotations, *(item.path for item in items)])
        files.check_writable(save_results)
    present = [item for item in items if item.path.is_file()]
    missing = [item for item in items if not item.path.is_file()]
    if not present:
        raise PoseCliError(f"{images_dir}: none of the {len(items)} annotated images is there")
    if missing:
        error(missing_summary(images_dir, missing, len(items)))
    rows, refused = [], 0
    for name in names:
        try:
            rows.append(evaluate_model(coco, annotations, present, name, metric, options,
                                       save_results, quiet))  # fmt: skip
        except OutputError:
            raise
        except PoseCliError as exc:  # one bad model of several: a line, and the others' rows
            error(str(exc))
            refused += 1
    if rows:
        print_eval(rows, as_json)
    if refused:
        return EXIT_USAGE
    return EXIT_FAILED if missing or any(r.failed for r in rows) else EXIT_OK


def evaluate_model(coco, annotations, items, name, metric, options, save_results,
                   quiet) -> evaluate.EvalResult:  # fmt: skip
    """Run one model over the annotated images and score it with its spec's OKS sigmas."""
    estimator = build_estimator(model=name, **options)
    spec = estimator.keypoint_spec
    evaluate.check_keypoint_count(annotations, coco, spec, f"model {estimator.model_name}")
    limits = ("max_pixels", "max_bytes")
    settings = {k: v for k, v in asdict(estimator.settings).items() if k not in limits}
    differences = st_metric.card_differences(settings) if metric == "st" else []
    if differences:
        info(f"posecli: not the model card's setup: {', '.join(differences)}", quiet)
    track = partial(with_progress, total=len(items), quiet=quiet, label=estimator.model_name)
    detections, done, failed = evaluate.run_model(estimator, coco, items, track)
    for path, reason in failed:
        error(f"{printable_path(path)}: {reason}")
    if not done:
        raise PoseCliError(f"{annotations}: none of the {len(items)} annotated images could be "
                           "read, so there is nothing to score")  # fmt: skip
    if save_results:
        write_bytes_atomic(save_results, json.dumps(detections).encode())
    return scored(estimator.model_name, settings, coco, detections, done, metric, spec, failed)


def missing_summary(images_dir: Path, missing: list[evaluate.EvalImage], total: int) -> str:
    """One line for the annotated images not found: how many, and the first few names."""
    names = ", ".join(printable_path(item.path.name) for item in missing[:3])
    more = ", ..." if len(missing) > 3 else ""
    return (f"{images_dir}: {len(missing)} of the {total} annotated images not found "
            f"({names}{more}); scoring the rest")  # fmt: skip


def score_results_file(coco, results: Path, limit: int | None, metric: str,
                       spec: KeypointSpec, quiet: bool) -> evaluate.EvalResult:  # fmt: skip
    """Score an existing COCO results file against the annotations (the first `limit` by id)."""
    detections = evaluate.load_results(results, coco, partial(warning, quiet=quiet))
    image_ids = sorted(coco.getImgIds())[:limit]
    warn_of_a_missing_tail(results, detections, image_ids, quiet)
    settings = {"results": str(results), "resize": "-"}
    return scored(results.name, settings, coco, detections, image_ids, metric, spec)


def warn_of_a_missing_tail(results: Path, detections: list[dict], image_ids: list[int],
                           quiet: bool) -> None:  # fmt: skip
    """A warning when the results stop well before the last scored image, as a file saved with
    --limit K does: the images after it would count as having no people."""
    tail = evaluate.images_after_last_result(detections, image_ids)
    if len(tail) >= max(2, TAIL_WARNING * len(image_ids)):
        covered = len(image_ids) - len(tail)
        warning(f"{printable_path(str(results))}: no results for the last {len(tail)} of the "
                f"{len(image_ids)} images by id, which count as having no people; a file saved "
                f"with --limit {covered} is scored with --limit {covered}", quiet)  # fmt: skip


def print_eval(rows: list[evaluate.EvalResult], as_json: bool) -> None:
    """The table, or one JSON object per row."""
    if as_json:
        for row in rows:
            echo(json.dumps(row.to_dict()))
    elif rows[0].metric == "st":
        echo(st_metric.format_table(rows))
    else:
        echo(evaluate.format_table(rows))
