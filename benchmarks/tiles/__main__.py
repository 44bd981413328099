"""python -m benchmarks.tiles [--pets-gt GT] [--cache DIR]: measure what --tile gains and costs
and write docs/tiles.md from template.md."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from benchmarks.tiles import ROOT, TILE
from benchmarks.tiles import __doc__ as summary
from benchmarks.tiles.coco import coco_section
from benchmarks.tiles.pets import pets_section
from benchmarks.tiles.speed import speed_section
from benchmarks.tiles.synthetic import synthetic_section

LIBRARIES = ("ai-edge-litert", "opencv-python-headless", "numpy", "av")


def versions() -> str:
    """The versions of the LIBRARIES installed."""
    return ", ".join(f"{n} {metadata.version(n)}" for n in LIBRARIES)


def options() -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tiles",
                                     description=summary.splitlines()[0])  # fmt: skip
    parser.add_argument("--pets-gt", type=Path, help="MOT15 PETS09-S2L1 gt/gt.txt")
    parser.add_argument("--sequences", type=int, default=40, help="synthetic videos")
    parser.add_argument("--cache", type=Path, help="keep detections here")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "tiles.md")
    return parser.parse_args()


def main() -> None:
    args = options()
    sections = {}
    for name, make in (
        ("pets", lambda: pets_section(args.pets_gt, args.cache)),
        ("synthetic", lambda: synthetic_section(args.sequences, args.cache)),
        ("coco", lambda: coco_section(args.cache)),
        ("speed", speed_section),
    ):
        sections[name] = make()
        print(sections[name], flush=True)
    template = (Path(__file__).parent / "template.md").read_text()
    args.output.write_text(template.format(**sections, tile=TILE, versions=versions(),
                                           sequences=args.sequences))  # fmt: skip
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
