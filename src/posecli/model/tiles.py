"""Tiled inference for small people: the frame cut into overlapping tiles, each run as an image,
and the people found in the whole frame and in the tiles merged into one set.

A tile is letterboxed to the model's input exactly as a whole image is, so a person a tenth of
the frame tall is seen several times larger. The merge (docs/tiles.md) takes the people surest
first, those a tile border cuts at half their score (and only if they are small for the tile);
a person is dropped when most of the smaller of their box and a kept box from another run
overlap (intersection over the smaller area), so a person found in two tiles, or cut by a border
and found whole elsewhere, stays one person with the keypoints of the run that saw them whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from posecli.core.geometry import overlap_of_smaller
from posecli.core.results import People

DEFAULT_OVERLAP = 0.25
MAX_OVERLAP = 0.75
MIN_TILE = 32
# Intersection over the smaller box above which two people from different runs are one.
SAME_PERSON_IOS = 0.5
# A box this share of the tile side (or closer) from an inner tile edge counts as cut by it.
BORDER_MARGIN = 1 / 64
# A cut person wider or taller than this share of the tile is part of someone the tile is too
# small for, whom the whole frame sees; a smaller one ranks with its score counted at CUT_RANK.
CUT_MAX = 0.5
CUT_RANK = 0.5
# --tile auto: tiles a third of the frame's shorter side, never under half the model's input.
AUTO_DIVISOR = 3
COMMON_FRAMES = ((480, 360), (640, 480), (1280, 720), (1920, 1080))  # for `models info`


def check_tile(tile: object) -> None:
    """ValueError unless `tile` is None, 'auto' or a whole number of pixels, at least MIN_TILE."""
    if tile is None or tile == "auto":
        return
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < MIN_TILE:
        raise ValueError(f"tile must be 'auto' or a whole number of at least {MIN_TILE} pixels, "
                         f"not {tile!r}")  # fmt: skip


def max_reduction(width: int, height: int, whole: Callable[[int, int], float], tile: int | str,
                  input_size: tuple[int, int]) -> float:  # fmt: skip
    """How far a tiled image can be decoded scaled down: as far as the whole image allows, and
    no further than keeps each tile larger than the model input."""
    side = tile_side(tile, width, height, input_size)
    return min(whole(width, height), side / min(input_size))


def tile_side(tile: int | str, width: int, height: int, input_size: tuple[int, int]) -> int:
    """The tile side in pixels: the given one, or for 'auto' a third of the frame's shorter
    side, at least half the model input's shorter side."""
    if tile != "auto":
        return int(tile)
    return max(min(width, height) // AUTO_DIVISOR, min(input_size) // 2)


def starts(total: int, side: int, overlap: float) -> list[int]:
    """Evenly spread tile origins along one axis, neighbours overlapping by at least `overlap`
    of a tile; one at 0 when the tile covers the axis."""
    if side >= total:
        return [0]
    step = side * (1 - overlap)
    count = int(np.ceil((total - side) / step)) + 1
    return [round(i * (total - side) / (count - 1)) for i in range(count)]


def tile_count(
    width: int, height: int, tile: int | str, overlap: float, input_size: tuple[int, int]
) -> int:
    """How many tiles a width x height frame is cut into."""
    return len(tile_regions(width, height, tile_side(tile, width, height, input_size), overlap))


def tile_regions(width: int, height: int, side: int, overlap: float) -> np.ndarray:
    """(T, 4) x1 y1 x2 y2 of the tiles of a frame, row by row; none when one tile is the frame."""
    if side >= width and side >= height:
        return np.zeros((0, 4), np.int64)
    xs, ys = starts(width, side, overlap), starts(height, side, overlap)
    return np.array([(x, y, min(x + side, width), min(y + side, height)) for y in ys for x in xs],
                    np.int64).reshape(-1, 4)  # fmt: skip


def cut_by_inner_edge(boxes: np.ndarray, region: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether each box reaches (within BORDER_MARGIN) an edge of its tile inside the frame."""
    x1, y1, x2, y2 = region
    margin = BORDER_MARGIN * max(x2 - x1, y2 - y1)
    cut = np.zeros(len(boxes), bool)
    if x1 > 0:
        cut |= boxes[:, 0] <= x1 + margin
    if y1 > 0:
        cut |= boxes[:, 1] <= y1 + margin
    if x2 < width:
        cut |= boxes[:, 2] >= x2 - margin
    if y2 < height:
        cut |= boxes[:, 3] >= y2 - margin
    return cut


def merge(runs: list[People], regions: np.ndarray, width: int, height: int,
          max_det: int) -> People:  # fmt: skip
    """One set of people from the runs (each already through NMS) of the (R, 4) regions of a
    width x height frame: the whole frame's, then the tiles'. People cut by an inner tile edge
    and over CUT_MAX of the tile are dropped; the rest are taken surest first (a cut one's
    score counted at CUT_RANK; ties in run order), each kept unless a kept person of another
    run covers SAME_PERSON_IOS of the smaller box. Best first, at most max_det."""
    people = People.concat(runs)
    if not len(people):
        return people
    run_of = np.repeat(np.arange(len(runs)), [len(r) for r in runs])
    cut = np.concatenate([cut_by_inner_edge(r.boxes, region, width, height)
                          for r, region in zip(runs, regions, strict=True)])  # fmt: skip
    tile_side = (regions[:, 2:] - regions[:, :2]).max(axis=1)[run_of]
    extent = (people.boxes[:, 2:] - people.boxes[:, :2]).max(axis=1)
    order = np.argsort(-people.scores * np.where(cut, CUT_RANK, 1.0), kind="stable")
    order = order[~(cut & (extent > CUT_MAX * tile_side))[order]]
    same = (overlap_of_smaller(people.boxes) > SAME_PERSON_IOS) & (run_of[:, None] != run_of)
    dropped = np.zeros(len(people), bool)
    kept = []
    for i in order:
        if not dropped[i]:
            kept.append(i)
            dropped |= same[i]
    kept_index = np.asarray(kept, np.intp)
    best_first = kept_index[np.argsort(-people.scores[kept_index], kind="stable")]
    return people.take(best_first[:max_det])
