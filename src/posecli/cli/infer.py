"""`posecli infer`: poses for images, written in the chosen format as each one finishes."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import click

from .. import files, images
from ..draw import draw_poses
from ..errors import ImageError, OutputError, PoseCliError
from ..keypoints import KeypointSpec
from ..pose import ImageResult, Pose, printable_path
from ..sources import IMAGE_EXTENSIONS, Item, expand, select_shard, unique_names
from ..writers import FORMATS, make_writer
from .common import EXIT_FAILED, EXIT_OK, Interrupted, error, info, plural, warning, with_progress
from .options import build_estimator, conf_option, model_options, pipeline_options

SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".txt": "text"}  # fmt: skip
SAVE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MEDIA_SUFFIXES = IMAGE_EXTENSIONS | {".gif", ".avif", ".heic", ".mp4", ".avi", ".mov", ".mkv",
                                     ".webm", ".m4v", ".mpg", ".mpeg"}  # fmt: skip


@click.command()
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
    help="Write results to FILE ('-': standard output); atomically, except jsonl (per image).",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add to the jsonl -o file instead of starting it afresh (for shards sharing a file).",
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
def infer(sources, fmt, output, append, save_dir, kpt_conf, recursive, quiet, shard,
          skip_existing, **options) -> int:  # fmt: skip
    """Find people and their keypoints in images (files, folders, globs, '-' for stdin)."""
    output = None if output == Path("-") else output
    check_output_name(output, fmt)
    fmt = fmt or default_format(output)
    jsonl_file = output if output and fmt == "jsonl" else None
    if skip_existing and not (save_dir or jsonl_file):
        raise click.UsageError("--skip-existing needs --save-dir or a jsonl -o file")
    if append and not jsonl_file:
        raise click.UsageError("--append needs a jsonl -o file")
    shard_index = parse_shard(shard)
    estimator = build_estimator(**options)
    inputs = expand(sources, recursive, sys.stdin.buffer if "-" in sources else None)
    for path, reason in inputs.errors:
        error(f"{printable_path(path)}: {reason}")
    for path, reason in inputs.warnings:
        warning(f"{printable_path(path)}: {reason}", quiet)
    items = unique_names(inputs.items)
    if shard_index:
        items = select_shard(items, *shard_index)
    refuse_writing_over_inputs(inputs.items, output, save_dir, items)
    writer = make_writer(fmt, output, estimator.keypoint_spec.names, append=append or skip_existing)
    writer.sink.open()
    if save_dir is not None:
        files.check_folder_writable(save_dir)
    skipped = 0
    if skip_existing:
        done = finished_images(jsonl_file, save_dir, items)
        skipped, items = len(done), [i for i in items if i.path not in done]
    stats = run_batch(estimator, items, writer, save_dir, kpt_conf, quiet)
    stats.failed += len(inputs.errors)
    info(stats.summary(skipped), quiet)
    if not items and not skipped and not inputs.errors:
        if shard_index and inputs.items:
            info(f"shard {shard} has no images (of {len(inputs.items)} in all)", quiet)
            return EXIT_OK
        error("no images to process")
        return EXIT_FAILED
    return EXIT_FAILED if stats.failed or stats.unsaved else EXIT_OK


def check_output_name(output: Path | None, fmt: str | None) -> None:
    """Refuse `-o photo.jpg` (results into an image or video name) unless -f says so."""
    if output is not None and fmt is None and output.suffix.lower() in MEDIA_SUFFIXES:
        raise click.UsageError(
            f"-o {output} has an image or video suffix; give -f FORMAT to write results there"
        )


def refuse_writing_over_inputs(inputs: list[Item], output, save_dir, items: list[Item]) -> None:
    """No output may replace an input of the run: compare every destination by inode."""
    input_ids: dict[tuple[int, int], str] = {}
    for item in inputs:
        file_id = files.identity(item.path)
        if file_id is not None:
            input_ids.setdefault(file_id, item.path)
    destinations = [(output, "-o would write results")] if output is not None else []
    if save_dir is not None:
        destinations += [
            (annotated_copy(save_dir, i.name),
             f"--save-dir would write the annotated copy of {printable_path(i.path)}")
            for i in items
        ]  # fmt: skip
    for dest, what in destinations:
        clash = input_ids.get(files.identity(dest) or (-1, -1))
        if clash is not None:
            raise PoseCliError(f"{printable_path(clash)}: {what} over this input; nothing was done")


class Stats:
    """Counts for the closing summary line."""

    def __init__(self) -> None:
        self.images = self.poses = self.failed = self.unsaved = 0
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
        unsaved = f", {self.unsaved} not saved" if self.unsaved else ""
        return (f"{plural(self.images, 'image')}, {plural(self.poses, 'pose')}, "
                f"{self.failed} failed{unsaved}{skip} in {elapsed:.2f} s "
                f"({rate:.1f} images/s)")  # fmt: skip


def run_batch(estimator, items: list[Item], writer, save_dir, kpt_conf, quiet) -> Stats:
    """Run every item through the estimator, write results, report failures; Ctrl-C safe.

    The progress bar is left out when results are printed on the same terminal.
    """
    stats = Stats()
    names = {i.path: i.name for i in items}
    save_failures: dict[str, str] = {}
    hook = None
    if save_dir is not None:

        def hook(path: str, bgr, poses: list[Pose]) -> None:
            dest = annotated_copy(save_dir, names[path])
            failure = save_annotated(dest, bgr, poses, kpt_conf, estimator.keypoint_spec)
            if failure:
                save_failures[path] = failure

    results = estimator.predict_files([i.path for i in items], hook=hook)
    try:
        on_terminal = not writer.sink.is_file and sys.stdout.isatty()
        for result in with_progress(results, len(items), quiet or on_terminal):
            handle_result(result, writer, stats)
            if result.path in save_failures:
                stats.unsaved += 1
                error(save_failures.pop(result.path))
        writer.close()
    except (KeyboardInterrupt, Interrupted):
        writer.sink.abort()
        info(stats.summary() + ", interrupted", quiet)
        raise
    except OutputError:
        writer.sink.abort()
        info(stats.summary() + ", stopped: the output cannot be written", quiet)
        raise
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


def save_annotated(dest: Path, bgr, poses: list[Pose], kpt_conf: float,
                   spec: KeypointSpec) -> str | None:  # fmt: skip
    """Write the annotated copy of an image atomically; the error line if that fails."""
    try:
        images.write_atomic(dest, draw_poses(bgr, poses, kpt_conf, spec))
    except (ImageError, OutputError) as exc:
        return f"{exc} (annotated copy not saved; the results are written)"
    return None


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


def finished_images(jsonl: Path | None, save_dir: Path | None, items: list[Item]) -> set[str]:
    """Paths already done: recorded in the jsonl file and/or saved in save_dir (both if both)."""
    done = {i.path for i in items}
    if jsonl is not None:
        done &= recorded_files(jsonl, items)
    if save_dir is not None:
        done = {
            i.path for i in items if i.path in done and annotated_copy(save_dir, i.name).is_file()
        }
    return done


def annotated_copy(save_dir: Path, name: str) -> Path:
    """Where the annotated copy of an image goes: its name, as .jpg if OpenCV can't write it."""
    dest = save_dir / name
    return dest if dest.suffix.lower() in SAVE_SUFFIXES else dest.with_suffix(".jpg")


def recorded_files(jsonl: Path, items: list[Item]) -> set[str]:
    """The items whose file a jsonl record names, compared by device and inode, not by text.

    So `photos/a.jpg` and `/data/photos/a.jpg` are one file (relative records are taken from
    the current folder). A record's text names two files when a name with a non-UTF-8 byte,
    printed as \\xNN, sits beside a file literally named so: both count as done once that
    text has been recorded twice.
    """
    done: set[tuple[int, int]] = set()
    for text, count in Counter(recorded_images(jsonl)).items():
        ids = {f for f in map(files.identity, spellings(text)) if f is not None}
        if count >= len(ids):
            done |= ids
    return {i.path for i in items if files.identity(i.path) in done}


def spellings(text: str) -> set[str]:
    """The paths a record's text can stand for: itself, and with each \\xNN read as a byte."""
    raw = re.sub(
        rb"\\x([0-9a-f]{2})",
        lambda m: bytes([int(m[1], 16)]),
        text.encode("utf-8", "surrogatepass"),
    )
    return {text, os.fsdecode(raw)}


def recorded_images(jsonl: Path) -> list[str]:
    """Image paths in a jsonl results file (its torn last line was cut off when it was opened)."""
    if not jsonl.is_file():
        return []
    data = jsonl.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    recorded = []
    for line in complete.decode("utf-8", "replace").splitlines():
        try:
            image = json.loads(line)["image"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(image, str):
            recorded.append(image)
    return recorded
