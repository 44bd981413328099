"""posecli bench: per-stage timings, and end-to-end vs invoke-only throughput in one run."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import cycle, islice, pairwise
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError
from .estimator import PoseEstimator
from .pose import ImageResult, printable_path
from .writers import make_writer

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


def check_images(estimator: PoseEstimator, paths: list[Path]) -> None:
    """Run each image once (which also warms up), refusing the first that fails, by name."""
    for path in paths:
        result = estimator.predict_file(path)
        if not result.ok:
            raise ImageError(f"{printable_path(str(path))}: {result.error}")


def stage_times(estimator: PoseEstimator, paths: list[str]) -> dict[str, float]:
    """Mean ms per stage, running the stages one after another on each image."""
    totals = np.zeros(len(STAGES))
    writer = make_writer("jsonl", Path(os.devnull), estimator.keypoint_spec.names)
    for path in paths:
        marks = [time.perf_counter()]
        loaded = estimator.load(path)
        marks.append(time.perf_counter())
        rgb, transform = estimator.preprocess(loaded)
        marks.append(time.perf_counter())
        output = estimator.run(rgb)
        marks.append(time.perf_counter())
        poses = estimator.decode(output, transform, loaded.width, loaded.height)
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


def invoke_only_ips(estimator: PoseEstimator, count: int) -> float:
    """Images/s of the interpreter alone on one prepared input."""
    width, height = estimator.input_size
    rgb = np.full((height, width, 3), 114, np.uint8)
    estimator.run(rgb)
    start = time.perf_counter()
    for _ in range(count):
        estimator.run(rgb)
    return count / (time.perf_counter() - start)


def run(estimator: PoseEstimator, images: list[Path] | None, count: int) -> BenchReport:
    """Benchmark on `count` images cycled from `images` (a synthetic photo when none).

    End-to-end and invoke-only runs alternate, so load from other processes hits both alike.
    """
    with tempfile.TemporaryDirectory(prefix="posecli-bench-") as tmp:
        sources = images or [synthetic_image(Path(tmp))]
        paths = [str(p) for p in islice(cycle(sources), count)]
        check_images(estimator, sources[:count])
        stages = stage_times(estimator, paths)
        rounds = [(*end_to_end(estimator, paths), invoke_only_ips(estimator, count))
                  for _ in range(ROUNDS)]  # fmt: skip
    e2e, cpu_ms, invoke = (float(v) for v in np.median(rounds, axis=0))
    return BenchReport(estimator.model_name, estimator.input_size, count, estimator.threads,
                       stages, round(e2e, 1), round(invoke, 1), round(cpu_ms, 2))  # fmt: skip
