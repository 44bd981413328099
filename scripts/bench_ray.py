#!/usr/bin/env python3
"""Images/s of `posecli infer --engine ray` against `--engine local` in the same run.

The photos are the COCO dev set repeated 4 times (1,632; `-n` takes the first N). A local Ray
with all the cores is started once for the runs, as `ray start --head` would be, and its
start-up time is printed apart; each run is `posecli infer FOLDER -o /dev/null` in a process of
its own. A run's start-up (Python, the model, for Ray joining the cluster and starting the
actors) is measured by the same command on one photo and taken off, so images/s is the rate once
running; the ratio of the two rates is the figure quoted in docs/ray.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def photo_folder(folder: Path, coco: Path, times: int, count: int | None) -> Path:
    """A folder of links to the COCO photos, repeated `times` times, the first `count` of them."""
    links = [(f"{i}_{p.name}", p) for i in range(times) for p in sorted(coco.glob("*.jpg"))]
    out = folder / "photos"
    out.mkdir()
    for name, photo in links[:count]:
        (out / name).symlink_to(photo)
    return out


def wall_seconds(source: Path, engine: str, workers: int | None, env: dict) -> float:
    """Seconds `posecli infer SOURCE --engine ENGINE -o /dev/null` takes, start to exit."""
    command = [sys.executable, "-m", "posecli", "infer", str(source), "--engine", engine,
               "-f", "jsonl", "-o", os.devnull, "-q"]  # fmt: skip
    if workers is not None and engine == "ray":
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"posecli infer --engine {engine} failed: {proc.stderr.decode()}")
    return time.perf_counter() - start


def measure(photos: Path, one: Path, engine: str, workers: int | None,
            env: dict) -> tuple[float, float]:  # fmt: skip
    """One run's start-up seconds (the run on one photo) and images/s once running."""
    count = len(list(photos.iterdir()))
    startup = wall_seconds(one, engine, workers, env)
    total = wall_seconds(photos, engine, workers, env)
    return startup, (count - 1) / max(total - startup, 1e-9)


def main() -> None:
    """Start Ray, time the engines in alternating rounds, print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("-n", type=int, default=None, help="Only the first N photos.")
    parser.add_argument("--workers", type=int, default=None, help="Ray actors (--workers).")
    parser.add_argument("--rounds", type=int, default=2, help="Runs of each engine.")
    args = parser.parse_args()
    os.environ.setdefault("POSECLI_MODELS", str(args.shared / "models"))
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray on loopback, read on import
    import ray

    start = time.perf_counter()
    context = ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    env = {**os.environ, "RAY_ADDRESS": context.address_info["address"]}
    with tempfile.TemporaryDirectory() as tmp:
        photos = photo_folder(Path(tmp), args.shared / "coco" / "val2017", 4, args.n)
        one = next(photos.iterdir())
        count = len(list(photos.iterdir()))
        print(f"{count} photos, {os.cpu_count()} cores, {args.rounds} rounds; "
              f"Ray started in {ray_start:.1f} s\n")  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
        for _ in range(args.rounds):
            for engine, measured in runs.items():
                measured.append(measure(photos, one, engine, args.workers, env))
    print(f"{'engine':>7} {'start-up s':>11} {'images/s':>9}")
    medians = {}
    for engine, measured in runs.items():
        medians[engine] = [statistics.median(values) for values in zip(*measured, strict=True)]
        print(f"{engine:>7} {medians[engine][0]:>11.2f} {medians[engine][1]:>9.1f}")
    ray.shutdown()
    print(f"\nray / local: {medians['ray'][1] / medians['local'][1]:.0%} of local's images/s")


if __name__ == "__main__":
    main()
