"""One call runs sources into outputs, for `infer` and `track` alike: expand the sources, check
the outputs, run every item through the pipeline (and a stage such as tracking), write results
and annotated copies, resume an earlier run, count, and stop cleanly on an interrupt."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from posecli.core import files
from posecli.core.errors import ImageError, PoseCliError
from posecli.core.results import ImageResult
from posecli.core.text import printable_path
from posecli.estimator import PoseEstimator
from posecli.media.sources import (
    Inputs,
    Item,
    device_or_url_item,
    expand,
    select_shard,
    unique_names,
)
from posecli.output.writers import Writer, make_writer
from posecli.output.yolo import YoloWriter
from posecli.pipeline import flow as pipeline
from posecli.pipeline.decoding import LiveStop
from posecli.pipeline.events import (
    DEFAULT_STREAM,
    Event,
    FrameResult,
    Stage,
    StreamOptions,
    VideoStart,
)
from posecli.run import interrupts, ray_engine
from posecli.run.copies import AnnotatedImages, AnnotatedVideos, Drawing, annotated_copy
from posecli.run.resume import finished_items
from posecli.run.stats import Stats

StageFactory = Callable[[PoseEstimator], Stage]
IMAGES_ONLY = {
    "coco": "--format coco takes images only; use json or jsonl",
    "yolo": "--format yolo takes image files only (linked or copied into the data set)",
}


@dataclass(frozen=True)
class RunOptions:
    """What a run writes and how it reads: the format and -o file (None: standard output),
    annotated copies in `save_dir`, the stream options, a shard (I, N), resuming with
    `skip_existing`, the engine ("local" threads or "ray" actors), and a `stage` made for the
    estimator (tracking). `check_inputs` and `check_items` may refuse the expanded sources and
    the items to run before any output is touched; `stdin` gives the paths of a '-' source."""

    fmt: str = "jsonl"
    output: Path | None = None
    append: bool = False
    save_dir: Path | None = None
    drawing: Drawing = field(default_factory=Drawing)
    stream: StreamOptions = DEFAULT_STREAM
    recursive: bool = False
    shard: tuple[int, int] | None = None
    skip_existing: bool = False
    keep_missing: bool = False
    natural_order: bool = False
    engine: str = "local"
    workers: int | None = None
    stage: StageFactory | None = None
    check_inputs: Callable[[Inputs], None] | None = None
    check_items: Callable[[list[Item]], None] | None = None
    stdin: BinaryIO | None = None


class Reporter:
    """What a run tells its caller as it goes; silent here (the library's), the CLI prints."""

    def error(self, line: str) -> None:
        """A source or copy that failed, in one line."""

    def warning(self, line: str) -> None:
        """A source passed over on purpose, in one line."""

    def watch(
        self, events: Iterator[Event], images: int, only_images: bool, to_stdout: bool
    ) -> Generator[Event, None, None]:
        """The events, shown as they pass (`images` of them images; results to standard
        output when `to_stdout`); closed early when the run stops."""
        yield from events

    def stopped(self, stats: Stats, exc: BaseException, unwritten: bool) -> None:
        """The run stopped on `exc` (an interrupt, or an output that cannot be written); the
        results file was not written when `unwritten`."""


@dataclass
class RunResult:
    """What a run did: its counts, the items it ran, those finished earlier, the inputs."""

    stats: Stats
    items: list[Item]
    skipped: int
    inputs: Inputs


def run_sources(
    estimator: PoseEstimator,
    sources: list[str],
    options: RunOptions = RunOptions(),
    reporter: Reporter | None = None,
    live_stop: LiveStop | None = None,
) -> RunResult:
    """Run `sources` (files, folders, globs, .txt lists, cameras, URLs) into the outputs the
    options describe. While the items run, the first Ctrl-C (with `interrupts.install()`) or
    `live_stop` ends a live source as a stream that stops."""
    report = reporter or Reporter()
    inputs = expand(sources, options.recursive, options.stdin, options.keep_missing,
                    options.natural_order)  # fmt: skip
    if options.check_inputs is not None:
        options.check_inputs(inputs)
    report_inputs(inputs, report)
    items = selected_items(inputs, options, report)
    lists = [Item(path, path) for path in inputs.lists]
    refuse_writing_over_inputs(inputs.items + lists, options.output, options.save_dir, items)
    if options.save_dir is not None:
        files.check_folder_writable(options.save_dir)
    writer = open_writer(estimator, options, items)
    skipped, unread = 0, shard_errors(inputs.errors, options.shard)
    if options.skip_existing:
        failed = tuple(path for path, _ in unread)
        items, skipped = unfinished_items(items, inputs, options, writer, failed, report)
    stage = options.stage(estimator) if options.stage is not None else None
    run = ItemsRun(estimator, items, writer, options, report)
    live = live_stop or LiveStop()
    with interrupts.ending_live_sources(live.request):
        stats = run(stage, len(inputs.errors), unread, live)
    return RunResult(stats, items, skipped, inputs)


def report_inputs(inputs: Inputs, report: Reporter) -> None:
    """One line for each source that was refused (error) or passed over (warning)."""
    for path, reason in inputs.errors:
        report.error(f"{printable_path(path)}: {reason}")
    for path, reason in inputs.warnings:
        report.warning(f"{printable_path(path)}: {reason}")


def selected_items(inputs: Inputs, options: RunOptions, report: Reporter) -> list[Item]:
    """The items this run processes: named without clashes, this shard's, no videos for COCO
    (each refusal is added to the inputs' errors), accepted by `check_items`."""
    items = unique_names(inputs.items, lambda i: str(annotated_copy(Path(), i)))
    if options.shard:
        items = select_shard(items, *options.shard)
    if options.fmt in IMAGES_ONLY:
        items = refuse_non_images(items, inputs.errors, options.fmt, report)
    if options.check_items is not None:
        options.check_items(items)
    return items


def refuse_non_images(items: list[Item], errors: list[tuple[str, str]], fmt: str,
                      report: Reporter) -> list[Item]:  # fmt: skip
    """Videos have no COCO image_id, and a yolo data set holds image files: each item the
    format cannot take is reported (added to `errors`) and left out of the run."""
    reason = IMAGES_ONLY[fmt]
    refused = [i for i in items if i.is_video or (fmt == "yolo" and device_or_url_item(i.path))]
    for item in refused:
        errors.append((item.path, reason))
        report.error(f"{printable_path(item.path)}: {reason}")
    return [i for i in items if i not in refused]


def refuse_writing_over_inputs(inputs: list[Item], output: Path | None, save_dir: Path | None,
                               items: list[Item]) -> None:  # fmt: skip
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
        if os.path.realpath(dest) == os.path.realpath(str(output)):
            raise PoseCliError(f"{printable_path(str(output))}: {what} over the -o results "
                               "file; nothing was done")  # fmt: skip


def open_writer(estimator: PoseEstimator, options: RunOptions, items: list[Item]) -> Writer:
    """The writer of the run's format, its output opened."""
    spec = estimator.keypoint_spec
    if options.fmt == "yolo":
        if options.output is None:
            raise PoseCliError("-f yolo writes a data set: give -o DIR, a folder")
        writer: Writer = YoloWriter(options.output, spec, class_names(estimator),
                                    {i.path: i.name for i in items})  # fmt: skip
    else:
        writer = make_writer(options.fmt, options.output, spec.names,
                             append=options.append or options.skip_existing,
                             tracked=options.stage is not None, label=spec.label,
                             classes=estimator.layout.classes > 1)  # fmt: skip
    writer.sink.open()
    return writer


def class_names(estimator: PoseEstimator) -> tuple[str, ...]:
    """The model's class names: its spec's one label, or the names of its several classes."""
    layout = estimator.layout
    return tuple(layout.class_names) if layout.classes > 1 else (estimator.keypoint_spec.label,)


def shard_errors(errors: list[tuple[str, str]],
                 shard: tuple[int, int] | None) -> list[tuple[str, str]]:  # fmt: skip
    """The sources that failed before the run whose error records it writes: with a shard, those
    of the shard their path falls in (as items are split), so shards sharing a file record each
    once."""
    if shard is None:
        return list(errors)
    mine = {i.path for i in select_shard([Item(p, p) for p, _ in errors], *shard)}
    return [(path, reason) for path, reason in errors if path in mine]


def unfinished_items(
    items: list[Item], inputs: Inputs, options: RunOptions, writer: Writer,
    failed: tuple[str, ...], report: Reporter,
) -> tuple[list[Item], int]:  # fmt: skip
    """skip_existing: the items not finished by an earlier run of the same command (with a
    stage: track), and how many were; a video whose records cannot be rewritten gets an error
    line (added to the inputs' errors). The old records of the `failed` sources are removed.
    The writer's output is abandoned on any exception."""
    jsonl = options.output if options.output is not None and options.fmt == "jsonl" else None
    stream = options.stream
    try:
        done, blocked = finished_items(jsonl, options.save_dir, items, stream.vid_stride,
                                       writer.sink, stream.timeout, options.stage is not None,
                                       failed)  # fmt: skip
    except BaseException:
        writer.sink.abort()
        raise
    for path, reason in blocked.items():
        report.error(f"{printable_path(path)}: {reason}")
        inputs.errors.append((path, reason))
    return [i for i in items if i.path not in done and i.path not in blocked], len(done)


class ItemsRun:
    """The items through the frame pipeline into the writer and the annotated copies."""

    def __init__(self, estimator: PoseEstimator, items: list[Item], writer: Writer,
                 options: RunOptions, report: Reporter):  # fmt: skip
        self.estimator, self.items, self.writer, self.report = estimator, items, writer, report
        self.options = options
        self.stats = Stats({i.path for i in items if i.is_video})
        by_path = {i.path: i for i in items}
        spec, drawing = estimator.keypoint_spec, options.drawing
        self.videos = AnnotatedVideos(options.save_dir, by_path, drawing.kpt_conf, spec,
                                      drawing.style)  # fmt: skip
        self.copies = AnnotatedImages(options.save_dir, by_path, drawing.kpt_conf, drawing.style,
                                      spec, in_workers=options.stage is None)  # fmt: skip

    def __call__(self, stage: Stage | None, failed: int,
                 error_records: list[tuple[str, str]], live: LiveStop) -> Stats:  # fmt: skip
        """Run every item, write results, report failures; `failed` counts the sources that
        failed before the run, whose `error_records` (path, reason) come first in json and
        jsonl. On any exception nothing is left under a final name."""
        self.stats.failed = failed
        events = self.events(live)
        if stage is not None:
            events = stage(events)
        images = sum(not i.is_video for i in self.items)
        watched = self.report.watch(events, images, images == len(self.items),
                                    not self.writer.sink.is_file)  # fmt: skip
        try:
            for path, reason in error_records:
                self.writer.write(ImageResult(path, error=reason))
            for event in watched:
                self.handle(event)
            self.writer.close()
        except BaseException as exc:  # a closed pipe or a bug too: no partial file left
            watched.close()
            self.abandon(exc)
            raise
        return self.stats

    def events(self, live: LiveStop) -> Iterator[Event]:
        """The pipeline's events, from local threads or Ray actors."""
        stream = replace(self.options.stream, keep_images=self.options.save_dir is not None)
        paths, hook = [i.path for i in self.items], self.copies.hook
        if self.options.engine == "ray":
            return ray_engine.run(self.estimator, paths, stream, self.options.workers, hook)
        workers = self.estimator.predictor.worker_count(None)
        return pipeline.run(self.estimator.predictor, paths, stream, workers, hook, live)

    def handle(self, event: Event) -> None:
        """Write a frame's or image's result, open or close a video's outputs, report failures."""
        if isinstance(event, VideoStart):
            self.stats.live = self.stats.live or event.live
            self.unsaved(self.videos.start(event))
        elif isinstance(event, FrameResult):
            self.write(event.result)
            self.videos.add(event)
            self.unsaved(self.copies.finish(event.result))
        else:
            self.stats.dropped += event.dropped
            if event.error:
                self.write(ImageResult(event.path, error=event.error))
            self.unsaved(self.videos.finish(event))

    def write(self, result: ImageResult) -> None:
        """Write one result (a failed one's error record in json and jsonl) and report why it
        failed if it did."""
        try:
            self.writer.write(result)
            if not result.ok:
                raise ImageError(result.error)
            self.stats.add(result)
        except ImageError as exc:
            self.stats.failed += 1
            self.report.error(f"{printable_path(result.path)}: {exc}")

    def unsaved(self, failure: str | None) -> None:
        """Count and report an annotated copy that could not be written."""
        if failure:
            self.stats.unsaved += 1
            self.report.error(failure)

    def abandon(self, exc: BaseException) -> None:
        """Drop the unfinished outputs after `exc`; an interrupt ends the results as they stand."""
        self.videos.abort()
        unwritten = self.writer.sink.replaced_at_commit
        self.writer.sink.abort()
        if not isinstance(exc, Exception):
            self.writer.end_interrupted()
        self.report.stopped(self.stats, exc, unwritten)
