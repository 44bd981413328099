"""`posecli infer`: poses for images and video frames, written in the chosen format as they come."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
import numpy as np

from posecli.cli import interrupts
from posecli.cli.applies import refuse_untuned, source_facts
from posecli.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Interrupted,
    error,
    info,
    plural,
    warning,
    with_progress,
)
from posecli.cli.frames import AnnotatedVideos, FrameProgress, annotated_copy, not_saved
from posecli.cli.options import (
    Number,
    apply_options,
    build_estimator,
    conf_option,
    model_options,
    pipeline_options,
)
from posecli.core import files
from posecli.core.errors import ImageError, OutputError, PoseCliError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, Pose, printable_path
from posecli.estimator import PoseEstimator
from posecli.media import images, video
from posecli.media.sources import (
    IMAGE_EXTENSIONS,
    Inputs,
    Item,
    device_or_url_item,
    expand,
    select_shard,
    unique_names,
)
from posecli.output.draw import DrawStyle, draw_poses
from posecli.output.writers import FORMATS, Writer, make_writer
from posecli.output.yolo import YoloWriter
from posecli.pipeline import flow as pipeline
from posecli.pipeline.flow import FrameResult, StreamOptions, VideoStart
from posecli.run import ray_engine
from posecli.run.resume import finished_items

SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".txt": "text"}  # fmt: skip
Stage = Callable[[Iterator[pipeline.Event]], Iterator[pipeline.Event]]
StageFactory = Callable[[PoseEstimator], Stage]
NOT_WRITTEN = ", results not written (interrupted; jsonl keeps finished images)"
IMAGES_ONLY = {
    "coco": "--format coco takes images only; use json or jsonl",
    "yolo": "--format yolo takes image files only (linked or copied into the data set)",
}
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
                check_items: Callable[[list[Item]], None] | None = None, thumbnails: bool = False,
                image_thumbnails: bool = False, keep_missing: bool = False,
                natural_order: bool = False, engine: str = "local", workers: int | None = None,
                **options) -> int:  # fmt: skip
    """The run behind infer and track: expand the sources, check the outputs, run every item
    through the pipeline (and the `stage` made for the estimator, which may replace each frame's
    poses), write, summarise.

    `check_items` may refuse the expanded items (a usage error) before any output is touched;
    `thumbnails` and `image_thumbnails` ask for the grey thumbnails (for the camera's motion)
    of video frames and of images; with `keep_missing` a source that does not exist fails in
    its place among the items (a frame of a --sequence), not before them; `natural_order`
    sorts folders and globs with numbers by value (the frames of a --sequence).
    """
    fmt = checked_format(output, fmt, append, skip_existing, save_dir)
    output = None if output in (None, "-") else Path(output)
    jsonl_file = output if output and fmt == "jsonl" else None
    shard_index = parse_shard(shard)
    check_engine(engine, workers)
    estimator = build_estimator(**options)
    stdin = sys.stdin.buffer if "-" in sources else None
    inputs = expand(sources, recursive, stdin, keep_missing, natural_order)
    unexpanded = [path for path, _ in inputs.errors]
    refuse_untuned({"save_dir": save_dir is not None, "tracked": stage is not None,
                    **source_facts(inputs.items, unexpanded)})  # fmt: skip
    style = DrawStyle(line_width, not hide_boxes, not hide_labels, not hide_conf)
    report_inputs(inputs, quiet)
    items = selected_items(inputs, shard_index, fmt, check_items)
    lists = [Item(path, path) for path in inputs.lists]
    refuse_writing_over_inputs(inputs.items + lists, output, save_dir, items)
    if save_dir is not None:
        files.check_folder_writable(save_dir)
    spec = estimator.keypoint_spec
    if fmt == "yolo":
        assert output is not None  # checked_format
        writer: Writer = YoloWriter(output, spec, class_names(estimator),
                                    {i.path: i.name for i in items})  # fmt: skip
    else:
        writer = make_writer(fmt, output, spec.names, append=append or skip_existing,
                             tracked=stage is not None, label=spec.label,
                             classes=estimator.layout.classes > 1)  # fmt: skip
    writer.sink.open()
    skipped, unread = 0, shard_errors(inputs.errors, shard_index)
    if skip_existing:
        failed = tuple(path for path, _ in unread)
        items, skipped = unfinished_items(items, inputs, jsonl_file, save_dir, vid_stride, writer,
                                          timeout, stage is not None, failed)  # fmt: skip
    stream = StreamOptions(vid_stride, every_frame, keep_images=save_dir is not None,
                           thumbnails=thumbnails, image_thumbnails=image_thumbnails,
                           timeout=timeout)  # fmt: skip
    stage_for_run = stage(estimator) if stage is not None else None
    stats = run_batch(estimator, items, writer, save_dir, (kpt_conf, style), quiet, stream,
                      stage_for_run, len(inputs.errors), unread, engine, workers)  # fmt: skip
    if not items and not skipped and not inputs.errors:
        if shard_index and inputs.items:
            info(f"shard {shard} has no images (of {len(inputs.items)} in all)", quiet)
            return EXIT_OK
        error("no images to process")
        return EXIT_FAILED
    info(stats.summary(skipped), quiet)
    return EXIT_FAILED if stats.failed or stats.unsaved else EXIT_OK


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


def report_inputs(inputs: Inputs, quiet: bool) -> None:
    """One line for each source that was refused (error) or passed over (warning)."""
    for path, reason in inputs.errors:
        error(f"{printable_path(path)}: {reason}")
    for path, reason in inputs.warnings:
        warning(f"{printable_path(path)}: {reason}", quiet)


def selected_items(inputs: Inputs, shard_index: tuple[int, int] | None, fmt: str,
                   check_items: Callable[[list[Item]], None] | None) -> list[Item]:  # fmt: skip
    """The items this run processes: named without clashes, this shard's, no videos for COCO
    (each refusal is added to the inputs' errors), accepted by `check_items`."""
    items = unique_names(inputs.items, lambda i: str(annotated_copy(Path(), i)))
    if shard_index:
        items = select_shard(items, *shard_index)
    if fmt in IMAGES_ONLY:
        items = refuse_non_images(items, inputs.errors, fmt)
    if check_items is not None:
        check_items(items)
    return items


def unfinished_items(items: list[Item], inputs: Inputs, jsonl_file: Path | None,
                     save_dir: Path | None, vid_stride: int, writer: Writer, timeout: float,
                     tracked: bool, failed: tuple[str, ...]) -> tuple[list[Item], int]:  # fmt: skip
    """--skip-existing: the items not finished by an earlier run of the same command (`tracked`:
    track), and how many were; a video whose records cannot be rewritten gets an error line
    (added to the inputs' errors). The old records of the `failed` sources are removed. The
    writer's output is abandoned on any exception."""
    try:
        done, blocked = finished_items(jsonl_file, save_dir, items, vid_stride, writer.sink,
                                       timeout, tracked, failed)  # fmt: skip
    except BaseException:
        writer.sink.abort()
        raise
    for path, reason in blocked.items():
        error(f"{printable_path(path)}: {reason}")
        inputs.errors.append((path, reason))
    return [i for i in items if i.path not in done and i.path not in blocked], len(done)


def shard_errors(errors: list[tuple[str, str]],
                 shard_index: tuple[int, int] | None) -> list[tuple[str, str]]:  # fmt: skip
    """The sources that failed before the run whose error records it writes: with --shard, those
    of the shard their path falls in (as items are split), so shards sharing a file record each
    once."""
    if shard_index is None:
        return list(errors)
    mine = {i.path for i in select_shard([Item(p, p) for p, _ in errors], *shard_index)}
    return [(path, reason) for path, reason in errors if path in mine]


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


def refuse_writing_over_inputs(inputs: list[Item], output, save_dir, items: list[Item]) -> None:
    """No output may replace an input of the run (every destination compared by inode), and no
    annotated copy may go where the -o results go."""
    input_ids: dict[tuple[int, int], str] = {}
    for item in inputs:
        file_id = files.identity(item.path)
        if file_id is not None:
            input_ids.setdefault(file_id, item.path)
    copies = [] if save_dir is None else [
        (annotated_copy(save_dir, i),
         f"--save-dir would write the annotated copy of {printable_path(i.path)}")
        for i in items
    ]  # fmt: skip
    results = [(output, "-o would write results")] if output is not None else []
    for dest, what in results + copies:
        clash = input_ids.get(files.identity(dest) or (-1, -1))
        if clash is not None:
            raise PoseCliError(f"{printable_path(clash)}: {what} over this input; nothing was done")
    for dest, what in copies if output is not None else []:
        if os.path.realpath(dest) == os.path.realpath(output):
            raise PoseCliError(f"{printable_path(str(output))}: {what} over the -o results "
                               "file; nothing was done")  # fmt: skip


class Stats:
    """Counts for the closing summary line."""

    def __init__(self, videos: set[str]) -> None:
        self.videos = videos  # the paths whose results are video frames
        self.read: set[str] = set()  # the videos that gave frames
        self.images = self.frames = self.poses = self.failed = self.unsaved = self.dropped = 0
        self.live = False
        self.start = time.perf_counter()

    def add(self, result: ImageResult) -> None:
        """Count one processed image (alone or a frame of a --sequence) or video frame."""
        if result.path not in self.videos:
            self.images += 1
        else:
            self.frames += 1
            self.read.add(result.path)
        self.poses += len(result.poses)

    def summary(self, skipped: int = 0) -> str:
        """'N images, V videos, F frames, M poses, K failed' with timing (skips, dropped frames
        if any); images only if there were some or no frames, poses and rate only if any ran."""
        elapsed = time.perf_counter() - self.start
        count, unit = (self.frames, "frames") if self.frames else (self.images, "images")
        rate = f" ({count / elapsed if elapsed > 0 else 0.0:.1f} {unit}/s)" if count else ""
        skip = f", {skipped} skipped" if skipped else ""
        unsaved = f", {self.unsaved} not saved" if self.unsaved else ""
        images = [plural(self.images, "image")] if self.images or not self.frames else []
        videos = [plural(len(self.read), "video"), plural(self.frames, "frame")] * bool(self.frames)
        poses = [plural(self.poses, "pose")] if count else []
        dropped = f", {plural(self.dropped, 'frame')} dropped" if self.live or self.dropped else ""
        done = ", ".join([*images, *videos, *poses, f"{self.failed} failed"])
        return f"{done}{unsaved}{skip}{dropped} in {elapsed:.2f} s{rate}"


def run_batch(estimator, items: list[Item], writer, save_dir,
              drawing: tuple[float, DrawStyle], quiet,
              stream: StreamOptions, stage: Stage | None = None,
              failed: int = 0, error_records: Sequence[tuple[str, str]] = (),
              engine: str = "local", workers: int | None = None) -> Stats:  # fmt: skip
    """Run every item through the frame pipeline, write results, report failures; Ctrl-C safe:
    the first one while a live source is read ends that source as a stream that stops.

    Each video's frames come in order between its VideoStart and SourceEnd: the place for
    per-video state (its annotated copy). `stage` maps the events before they are written, so
    annotated images are then drawn from its poses, in order, rather than in the workers. The
    progress bar is left out when results are printed on the same terminal; annotated copies
    are drawn with the `drawing` keypoint confidence and style. `failed` counts the
    sources that failed before the run (they are in every summary); the `error_records` of
    those this run records (path, reason) come first in json and jsonl. With `engine` "ray"
    the events come from `workers` Ray actors (ray_engine).
    """
    stats = Stats({i.path for i in items if i.is_video})
    stats.failed = failed
    by_path = {i.path: i for i in items}
    copies = AnnotatedImages(save_dir, by_path, *drawing, estimator.keypoint_spec,
                             in_workers=stage is None)  # fmt: skip
    live = pipeline.LiveStop()
    paths = [i.path for i in items]
    if engine == "ray":
        events = ray_engine.run(estimator, paths, stream, workers, copies.hook)
    else:
        local = estimator.worker_count(None)
        events = pipeline.run(estimator, paths, stream, local, copies.hook, live)
    if stage is not None:
        events = stage(events)
    on_terminal = not writer.sink.is_file and sys.stdout.isatty()
    videos = AnnotatedVideos(save_dir, by_path, drawing[0], estimator.keypoint_spec, drawing[1])
    progress = FrameProgress(quiet or on_terminal)
    images_only = [i for i in items if not i.is_video]
    no_bar = quiet or on_terminal or len(images_only) < len(items)
    try:
        for path, reason in error_records:
            writer.write(ImageResult(path, error=reason))
        with interrupts.ending_live_sources(live.request):
            for event in with_progress(events, len(images_only), no_bar):
                handle_event(event, writer, stats, videos, progress)
                if isinstance(event, FrameResult):
                    report_unsaved(stats, copies.finish(event.result))
        writer.close()
    except BaseException as exc:  # a closed pipe or a bug too: no partial file under a final name
        progress.end()
        videos.abort()
        unwritten = writer.sink.replaced_at_commit
        writer.sink.abort()
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            writer.end_interrupted()
            info(stats.summary() + (NOT_WRITTEN if unwritten else ", interrupted"), quiet)
        elif isinstance(exc, OutputError):
            info(stats.summary() + ", stopped: the output cannot be written", quiet)
        raise
    return stats


class AnnotatedImages:
    """The annotated copies of images: drawn in the workers as they finish (`in_workers`), or
    kept there and drawn in order by `finish` with the poses that are written (tracked ones)."""

    def __init__(self, save_dir: Path | None, items: dict[str, Item], kpt_conf: float,
                 style: DrawStyle, spec: KeypointSpec, in_workers: bool):  # fmt: skip
        self.save_dir, self.items, self.kpt_conf, self.spec = save_dir, items, kpt_conf, spec
        self.style = style
        self.in_workers = in_workers
        self.kept: dict[str, np.ndarray] = {}
        self.failures: dict[str, str] = {}

    @property
    def hook(self) -> pipeline.ImageHook | None:
        """The pipeline's per-image hook, when annotated copies are asked for."""
        return None if self.save_dir is None else self._hook

    def _hook(self, path: str, bgr: np.ndarray, poses: list[Pose]) -> None:
        """In a worker: save the copy, or keep the pixels for `finish`."""
        if not self.in_workers:
            self.kept[path] = bgr
            return
        failure = self._save(path, bgr, poses)
        if failure:
            self.failures[path] = failure

    def finish(self, result: ImageResult) -> str | None:
        """Save a kept image's copy with the result's poses; the error line of a failed copy."""
        bgr = self.kept.pop(result.path, None)
        if bgr is not None:
            return self._save(result.path, bgr, result.poses)
        return self.failures.pop(result.path, None)

    def _save(self, path: str, bgr: np.ndarray, poses: list[Pose]) -> str | None:
        """Write one annotated copy; the error line if that fails."""
        assert self.save_dir is not None
        return save_annotated(annotated_copy(self.save_dir, self.items[path]), bgr, poses,
                              self.kpt_conf, self.spec, self.style)  # fmt: skip


def handle_event(event: pipeline.Event, writer, stats: Stats, videos: AnnotatedVideos,
                 progress: FrameProgress) -> None:  # fmt: skip
    """Write a frame's or image's result, open or close a video's outputs, report failures."""
    if isinstance(event, VideoStart):
        stats.live = stats.live or event.live
        progress.begin(event)
        report_unsaved(stats, videos.start(event))
    elif isinstance(event, FrameResult):
        handle_result(event.result, writer, stats)
        progress.frame()
        videos.add(event)
    else:
        progress.end()
        stats.dropped += event.dropped
        if event.error:
            handle_result(ImageResult(event.path, error=event.error), writer, stats)
        report_unsaved(stats, videos.finish(event))


def report_unsaved(stats: Stats, failure: str | None) -> None:
    """Count and report an annotated copy that could not be written."""
    if failure:
        stats.unsaved += 1
        error(failure)


def refuse_non_images(items: list[Item], errors: list[tuple[str, str]],
                      fmt: str) -> list[Item]:  # fmt: skip
    """Videos have no COCO image_id, and a yolo data set holds image files: each item the
    format cannot take is reported (added to `errors`) and left out of the run."""
    reason = IMAGES_ONLY[fmt]
    refused = [i for i in items if i.is_video or (fmt == "yolo" and device_or_url_item(i.path))]
    for item in refused:
        errors.append((item.path, reason))
        error(f"{printable_path(item.path)}: {reason}")
    return [i for i in items if i not in refused]


def class_names(estimator: PoseEstimator) -> tuple[str, ...]:
    """The model's class names: its spec's one label, or the names of its several classes."""
    layout = estimator.layout
    return tuple(layout.class_names) if layout.classes > 1 else (estimator.keypoint_spec.label,)


def handle_result(result: ImageResult, writer, stats: Stats) -> None:
    """Write one result (a failed one's error record in json and jsonl) and report why it
    failed if it did."""
    try:
        writer.write(result)
        if not result.ok:
            raise ImageError(result.error)
        stats.add(result)
    except ImageError as exc:
        stats.failed += 1
        error(f"{printable_path(result.path)}: {exc}")


def save_annotated(dest: Path, bgr, poses: list[Pose], kpt_conf: float,
                   spec: KeypointSpec, style: DrawStyle) -> str | None:  # fmt: skip
    """Write the annotated copy of an image atomically; the error line if that fails."""
    try:
        images.write_atomic(dest, draw_poses(bgr, poses, kpt_conf, spec, style))
    except (ImageError, OutputError) as exc:
        return not_saved(exc)
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
