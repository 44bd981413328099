"""posecli bench: stage timings, end-to-end vs invoke-only throughput, video frames/s vs ceiling."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import cycle, islice, pairwise
from pathlib import Path

import cv2
import numpy as np

from posecli.core.errors import ImageError
from posecli.core.results import ImageResult
from posecli.core.text import printable_path
from posecli.estimator import PoseEstimator
from posecli.media.images import LoadedImage
from posecli.media.video import VideoSource
from posecli.model.runtime import PoseModel
from posecli.output.writers import make_writer
from posecli.pipeline.items import load

STAGES = ("read_decode", "letterbox", "invoke", "decode_nms", "write")
ROUNDS = 3


@dataclass(frozen=True)
class BenchReport:
    """Mean ms per stage (serial); median images/s end to end and invoke-only over ROUNDS rounds.

    `input_size` is the model input's (width, height); `end_to_end_cpu_ms` is the process CPU
    time per image on the end-to-end path (all threads).
    """

    model: str
    input_size: tuple[int, int]
    images: int
    threads: int
    stage_ms: dict[str, float]
    end_to_end_ips: float
    invoke_only_ips: float
    end_to_end_cpu_ms: float
    skipped: tuple[tuple[str, str], ...] = ()  # (image, reason) of those that failed to run
    runs_per_image: float = 1.0  # model runs: the whole image, plus its tiles with --tile

    @property
    def ratio(self) -> float:
        """End-to-end images/s as a fraction of invoke-only images/s."""
        return self.end_to_end_ips / self.invoke_only_ips

    def to_dict(self) -> dict:
        """The --json form."""
        return {**asdict(self), "ratio": round(self.ratio, 3)}

    def table(self) -> str:
        """Human-readable report."""
        width, height = self.input_size
        lines = [f"model {self.model} (input {height} x {width}), "
                 f"{self.images} images, {self.threads} threads"]  # fmt: skip
        if self.runs_per_image != 1:
            lines.append(f"  {'tiles':<14}{self.runs_per_image - 1:8.1f} per image (and the "
                         "whole image: stages and invoke-only count every run)")  # fmt: skip
        lines += [f"  {stage:<14}{ms:8.2f} ms/image" for stage, ms in self.stage_ms.items()]
        lines += [
            f"  {'end-to-end':<14}{self.end_to_end_ips:8.1f} images/s (pipelined infer, "
            f"{self.end_to_end_cpu_ms:.2f} ms CPU/image)",
            f"  {'invoke-only':<14}{self.invoke_only_ips:8.1f} images/s",
            f"  {'ratio':<14}{self.ratio:8.2f}  (medians of {ROUNDS} alternating rounds)",
        ]
        return "\n".join(lines)


def synthetic_image(folder: Path) -> Path:
    """A 1280x720 JPEG of smooth shapes and noise, for benchmarking without photos."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (720, 1280, 3), dtype=np.uint8)
    for _ in range(40):
        center = (int(rng.integers(0, 1280)), int(rng.integers(0, 720)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, center, int(rng.integers(10, 120)), color, -1)
    path = folder / "synthetic.jpg"
    cv2.imwrite(str(path), image)
    return path


def readable_images(
    estimator: PoseEstimator, paths: list[Path]
) -> tuple[list[ImageResult], list[tuple[str, str]]]:
    """Run each image once (which also warms up): the results of those that run, and the
    others' names and reasons; ImageError if none runs."""
    good, failed = [], []
    for path in paths:
        try:
            good.append(estimator.predict_file(path))
        except ImageError as exc:
            failed.append((printable_path(str(path)), str(exc)))
    if not good:
        name, reason = failed[0]
        more = f" (none of the {len(paths)} images can be read)" if len(paths) > 1 else ""
        raise ImageError(f"{name}: {reason}{more}")
    return good, failed


def stage_times(estimator: PoseEstimator, paths: list[str]) -> dict[str, float]:
    """Mean ms per stage, running the stages one after another on each image."""
    totals = np.zeros(len(STAGES))
    writer = make_writer("jsonl", Path(os.devnull), estimator.keypoint_spec.names)
    for path in paths:
        marks = [time.perf_counter()]
        loaded = load(estimator.predictor, path)
        marks.append(time.perf_counter())
        inputs = estimator.predictor.model_inputs(loaded)
        marks.append(time.perf_counter())
        outputs = [estimator.predictor.run(rgb) for rgb, _ in inputs]
        marks.append(time.perf_counter())
        poses = estimator.predictor.decode_runs(outputs, [t for _, t in inputs], loaded.width,
                                      loaded.height)  # fmt: skip
        marks.append(time.perf_counter())
        writer.write(ImageResult(path, loaded.width, loaded.height, poses))
        marks.append(time.perf_counter())
        totals += [b - a for a, b in pairwise(marks)]
    writer.close()
    return {
        stage: round(ms, 3) for stage, ms in zip(STAGES, totals * 1000 / len(paths), strict=True)
    }


def end_to_end(estimator: PoseEstimator, paths: list[str]) -> tuple[float, float]:
    """Images/s of the pipelined path that `infer` uses (JSONL to /dev/null), and CPU ms/image."""
    writer = make_writer("jsonl", Path(os.devnull), estimator.keypoint_spec.names)
    cpu, start = time.process_time(), time.perf_counter()
    for result in estimator.predict_files(paths):
        writer.write(result)
    writer.close()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(paths) / wall, cpu * 1000 / len(paths)


def invoke_only_ips(estimator: PoseEstimator, count: int, runs: float = 1.0) -> float:
    """Images/s of the interpreter alone on one prepared input, `runs` invokes an image."""
    width, height = estimator.input_size
    rgb = np.full((height, width, 3), 114, np.uint8)
    estimator.predictor.run(rgb)
    invokes = round(count * runs)
    start = time.perf_counter()
    for _ in range(invokes):
        estimator.predictor.run(rgb)
    return count / (time.perf_counter() - start)


def mean_runs(estimator: PoseEstimator, images: list[ImageResult]) -> float:
    """Model runs per image (the whole image and its tiles), averaged over the images."""
    return float(np.mean([len(estimator.predictor.regions(r.width, r.height)) for r in images]))


def run(estimator: PoseEstimator, images: list[Path] | None, count: int) -> BenchReport:
    """Benchmark on `count` images cycled from `images` (a synthetic photo when none).

    End-to-end and invoke-only runs alternate, so load from other processes hits both alike.
    Images that fail to run are left out (`skipped`).
    """
    with tempfile.TemporaryDirectory(prefix="posecli-bench-") as tmp:
        chosen = (images or [synthetic_image(Path(tmp))])[:count]
        sources, skipped = readable_images(estimator, chosen)
        paths = [r.path for r in islice(cycle(sources), count)]
        runs = mean_runs(estimator, list(islice(cycle(sources), count)))
        stages = stage_times(estimator, paths)
        rounds = [(*end_to_end(estimator, paths), invoke_only_ips(estimator, count, runs))
                  for _ in range(ROUNDS)]  # fmt: skip
    e2e, cpu_ms, invoke = (float(v) for v in np.median(rounds, axis=0))
    threads = estimator.predictor.threads
    return BenchReport(estimator.model_name, estimator.input_size, count, threads, stages,
                       round(e2e, 1), round(invoke, 1), round(cpu_ms, 2), tuple(skipped),
                       round(runs, 2))  # fmt: skip


@dataclass(frozen=True)
class VideoBenchReport:
    """Frames/s of the frame pipeline on one video against its CPU-bound ceiling.

    The ceiling is cores / (decode CPU ms + 1-thread invoke CPU ms per frame), each measured alone;
    with --tile a frame's invoke time is that of all its runs (the whole frame and its tiles).
    """

    video: str
    frames: int
    cores: int
    decode_cpu_ms: float
    invoke_cpu_ms: float
    end_to_end_fps: float
    runs_per_frame: int = 1

    @property
    def ceiling_fps(self) -> float:
        """Frames/s if every core did nothing but decode and invoke."""
        return self.cores * 1000 / (self.decode_cpu_ms + self.invoke_cpu_ms)

    @property
    def ratio(self) -> float:
        """End-to-end frames/s as a fraction of the ceiling."""
        return self.end_to_end_fps / self.ceiling_fps

    def to_dict(self) -> dict:
        """The --json form."""
        return {**asdict(self), "ceiling_fps": round(self.ceiling_fps, 1),
                "ratio": round(self.ratio, 3)}  # fmt: skip

    def table(self) -> str:
        """Human-readable report."""
        runs = f", {self.runs_per_frame} runs: the frame and its tiles"
        return "\n".join([
            f"video {self.video}, {self.frames} frames, {self.cores} cores",
            f"  {'decode':<14}{self.decode_cpu_ms:8.2f} ms CPU/frame (decode, convert, letterbox)",
            f"  {'invoke':<14}{self.invoke_cpu_ms:8.2f} ms CPU/frame (1-thread interpreter"
            f"{runs if self.runs_per_frame > 1 else ''})",
            f"  {'ceiling':<14}{self.ceiling_fps:8.1f} frames/s",
            f"  {'end-to-end':<14}{self.end_to_end_fps:8.1f} frames/s (jsonl to /dev/null)",
            f"  {'ratio':<14}{self.ratio:8.2f}",
        ])  # fmt: skip


def decode_cpu_ms(estimator: PoseEstimator, path: str) -> tuple[float, list[np.ndarray], int]:
    """CPU ms per frame to decode a video and fit frames (and tiles) to the model input; a few
    inputs kept, and the model runs a frame takes."""
    source = VideoSource(path)
    kept: list[np.ndarray] = []
    cpu, count, inputs = time.process_time(), 0, []
    try:
        for frame in source.frames():
            inputs = estimator.predictor.model_inputs(LoadedImage.whole(frame.pixels))
            count += 1
            if len(kept) < 8:
                kept.append(inputs[-1][0])
    finally:
        source.close()
    return (time.process_time() - cpu) * 1000 / max(count, 1), kept, len(inputs)


def invoke_cpu_ms(estimator: PoseEstimator, inputs: list[np.ndarray], count: int) -> float:
    """CPU ms per invoke of a 1-thread interpreter on prepared model inputs."""
    model = PoseModel(estimator.predictor.model_path, threads=1, layout=estimator.layout)
    model.run(inputs[0])
    cpu = time.process_time()
    for rgb in islice(cycle(inputs), count):
        model.run(rgb)
    return (time.process_time() - cpu) * 1000 / count


def run_video(estimator: PoseEstimator, path: str) -> VideoBenchReport:
    """Measure a video's decode and invoke cost and the pipeline's frames/s, in one run."""
    decode_ms, inputs, runs = decode_cpu_ms(estimator, path)
    invoke_ms = invoke_cpu_ms(estimator, inputs, 200) * runs
    writer = make_writer("jsonl", Path(os.devnull), estimator.keypoint_spec.names)
    start, count = time.perf_counter(), 0
    for result in estimator.predict_files([path]):
        writer.write(result)
        count += 1
    writer.close()
    fps = count / (time.perf_counter() - start)
    cores = len(os.sched_getaffinity(0))
    return VideoBenchReport(Path(path).name, count, cores, round(decode_ms, 2),
                            round(invoke_ms, 2), round(fps, 1), runs)  # fmt: skip
