#!/usr/bin/env python3
"""Throughput and memory of `posecli infer` on the COCO folder, measured against invoke-only speed.

Prints, in one run: end-to-end images/s of `posecli infer DIR --format jsonl` over
../shared/coco/val2017 next to invoke-only images/s and their ratio for 192/256/320; reduced vs
full JPEG decoding on 4000x3000 photos; and peak RSS for 408 and 4x as many images.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from posecli import PoseEstimator
from posecli.evaluation.bench import invoke_only_ips

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(rb"(\d+) images, .* in ([\d.]+) s \(")


def run_infer(*args) -> tuple[float, float, int]:
    """Run `posecli infer ARGS -f jsonl -o /dev/null`: loop images/s, wall s, peak RSS in MiB."""
    command = [sys.executable, "-m", "posecli", "infer", *map(str, args), "-f", "jsonl",
               "-o", os.devnull]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    match = SUMMARY.search(err)
    if status != 0 or match is None:
        raise SystemExit(f"posecli infer failed: {err.decode()}")
    images, seconds = int(match[1]), float(match[2])
    return images / seconds, wall, usage.ru_maxrss // 1024


def large_photos(folder: Path, count: int, shared: Path) -> Path:
    """count 4000x3000 JPEGs made by enlarging the sample photos."""
    out = folder / "large"
    out.mkdir()
    samples = [cv2.imread(str(p)) for p in sorted((shared / "images").glob("*.jpg"))]
    for i in range(count):
        big = cv2.resize(samples[i % len(samples)], (4000, 3000), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / f"large_{i:03d}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return out


def repeated_folder(folder: Path, source: Path, times: int) -> Path:
    """A folder of links to the source images, each repeated `times` times."""
    out = folder / f"x{times}"
    out.mkdir()
    for i in range(times):
        for image in sorted(source.glob("*.jpg")):
            (out / f"{i}_{image.name}").symlink_to(image)
    return out


def main() -> None:
    """Run every measurement and print one report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--large", type=int, default=24, help="How many 4000x3000 photos.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per size.")
    args = parser.parse_args()
    coco = args.shared / "coco" / "val2017"
    os.environ.setdefault("POSECLI_MODELS", str(args.shared / "models"))
    count = len(list(coco.glob("*.jpg")))
    print(f"posecli infer over {coco} ({count} images), "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print(f"{'size':>5} {'invoke-only':>12} {'end-to-end':>11} {'ratio':>6} {'with start-up':>14}")
    for size in (192, 256, 320):
        estimator = PoseEstimator(model=f"yolov8n-pose-{size}")
        rounds = [(invoke_only_ips(estimator, 400), *run_infer(coco, "--imgsz", size)[:2])
                  for _ in range(args.rounds)]  # fmt: skip
        invoke, e2e, wall = (statistics.median(column) for column in zip(*rounds, strict=True))
        print(f"{size:>5} {invoke:>9.1f}/s {e2e:>8.1f}/s {e2e / invoke:>6.2f} "
              f"{count / wall:>11.1f}/s")  # fmt: skip
    print(f"  (medians of {args.rounds} alternating rounds; end-to-end: images/s of the infer "
          "loop; with start-up: including process start and model load)\n")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="posecli-bench-") as tmp:
        large = large_photos(Path(tmp), args.large, args.shared)
        reduced, _, _ = run_infer(large)
        full, _, _ = run_infer(large, "--full-decode")
        print(f"4000x3000 JPEGs at 256: reduced decode {reduced:.1f}/s, full decode {full:.1f}/s, "
              f"speed-up {reduced / full:.2f}x\n")  # fmt: skip

        many = repeated_folder(Path(tmp), coco, 4)
        _, _, rss_one = run_infer(coco)
        _, _, rss_four = run_infer(many)
        print(f"peak RSS: {rss_one} MiB for 408 images, {rss_four} MiB for 1632 images "
              f"(ratio {rss_four / rss_one:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
