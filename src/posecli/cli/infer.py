"""`posecli infer`: poses for images and video frames, written in the chosen format as they come."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from posecli.cli.applies import refuse_untuned, source_facts
from posecli.cli.common import EXIT_FAILED, EXIT_OK, error, info
from posecli.cli.options import (
    Number,
    apply_options,
    build_estimator,
    conf_option,
    model_options,
    pipeline_options,
)
from posecli.cli.report import CliReporter
from posecli.media import video
from posecli.media.sources import IMAGE_EXTENSIONS, Inputs, Item
from posecli.output.draw import DrawStyle
from posecli.output.writers import FORMATS
from posecli.pipeline.events import Measure, StreamOptions
from posecli.run import job, ray_engine
from posecli.run.copies import Drawing
from posecli.run.job import RunOptions, StageFactory

SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".txt": "text"}  # fmt: skip
MEDIA_SUFFIXES = IMAGE_EXTENSIONS | video.VIDEO_EXTENSIONS | {".gif", ".avif", ".heic"}


def run_options(formats: tuple[str, ...]):
    """Output, video and batch options shared by infer and track (formats differ)."""
    return lambda func: apply_options([
        click.option("-f", "--format", "fmt", type=click.Choice(formats, case_sensitive=False),
                     default=None,
                     help="Output format [default: text on a terminal, else from -o's suffix, "
                          "else jsonl]."),
        click.option("-o", "--output", type=click.Path(), metavar="FILE",
                     default=None, help="Write results to FILE ('-': standard output); "
                                        "atomically, except jsonl (per image); -f yolo: "
                                        "the data set folder."),
        click.option("--append", is_flag=True, help="Add to the jsonl -o file instead of "
                     "starting it afresh (for shards sharing a file)."),
        click.option("--save-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Save annotated copies of images and videos here."),
        click.option("--kpt-conf", type=Number(0, 1), default=0.5, show_default=True,
                     help="Keypoints below this confidence are not drawn."),
        click.option("--line-width", type=click.IntRange(1), default=None,
                     help="--save-dir: line width in pixels [default: scaled to the image]."),
        click.option("--hide-boxes", is_flag=True, help="--save-dir: draw no boxes."),
        click.option("--hide-labels", is_flag=True, help="--save-dir: draw no labels."),
        click.option("--hide-conf", is_flag=True, help="--save-dir: no scores in labels."),
        click.option("--vid-stride", type=click.IntRange(1), default=1, show_default=True,
                     help="Process every Nth frame of videos."),
        click.option("--every-frame", is_flag=True, help="Live sources: process every frame "
                     "(default: drop frames while inference is behind)."),
        click.option("--timeout", type=Number(min=0, min_open=True),
                     default=video.DEFAULT_TIMEOUT, show_default=True,
                     help="Seconds to wait for a URL or camera to answer before giving up."),
        click.option("-r", "--recursive", is_flag=True, help="Look for images in subfolders too."),
        click.option("-q", "--quiet", is_flag=True, help="Nothing on standard error but errors."),
        click.option("--shard", default=None, metavar="I/N",
                     help="Process only shard I (0-based) of N: a stable split by path."),
        click.option("--skip-existing", is_flag=True,
                     help="Skip images and videos already in --save-dir or in the jsonl -o "
                          "file."),
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True, help="Run on this machine's threads, or on the Ray "
                     "cluster at RAY_ADDRESS (none: a local Ray for the run)."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="--engine ray: actors, each with --threads CPUs [default: as many "
                          "as the cluster's CPUs allow]."),
    ], func)  # fmt: skip


@click.command()
@click.argument("sources", nargs=-1, required=True)
@model_options
@pipeline_options
@conf_option(default=0.25)
@run_options(FORMATS)
def infer(**params) -> int:
    """Find people and their keypoints in images and videos.

    SOURCES are files, folders, globs, '-' for paths on stdin, a .txt list of sources (one a
    line), cameras ('0', '/dev/video0') and URLs (http(s) images, videos and MJPEG streams;
    rtsp://).
    """
    return run_sources(**params)


def run_sources(sources, fmt, output, append, save_dir, kpt_conf, line_width, hide_boxes,
                hide_labels, hide_conf, vid_stride, every_frame, timeout, recursive, quiet, shard,
                skip_existing, stage: StageFactory | None = None,
                check_items: Callable[[list[Item]], None] | None = None,
                measure: Measure | None = None, measure_images: bool = False,
                keep_missing: bool = False, natural_order: bool = False, engine: str = "local",
                workers: int | None = None, **options) -> int:  # fmt: skip
    """The command behind infer and track: check the options, build the estimator, run the
    sources into the outputs (`posecli.run`), print what happened, give the exit status.

    `stage`, `check_items`, `measure`, `measure_images`, `keep_missing` and `natural_order`
    are RunOptions' and StreamOptions' (track's tracking stage and camera motion, --sequence).
    """
    fmt = checked_format(output, fmt, append, skip_existing, save_dir)
    output = None if output in (None, "-") else Path(output)
    shard_index = parse_shard(shard)
    check_engine(engine, workers)
    estimator = build_estimator(**options)
    tracked = stage is not None

    def check_inputs(inputs: Inputs) -> None:
        unexpanded = [path for path, _ in inputs.errors]
        refuse_untuned({"save_dir": save_dir is not None, "tracked": tracked,
                        **source_facts(inputs.items, unexpanded)})  # fmt: skip

    stream = StreamOptions(vid_stride, every_frame, measure=measure,
                           measure_images=measure_images, timeout=timeout)  # fmt: skip
    style = DrawStyle(line_width, not hide_boxes, not hide_labels, not hide_conf)
    run = RunOptions(fmt, output, append, save_dir, Drawing(kpt_conf, style), stream, recursive,
                     shard_index, skip_existing, keep_missing, natural_order, engine, workers,
                     stage, check_inputs, check_items,
                     sys.stdin.buffer if "-" in sources else None)  # fmt: skip
    done = job.run_sources(estimator, list(sources), run, CliReporter(quiet))
    if not done.items and not done.skipped and not done.inputs.errors:
        if shard_index and done.inputs.items:
            info(f"shard {shard} has no images (of {len(done.inputs.items)} in all)", quiet)
            return EXIT_OK
        error("no images to process")
        return EXIT_FAILED
    info(done.stats.summary(done.skipped), quiet)
    return EXIT_FAILED if done.stats.failed or done.stats.unsaved else EXIT_OK


def check_engine(engine: str, workers: int | None) -> None:
    """Refuse --workers without --engine ray, and --engine ray without Ray installed."""
    if engine == "ray":
        ray_engine.import_ray()
    elif workers is not None:
        raise click.UsageError("--workers applies only with --engine ray")


def checked_format(output_name: str | None, fmt: str | None, append: bool, skip_existing: bool,
                   save_dir: Path | None) -> str:  # fmt: skip
    """The output format (given, or from the -o suffix), after refusing the output options that
    do not fit together."""
    output = None if output_name in (None, "-") else Path(output_name)
    if output_name not in (None, "-"):
        check_output_name(output_name, fmt)
    fmt = fmt or default_format(output)
    if fmt == "yolo" and (output is None or os.path.isfile(output)):
        raise click.UsageError("-f yolo writes a data set: give -o DIR, a folder")
    if fmt != "yolo" and output is not None and os.path.isdir(output):
        raise click.UsageError(f"-o {output_name} is a folder; results go to a file "
                               "(-f yolo writes a data set there)")  # fmt: skip
    jsonl_file = output is not None and fmt == "jsonl"
    if skip_existing and not (save_dir or jsonl_file):
        raise click.UsageError("--skip-existing needs --save-dir or a jsonl -o file")
    if skip_existing and output is not None and not jsonl_file:
        raise click.UsageError(f"--skip-existing cannot resume -o {output}: a {fmt} file is "
                               "written afresh (use -f jsonl, which is appended to)")  # fmt: skip
    if append and not jsonl_file:
        raise click.UsageError("--append needs a jsonl -o file")
    return fmt


def check_output_name(name: str, fmt: str | None) -> None:
    """Refuse an -o folder name (a trailing /) for a results file and, without -f, a name that
    does not say the format: an image or video suffix (`-o photo.jpg`), another (`-o x.yaml`)."""
    suffix = Path(name).suffix.lower()
    if fmt == "yolo":
        return
    if name.endswith(("/", os.sep)):
        raise click.UsageError(f"-o {name} names a folder; results go to a file (-f yolo "
                               "writes a data set there)")  # fmt: skip
    if fmt is not None:
        return
    if suffix in MEDIA_SUFFIXES:
        raise click.UsageError(
            f"-o {name} has an image or video suffix; give -f FORMAT to write results there"
        )
    if suffix and suffix not in SUFFIX_FORMATS:
        known = ", ".join(SUFFIX_FORMATS)
        raise click.UsageError(f"-o {name}: no format has the suffix {suffix} ({known}); "
                               "give -f FORMAT")  # fmt: skip


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
    if count < 1:
        raise click.BadParameter(f"N must be at least 1, not {count}", param_hint="--shard")
    if not 0 <= index < count:
        raise click.BadParameter(f"I must be in 0..{count - 1}, not {index}", param_hint="--shard")
    return index, count
