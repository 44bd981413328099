"""The frame pipeline: every source (an image is a one-frame source) to per-frame results in order.

Videos, cameras and streams are decoded in a thread of their own per source; images are decoded
in the inference workers. Inference runs in `workers` threads with a model each, and results come
back in input order with at most a few frames in flight, so memory stays flat for any length.
Per-source events (`VideoStart`, then each frame's `FrameResult`, then `SourceEnd`) let a caller
keep per-video state between inference and output, such as a tracker or an annotated video.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from posecli.media.sources import is_video_source
from posecli.model.predictor import Predictor
from posecli.model.runtime import PoseModel
from posecli.pipeline.decoding import FrameTask, LiveStop, video_tasks
from posecli.pipeline.events import (
    DEFAULT_STREAM,
    Event,
    ImageHook,
    SourceEnd,
    StreamOptions,
    VideoStart,
)
from posecli.pipeline.items import process_file, process_frame

QUEUED_FRAMES = 4


@dataclass(frozen=True)
class ImageTask:
    """An image file or URL to read and run."""

    path: str


Task = ImageTask | FrameTask | VideoStart | SourceEnd


def run(
    predictor: Predictor,
    sources: Iterable[str],
    options: StreamOptions = DEFAULT_STREAM,
    workers: int = 1,
    hook: ImageHook | None = None,
    live_stop: LiveStop | None = None,
) -> Iterator[Event]:
    """Events for every source in order; `hook(path, bgr, poses)` runs in a worker per image;
    `live_stop` can end live sources early."""
    idle: queue.SimpleQueue[PoseModel] = queue.SimpleQueue()
    for model in predictor.worker_models(workers):
        idle.put(model)
    stop = threading.Event()

    def work(task: Task) -> Event:
        if isinstance(task, (VideoStart, SourceEnd)):
            return task
        model = idle.get()
        try:
            if isinstance(task, ImageTask):
                return process_file(predictor, model, task.path, options, hook)
            return process_frame(predictor, model, task.path, task.frame, options)
        finally:
            idle.put(model)

    tasks = _tasks(sources, options, stop, live_stop or LiveStop())
    try:
        yield from ordered_map(work, tasks, workers, window=QUEUED_FRAMES * workers)
    finally:
        stop.set()


def _tasks(
    sources: Iterable[str], options: StreamOptions, stop: threading.Event, live_stop: LiveStop
) -> Iterator[Task]:
    """Work items for every source: one per image, a start, frames and an end per video."""
    for path in sources:
        if is_video_source(path):
            yield from video_tasks(path, options, stop, live_stop, QUEUED_FRAMES)
        else:
            yield ImageTask(path)


def ordered_map(fn: Callable, items: Iterable, workers: int, window: int) -> Iterator:
    """Map fn over items in a thread pool, yielding in input order with at most `window` pending.

    When the consumer stops early (an interrupt, a closed pipe), queued items are dropped and
    running ones are not waited for, so a worker stuck in a slow read cannot hold it up.
    """
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="posecli")
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
