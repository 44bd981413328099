"""Measures what --tile gains and costs, and writes docs/tiles.md (`python -m benchmarks.tiles`).

- PETS street video (../shared/videos/pets-vtest.avi): detection recall and precision at box IoU
  0.5, and `posecli track`'s MOTA, IDF1 and ID switches, against a MOTChallenge ground-truth
  file of the scene given with --pets-gt (the public MOT15 PETS09-S2L1 annotations, 768x576,
  scaled to the video's 480x360; not shipped here) (pets).
- The tracking benchmark's synthetic videos (benchmarks.tracking): the share of people found by
  height, and the held-out tracking scores, with and without tiles (synthetic).
- COCO dev photos: keypoint AP50 (all, and large people) and small people's box AP (coco).
- Speed: `python -m benchmarks.tiles.speed`'s figures, measured in this run (speed).

--cache keeps the detections, so a rerun on a quiet machine only re-measures the speed.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
PETS = SHARED / "videos" / "pets-vtest.avi"
TILE = "128"


def tile_value(tile: str) -> int | str:
    """--tile's value as PoseEstimator takes it."""
    return tile if tile == "auto" else int(tile)


def cache_file(cache: Path | None, name: str) -> Path | None:
    """Where a value called `name` is kept in the cache folder, if one is given."""
    return cache / f"{name}.pkl" if cache else None
