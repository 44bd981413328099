"""`--engine ray`: the frame pipeline's events computed by Ray actors, in input order.

Each actor builds the PoseEstimator once from the driver's constructor arguments and runs the
local pipeline on its share, so every item goes through the same code as with `--engine local`.
Photos go IMAGES_PER_TASK at a time to the least busy actor; each video, camera or stream is one
streaming task on one actor, its events in order, FRAMES_PER_CHUNK at a time and at most
CHUNKS_AHEAD chunks ahead of the driver. At most TASKS_PER_WORKER tasks per actor are in flight
(back-pressure) and results are yielded in input order. An actor whose process dies is restarted
and its tasks run again (Ray's max_restarts and max_task_retries), so every input is in the
output once. The image hook (annotated copies) runs on the driver, with the full-size pixels
the actor sends back only when there is a hook.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from posecli.core.errors import ImageError, PoseCliError
from posecli.core.results import ImageResult, pose_records
from posecli.estimator import PoseEstimator
from posecli.media import images
from posecli.media.sources import is_video_source
from posecli.pipeline import flow as pipeline
from posecli.pipeline.decoding import LiveStop
from posecli.pipeline.events import Event, FrameResult, ImageHook, StreamOptions
from posecli.pipeline.items import load, process_file

RAY_MISSING = "--engine ray needs Ray: pip install 'posecli[ray]'"
IMAGES_PER_TASK = 16
FRAMES_PER_CHUNK = 16
CHUNKS_AHEAD = 4  # a video's chunks made and not yet taken by the driver
TASKS_PER_WORKER = 2


def import_ray() -> Any:
    """The ray module; PoseCliError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise PoseCliError(RAY_MISSING) from None
    return ray


class PoseWorker:
    """A Ray actor's state: one estimator, built once, in the driver's working directory."""

    def __init__(self, arguments: dict, cwd: str):
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.estimator = PoseEstimator(**arguments)

    def images(self, paths: list[str], options: StreamOptions, full: bool) -> list[tuple]:
        """Each image's FrameResult, with its full-size pixels when `full` (for the hook)."""
        kept: dict[str, np.ndarray] = {}
        hook = (lambda path, bgr, poses: kept.__setitem__(path, bgr)) if full else None
        events = pipeline.run(self.estimator.predictor, paths, options, 1, hook)
        return [(e, kept.pop(e.result.path, None)) for e in events if isinstance(e, FrameResult)]

    def video(self, path: str, options: StreamOptions) -> Iterator[list[Event]]:
        """One video's events in order, a chunk of them at a time (a Ray streaming generator)."""
        events = pipeline.run(self.estimator.predictor, [path], options, 1)
        while chunk := list(itertools.islice(events, FRAMES_PER_CHUNK)):
            yield chunk


def run(
    estimator: PoseEstimator,
    sources: Iterable[str],
    options: StreamOptions | None = None,
    workers: int | None = None,
    hook: ImageHook | None = None,
    live_stop: LiveStop | None = None,
) -> Iterator[Event]:
    """pipeline.run's events from `workers` Ray actors (default: the cluster's CPUs over the
    estimator's threads); `hook` runs on the driver. `live_stop` is not supported (ignored)."""
    ray = import_ray()
    before = set(child_pids(os.getpid()))
    started, actors = not ray.is_initialized(), []
    try:
        if started:
            connect(ray)
        actors = start_actors(ray, estimator, workers)
        yield from ordered_events(ray, actors, sources, options or StreamOptions(), hook)
    except BaseException:  # the Ray started here ends at once: an interrupted CLI has 0.5 s
        if started:
            kill_trees(set(child_pids(os.getpid())) - before)
        raise
    finally:
        if started:
            ray.shutdown()
        for actor in [] if started else actors:
            ray.kill(actor)


def connect(ray: Any) -> None:
    """Join the cluster at RAY_ADDRESS, or start a local Ray."""
    address = os.environ.get("RAY_ADDRESS")
    local = {} if address else {"include_dashboard": False}
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **local)
    except ConnectionError as exc:
        raise PoseCliError(f"--engine ray: {exc} (a cluster with token authentication needs "
                           "RAY_AUTH_MODE=token)") from None  # fmt: skip
    messages_to_stderr(ray)


def messages_to_stderr(ray: Any) -> None:
    """Ray prints its error messages (such as a task run again after its actor died) on
    standard output, where results may be written: print them on standard error instead."""
    worker = ray._private.worker
    printer = worker.__dict__.setdefault("posecli_printer", worker.print_to_stdstream)
    worker.print_to_stdstream = lambda data, **kwargs: printer({**data, "is_err": True}, **kwargs)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux's /proc; none elsewhere)."""
    return [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent(stat) == pid]  # fmt: skip


def _parent(stat: Path) -> int | None:
    """The parent pid in a /proc/PID/stat file, None when the process is gone."""
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def kill_trees(roots: set[int]) -> None:
    """SIGKILL the processes `roots` and all their descendants, found before any is killed."""
    found, todo = set(roots), list(roots)
    while todo:
        children = child_pids(todo.pop())
        found.update(children)
        todo += children
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_actors(ray: Any, estimator: PoseEstimator, workers: int | None) -> list:
    """`workers` actors, each with the estimator's `threads` (1 when not given) and as many CPUs,
    or a share of them when more actors are asked for than fit; by default as many as fit."""
    arguments = estimator.arguments()
    threads = arguments["threads"] = arguments["threads"] or 1
    cpus = ray.cluster_resources().get("CPU", 1.0)
    count = workers or max(1, int(cpus // threads))
    actor = ray.remote(max_restarts=-1, max_task_retries=-1)(PoseWorker)
    options = {"num_cpus": min(threads, cpus / count), "scheduling_strategy": "SPREAD"}
    return [actor.options(**options).remote(arguments, os.getcwd()) for _ in range(count)]


def ordered_events(
    ray: Any, actors: list, sources: Iterable[str], options: StreamOptions, hook: ImageHook | None
) -> Iterator[Event]:
    """Submit the sources' tasks to the least busy actor, at most TASKS_PER_WORKER each in
    flight, and yield their events in input order."""
    busy = [0] * len(actors)
    pending: deque[tuple[int, Any, bool]] = deque()
    for paths, is_video in tasks(sources):
        index = busy.index(min(busy))
        actor = actors[index]
        if is_video:
            video = actor.video.options(_generator_backpressure_num_objects=CHUNKS_AHEAD)
            pending.append((index, video.remote(paths[0], options), True))
        else:
            pending.append((index, actor.images.remote(paths, options, hook is not None), False))
        busy[index] += 1
        if len(pending) >= TASKS_PER_WORKER * len(actors):
            yield from task_events(ray, pending.popleft(), busy, hook)
    while pending:
        yield from task_events(ray, pending.popleft(), busy, hook)


def tasks(sources: Iterable[str]) -> Iterator[tuple[list[str], bool]]:
    """The sources in order as tasks: runs of up to IMAGES_PER_TASK images, and each video."""
    batch: list[str] = []
    for path in sources:
        video = is_video_source(path)
        if (video and batch) or len(batch) == IMAGES_PER_TASK:
            yield batch, False
            batch = []
        if video:
            yield [path], True
        else:
            batch.append(path)
    if batch:
        yield batch, False


def task_events(
    ray: Any, task: tuple[int, Any, bool], busy: list[int], hook: ImageHook | None
) -> Iterator[Event]:
    """One task's events, waiting for them; an image's hook is run here with its pixels."""
    index, ref, is_video = task
    if is_video:
        for chunk in ref:
            yield from ray.get(chunk)
    else:
        for event, bgr in ray.get(ref):
            if hook is not None and bgr is not None:
                hook(event.result.path, bgr, event.result.poses)
            yield event
    busy[index] -= 1


class PoseBatch:
    """Poses for Ray Data's `Dataset.map_batches`: rows with encoded image "bytes" (from
    `read_binary_files`, decoded as the CLI does), a decoded RGB "image" (from `read_images`)
    or a "path" alone in; the input columns and "width", "height", "num_poses", "poses" (the
    JSONL record's poses as JSON text) and "error" out.

    `ds.map_batches(PoseBatch, fn_constructor_kwargs={...}, concurrency=N)`, the keyword
    arguments PoseEstimator's.
    """

    def __init__(self, **arguments: Any):
        self.estimator = PoseEstimator(**arguments)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The pose columns added to one batch."""
        rows = len(next(iter(batch.values())))
        return {**batch, **result_columns([self._result(batch, row) for row in range(rows)])}

    def _result(self, batch: dict[str, np.ndarray], row: int) -> ImageResult:
        """One row's result: from its bytes, else its RGB image, else its file; a bad image's
        error is in the result."""
        name = str(batch["path"][row]) if "path" in batch else str(row)
        if "bytes" not in batch and "image" not in batch:
            return process_file(self.estimator.predictor, None, name).result
        try:
            if "bytes" in batch:
                loaded = load(self.estimator.predictor, bytes(batch["bytes"][row]))
            else:
                loaded = images.LoadedImage.whole(_bgr(batch["image"][row]))
        except ImageError as exc:
            return ImageResult(name, error=str(exc))
        poses = self.estimator.predictor.predict(loaded)
        return ImageResult(name, loaded.width, loaded.height, poses)


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """Ray Data's RGB (or RGBA) image as BGR; a grey one as three channels."""
    if rgb.ndim == 2:
        return np.repeat(rgb[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb[..., 2::-1])


def result_columns(results: list[ImageResult]) -> dict[str, np.ndarray]:
    """The pose columns of a batch's results."""
    return {
        "width": np.array([r.width for r in results], np.int64),
        "height": np.array([r.height for r in results], np.int64),
        "num_poses": np.array([len(r.poses) for r in results], np.int64),
        "poses": np.array([json.dumps(pose_records(r.poses)) for r in results], object),
        "error": np.array([r.error for r in results], object),
    }
