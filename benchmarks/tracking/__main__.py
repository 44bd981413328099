"""python -m benchmarks.tracking [options]: render and detect the videos (or read them from
--cache), then write docs/tracking.md, or only --sweep the settings or --export the frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.tracking import __doc__ as summary
from benchmarks.tracking.clips import detector, load_clips
from benchmarks.tracking.measure import measure
from benchmarks.tracking.report import render
from benchmarks.tracking.sweep import sweep
from benchmarks.tracking.synthesis import ROOT, export_frames, load_coco, pick_images


def options() -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking",
                                     description=summary.splitlines()[0])  # fmt: skip
    parser.add_argument("--sequences", type=int, default=40, help="videos (half tune, half test)")
    parser.add_argument("--still", type=int, default=6, help="photos for the still camera")
    parser.add_argument(
        "--dev", type=int, default=50, help="videos of further photos, to decide on camera motion"
    )
    parser.add_argument("--cache", type=Path, help="keep rendered videos and detections here")
    parser.add_argument("--sweep", action="store_true", help="only score settings on tune set")
    parser.add_argument("--export", type=Path, help="only write the videos' frames here as PNG")
    parser.add_argument(
        "--reference", type=Path, help="score Ultralytics' tracks from ultralytics_track.py too"
    )
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "tracking.md")
    return parser.parse_args()


def main() -> None:
    args = options()
    coco, estimator = load_coco(), detector()
    picked = pick_images(coco, args.sequences + args.still + args.dev)
    ids, still_ids = picked[: args.sequences], picked[args.sequences : args.sequences + args.still]
    dev_ids = picked[args.sequences + args.still :]
    print(f"rendering and detecting {len(ids) + len(dev_ids)} sequences", flush=True)
    clips = load_clips(coco, estimator, ids, args.cache)
    dev = load_clips(coco, estimator, dev_ids, args.cache)
    if args.sweep:
        sweep(clips[0::2], dev)
    elif args.export:
        export_frames([c.sequence for c in clips], args.export)
        print(f"wrote the frames of {len(clips)} videos under {args.export}")
    else:
        stills = load_clips(coco, estimator, still_ids, args.cache, still=True)
        found = measure(clips[0::2], clips[1::2], dev, stills, args.cache, args.reference)
        args.output.write_text(render(found, args.sequences, args.still, args.dev))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
