#!/usr/bin/env python3
"""Images/s of two posecli source trees in one run, for behaviour-preserving changes:

    scripts/compare_speed.py BEFORE/src AFTER/src [--rounds 5]

Runs `posecli infer` over ../shared/coco/val2017 (JSONL to /dev/null) with each tree in turn,
alternating so that other load hits both alike, and prints each tree's median images/s (the
CLI's own summary) and their ratio. Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSECLI_SHARED", ROOT.parent / "shared"))
RATE = re.compile(rb"\(([\d.]+) images/s\)")


def images_per_second(src: Path, images: Path) -> float:
    """One `posecli infer` of the folder with the tree at `src`: its summary's images/s."""
    done = subprocess.run(
        [sys.executable, "-m", "posecli", "infer", images, "-f", "jsonl", "-o", os.devnull],
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, check=True,
    )  # fmt: skip
    found = RATE.search(done.stderr)
    if found is None:
        raise SystemExit(f"no images/s in: {done.stderr.decode()}")
    return float(found.group(1))


def main() -> None:
    """Alternate the trees `rounds` times after a warm-up of each; print medians and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=Path, default=SHARED / "coco" / "val2017")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for src in trees.values():
        images_per_second(src, args.images)  # warm the page cache and the imports
    rates: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            rates[name].append(images_per_second(src, args.images))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:6} {trees[name]}: median {medians[name]:.1f} images/s of {values}")
    print(f"after / before: {medians['after'] / medians['before']:.3f}")


if __name__ == "__main__":
    main()
