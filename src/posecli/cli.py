"""The `posecli` command line: a thin layer over PoseEstimator, the writers and the sources."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path

import click

from . import __version__, evaluate, images, models
from . import bench as bench_module
from .draw import draw_poses
from .errors import ImageError, PoseCliError
from .estimator import PoseEstimator
from .files import write_bytes_atomic
from .pose import ImageResult, Pose, printable_path
from .preprocess import RESIZE_MODES
from .runtime import PoseModel
from .sources import Item, expand, select_shard, unique_names
from .writers import FORMATS, make_writer

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".txt": "text"}  # fmt: skip
SAVE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop, keep what is done, exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


def error(message: str) -> None:
    """One `posecli: error: ...` line on standard error."""
    click.echo(f"posecli: error: {message}", err=True)


def info(message: str, quiet: bool) -> None:
    """A status line on standard error unless --quiet."""
    if not quiet:
        click.echo(message, err=True)


def apply_options(options: list, func):
    """Decorate func with click options, first in the list first in --help."""
    for option in reversed(options):
        func = option(func)
    return func


def model_options(func):
    """-m/--model and --imgsz, which pick one model."""
    return apply_options([
        click.option("-m", "--model", "model", default=None,
                     help="Model name from `posecli models list` or a .tflite path."),
        click.option("--imgsz", type=click.Choice(["192", "256", "320"]), default=None,
                     help="Pick the yolov8n-pose model with this input size."),
    ], func)  # fmt: skip


def pipeline_options(func):
    """Thresholds and runtime options shared by infer, eval and bench."""
    return apply_options([
        click.option("--iou", type=click.FloatRange(0, 1), default=0.7, show_default=True,
                     help="NMS IoU threshold."),
        click.option("--max-det", type=click.IntRange(1), default=100, show_default=True,
                     help="Most people kept per image."),
        click.option("--threads", type=click.IntRange(1), default=None,
                     help="CPU threads (default: all cores)."),
        click.option("--delegate", type=click.Path(dir_okay=False), default=None,
                     help="External delegate library (e.g. an NPU delegate .so)."),
        click.option("--resize", type=click.Choice(RESIZE_MODES), default="letterbox",
                     show_default=True, help="Letterbox (keep aspect) or stretch to the input."),
        click.option("--max-pixels", type=click.IntRange(1), default=images.DEFAULT_MAX_PIXELS,
                     show_default=True, help="Refuse images with more pixels than this."),
        click.option("--full-decode", is_flag=True,
                     help="Always decode JPEGs at full size (no reduced-scale decoding)."),
    ], func)  # fmt: skip


def conf_option(default: float):
    """--conf, whose default differs between infer (0.25) and eval (0.001)."""
    return click.option("--conf", type=click.FloatRange(0, 1), default=default,
                        show_default=True, help="Person score threshold.")  # fmt: skip


def model_choice(model: str | None, imgsz: str | None) -> str | None:
    """The model to load from -m and --imgsz, which exclude each other."""
    if model and imgsz:
        raise click.UsageError("give either -m/--model or --imgsz, not both")
    return models.model_for_size(int(imgsz)) if imgsz else model


def build_estimator(model, conf, iou, max_det, threads, delegate, resize, max_pixels,
                    full_decode, imgsz=None) -> PoseEstimator:  # fmt: skip
    """A PoseEstimator from the shared command-line options."""
    return PoseEstimator(
        model=model_choice(model, imgsz), conf=conf, iou=iou, max_det=max_det, resize=resize,
        threads=threads, delegate=delegate, max_pixels=max_pixels,
        reduced_decode=not full_decode,
    )  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="posecli")
def cli() -> None:
    """Multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@model_options
@pipeline_options
@conf_option(default=0.25)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format [default: text on a terminal, else from -o's suffix, else jsonl].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write results to FILE (atomically, except jsonl which is appended per image).",
)
@click.option(
    "--save-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Save annotated images here.",
)
@click.option(
    "--kpt-conf",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Keypoints below this confidence are not drawn.",
)
@click.option("-r", "--recursive", is_flag=True, help="Look for images in subfolders too.")
@click.option("-q", "--quiet", is_flag=True, help="Nothing on standard error but errors.")
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Process only shard I (0-based) of N: a stable split by path.",
)
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip images already in --save-dir or in the jsonl -o file.",
)
def infer(sources, fmt, output, save_dir, kpt_conf, recursive, quiet, shard, skip_existing,
          **options) -> int:  # fmt: skip
    """Find people and their 17 keypoints in images (files, folders, globs, '-' for stdin)."""
    fmt = fmt or default_format(output)
    if skip_existing and not (save_dir or (output and fmt == "jsonl")):
        raise click.UsageError("--skip-existing needs --save-dir or a jsonl -o file")
    shard_index = parse_shard(shard)
    estimator = build_estimator(**options)
    inputs = expand(sources, recursive, sys.stdin.buffer if "-" in sources else None)
    for path, reason in inputs.errors:
        error(f"{printable_path(path)}: {reason}")
    items = unique_names(inputs.items)
    if shard_index:
        items = select_shard(items, *shard_index)
    skipped = 0
    if skip_existing:
        done = finished_images(output if fmt == "jsonl" else None, save_dir, items)
        skipped, items = len(done), [i for i in items if i.path not in done]
    writer = make_writer(fmt, output, append=skip_existing)
    stats = run_batch(estimator, items, writer, save_dir, kpt_conf, quiet)
    stats.failed += len(inputs.errors)
    info(stats.summary(skipped), quiet)
    if not items and not skipped and not inputs.errors:
        error("no images to process")
        return EXIT_FAILED
    return EXIT_FAILED if stats.failed else EXIT_OK


class Stats:
    """Counts for the closing summary line."""

    def __init__(self) -> None:
        self.images = self.poses = self.failed = 0
        self.start = time.perf_counter()

    def add(self, result: ImageResult) -> None:
        """Count one processed image."""
        self.images += 1
        self.poses += len(result.poses)

    def summary(self, skipped: int = 0) -> str:
        """'N images, M poses, K failed' with timing (and skips when resuming)."""
        elapsed = time.perf_counter() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        skip = f", {skipped} skipped" if skipped else ""
        return (f"{self.images} images, {self.poses} poses, {self.failed} failed{skip} "
                f"in {elapsed:.2f} s ({rate:.1f} images/s)")  # fmt: skip


def run_batch(estimator, items: list[Item], writer, save_dir, kpt_conf, quiet) -> Stats:
    """Run every item through the estimator, write results, report failures; Ctrl-C safe.

    The progress bar is left out when results are printed on the same terminal.
    """
    stats = Stats()
    names = {i.path: i.name for i in items}
    hook = None
    if save_dir is not None:

        def hook(path: str, bgr, poses: list[Pose]) -> None:
            save_annotated(path, annotated_copy(save_dir, names[path]), bgr, poses, kpt_conf)

    results = estimator.predict_files([i.path for i in items], hook=hook)
    try:
        on_terminal = not writer.sink.is_file and sys.stdout.isatty()
        for result in with_progress(results, len(items), quiet or on_terminal):
            handle_result(result, writer, stats)
    except (KeyboardInterrupt, Interrupted):
        writer.sink.abort()
        info(stats.summary() + ", interrupted", quiet)
        raise
    writer.close()
    return stats


def handle_result(result: ImageResult, writer, stats: Stats) -> None:
    """Write one result, or report why it failed."""
    try:
        if not result.ok:
            raise ImageError(result.error)
        writer.write(result)
        stats.add(result)
    except ImageError as exc:
        stats.failed += 1
        error(f"{printable_path(result.path)}: {exc}")


def with_progress(
    results: Iterable[ImageResult], total: int, quiet: bool, label: str = "posecli"
) -> Iterator[ImageResult]:
    """The results, with a progress bar on a terminal's stderr when there is more than one."""
    if quiet or total < 2 or not sys.stderr.isatty():
        yield from results
        return
    with click.progressbar(results, length=total, file=sys.stderr, label=label) as bar:
        yield from bar


def save_annotated(path: str, dest: Path, bgr, poses: list[Pose], kpt_conf: float) -> None:
    """Write the annotated copy of an image atomically, never over the input itself."""
    if dest.exists() and os.path.samefile(dest, path):
        raise ImageError(f"{dest}: --save-dir would overwrite the input image")
    try:
        images.write_atomic(dest, draw_poses(bgr, poses, kpt_conf))
    except OSError as exc:
        raise ImageError(f"cannot save {dest}: {exc.strerror or exc}") from exc


def default_format(output: Path | None) -> str:
    """text on a terminal; otherwise the -o file's suffix decides, else jsonl."""
    if output is not None:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "jsonl")
    return "text" if sys.stdout.isatty() else "jsonl"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' to (I, N) with 0 <= I < N."""
    if text is None:
        return None
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise click.BadParameter("expected I/N, e.g. 0/4", param_hint="--shard") from None
    if not 0 <= index < count:
        raise click.BadParameter("I must be in 0..N-1", param_hint="--shard")
    return index, count


def finished_images(jsonl: Path | None, save_dir: Path | None, items: list[Item]) -> set[str]:
    """Paths already done: recorded in the jsonl file and/or saved in save_dir (both if both)."""
    done = {i.path for i in items}
    if jsonl is not None:
        recorded = recorded_images(jsonl)
        done = {p for p in done if printable_path(p) in recorded}
    if save_dir is not None:
        done = {
            i.path for i in items if i.path in done and annotated_copy(save_dir, i.name).is_file()
        }
    return done


def annotated_copy(save_dir: Path, name: str) -> Path:
    """Where the annotated copy of an image goes: its name, as .jpg if OpenCV can't write it."""
    dest = save_dir / name
    return dest if dest.suffix.lower() in SAVE_SUFFIXES else dest.with_suffix(".jpg")


def recorded_images(jsonl: Path) -> set[str]:
    """Image paths in a jsonl results file; a torn last line (from a kill) is cut off first."""
    if not jsonl.is_file():
        return set()
    data = jsonl.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(jsonl, "r+b") as f:
            f.truncate(len(complete))
    recorded = set()
    for line in complete.decode("utf-8", "replace").splitlines():
        try:
            recorded.add(json.loads(line)["image"])
        except (ValueError, KeyError, TypeError):
            continue
    return recorded


@cli.command(name="eval")
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
    help="Score this COCO results file instead of running a model.",
)
@click.option(
    "-m",
    "--model",
    "model_names",
    multiple=True,
    help="Model name or .tflite path; repeat for a row per model.",
)
@click.option("--all-models", is_flag=True, help="A row for every model in the manifest.")
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
def eval_command(annotations, images_dir, results, model_names, all_models, limit, save_results,
                 as_json, quiet, **options) -> int:  # fmt: skip
    """COCO keypoint and box AP of models (or of a results file) with pycocotools."""
    coco = evaluate.load_annotations(annotations)
    if results is not None:
        print_eval([score_results_file(coco, results, options)], as_json)
        return EXIT_OK
    if images_dir is None:
        raise click.UsageError("--images DIR is needed unless --results is given")
    names = list(models.load_manifest()[1]) if all_models else list(model_names) or [None]
    if save_results and len(names) > 1:
        raise click.UsageError("--save-results takes a single model")
    items = evaluate.annotated_images(coco, images_dir, limit)
    present, missing = [], []
    for item in items:
        (present if item.path.is_file() else missing).append(item)
    for item in missing:
        error(f"{printable_path(str(item.path))}: annotated image not found")
    if not present:
        raise PoseCliError(f"{images_dir}: none of the {len(items)} annotated images is there")
    rows = [evaluate_model(coco, present, name, options, save_results, quiet) for name in names]
    print_eval(rows, as_json)
    return EXIT_FAILED if missing or any(r.failed for r in rows) else EXIT_OK


def evaluate_model(coco, items, name, options, save_results, quiet) -> evaluate.EvalResult:
    """Run one model over the annotated images and score it."""
    estimator = build_estimator(model=name, **options)
    track = partial(with_progress, total=len(items), quiet=quiet, label=estimator.model_name)
    detections, done, failed = evaluate.run_model(estimator, items, track)
    for path, reason in failed:
        error(f"{printable_path(path)}: {reason}")
    if save_results:
        write_bytes_atomic(save_results, json.dumps(detections).encode())
    scores = evaluate.score(coco, detections, done)
    settings = {k: v for k, v in asdict(estimator.settings).items() if k != "max_pixels"}
    return evaluate.EvalResult(estimator.model_name, settings, len(done), scores["keypoints"],
                               scores["bbox"], failed)  # fmt: skip


def score_results_file(coco, results: Path, options: dict) -> evaluate.EvalResult:
    """Score an existing COCO results file against the annotations."""
    detections = evaluate.load_results(results, coco)
    image_ids = sorted(coco.getImgIds())
    scores = evaluate.score(coco, detections, image_ids)
    settings = {"results": str(results), "resize": "-"}
    return evaluate.EvalResult(results.name, settings, len(image_ids), scores["keypoints"],
                               scores["bbox"])  # fmt: skip


def print_eval(rows: list[evaluate.EvalResult], as_json: bool) -> None:
    """The table, or one JSON object per row."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.to_dict()))
    else:
        click.echo(evaluate.format_table(rows))


@cli.command()
@model_options
@pipeline_options
@conf_option(default=0.25)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of images (default: a synthetic one).",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Images to run (the folder's images are cycled).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def bench(images_dir, count, as_json, **options) -> int:
    """Per-stage milliseconds and end-to-end vs invoke-only images/s, measured in one run."""
    estimator = build_estimator(**options)
    images_found = None
    if images_dir is not None:
        images_found = [Path(i.path) for i in expand([str(images_dir)], False).items]
        if not images_found:
            raise PoseCliError(f"{images_dir}: no images in this folder")
    report = bench_module.run(estimator, images_found, count)
    click.echo(json.dumps(report.to_dict()) if as_json else report.table())
    return EXIT_OK


@cli.group(name="models")
def models_group() -> None:
    """List, fetch and inspect the models."""


@models_group.command(name="list")
def models_list() -> int:
    """Known models: name, input size, quantization and whether a copy is installed."""
    default, specs = models.load_manifest()
    click.echo(f"{'name':<22}{'input':>6}  {'quant':<12}{'card AP50':>10}  location")
    for spec in specs.values():
        path = models.find_file(spec)
        ap = f"{spec.card_ap50:.2f}" if spec.card_ap50 else "-"
        mark = "*" if spec.name == default else " "
        click.echo(f"{spec.name + mark:<22}{spec.input_size:>6}  {spec.quantization:<12}"
                   f"{ap:>10}  {path or 'not installed'}")  # fmt: skip
    return EXIT_OK


@models_group.command(name="pull")
@click.argument("names", nargs=-1)
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Copy from this folder instead of downloading.",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Install here instead of the user cache.",
)
def models_pull(names, source, dest) -> int:
    """Fetch models (all when none are named), verify their sha256 and install them."""
    _, specs = models.load_manifest()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise click.BadParameter(f"unknown model {', '.join(unknown)}; known: {', '.join(specs)}")
    for name in names or specs:
        path = models.pull(specs[name], source, dest)
        click.echo(f"{name}: {path}")
    return EXIT_OK


@models_group.command(name="info")
@click.argument("model")
def models_info(model: str) -> int:
    """Input and output shapes, dtypes and quantization of a model name or path."""
    path, spec = models.resolve(model)
    loaded = PoseModel(path, threads=1)
    click.echo(f"model: {spec.name if spec else path.name}\nfile: {path}")
    for role, t in loaded.info().items():
        click.echo(
            f"{role}: shape {list(t.shape)} {t.dtype} scale {t.scale:.6g} zero {t.zero_point}"
        )
    click.echo(f"quantization: {loaded.quantization()}")
    return EXIT_OK


def _raise_interrupted(signum: int, _frame) -> None:
    """Signal handler: unwind like Ctrl-C."""
    raise Interrupted(signum)


def main() -> None:
    """Entry point: run the CLI and map every outcome to one exit status, never a traceback."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        code = cli.main(prog_name="posecli", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE
    except PoseCliError as exc:
        error(str(exc))
        code = EXIT_USAGE
    except Interrupted as exc:
        error("interrupted")
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        error("interrupted")
        code = 128 + signal.SIGINT
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    except Exception as exc:  # a bug: still one line, not a traceback
        error(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        code = EXIT_INTERNAL
    sys.exit(code or 0)
