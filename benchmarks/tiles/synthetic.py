"""The tracking benchmark's synthetic videos with and without tiles: the share of people found
by height, and the held-out tracking scores."""

from __future__ import annotations

from pathlib import Path

from benchmarks.tiles import TILE, cache_file, tile_value
from benchmarks.tracking.cache import cached
from benchmarks.tracking.clips import Clip, detect, detector, load_clips
from benchmarks.tracking.scoring import evaluate, found_by_height, total_bound
from benchmarks.tracking.synthesis import load_coco, pick_images
from benchmarks.tracking.tables import height_bands, tracker_cells
from posecli.tracking.tracker import TrackerSettings


def tiled_clips(clips: list[Clip], cache: Path | None) -> list[Clip]:
    """The clips with the detections of --tile TILE, from `cache/synthetic-<video>-tile<TILE>.pkl`
    when there."""
    tiled = detector(tile=tile_value(TILE))
    out = []
    for clip in clips:
        name = f"synthetic-{Path(clip.sequence.name).stem}-tile{TILE}"
        detections = cached(
            cache_file(cache, name), lambda c=clip: detect(tiled, c.sequence.frames)
        )
        out.append(clip.redetected(detections))
    return out


def height_lines(heights: dict[str, tuple]) -> list[str]:
    """Markdown: the share of scored people found by height, per run."""
    lines = ["| person height (px) | scored boxes | " + " | ".join(f"found, {k}" for k in heights)
             + " |", "|---|---|" + "---|" * len(heights)]  # fmt: skip
    boxes = next(iter(heights.values()))[0]
    for i, band in enumerate(height_bands()):
        shares = " | ".join(f"{100 * h[1][i]:.0f} %" for h in heights.values())
        lines.append(f"| {band} | {boxes[i]} | {shares} |")
    return lines


def synthetic_section(sequences: int, cache: Path | None) -> str:
    """Markdown: people found by height, and held-out tracking, with and without tiles."""
    coco = load_coco()
    ids = pick_images(coco, sequences)
    plain = load_clips(coco, detector(), ids, cache / "sequences" if cache else None)
    tiled = tiled_clips(plain, cache)
    lines = height_lines({"whole frame only": found_by_height(plain),
                          f"--tile {TILE}": found_by_height(tiled)})  # fmt: skip
    settings = TrackerSettings()
    table = ["| held-out videos | MOTA | IDF1 | ID switches | per 10 people | false positives | "
             "misses | IDF1 on detected people | switches there | tracker ms/frame |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, clips in (("whole frame only", plain[1::2]), (f"--tile {TILE}", tiled[1::2])):
        table.append(tracker_cells(evaluate(name, settings, clips)))
    bound = total_bound(tiled[1::2], settings)
    return "\n".join([*lines, "", *table, "",
                      f"With `--tile {TILE}` the best IDF1 any tracker can reach with these "
                      f"detections (tracking.md's bound) is {100 * bound.idf1:.1f}, with at "
                      f"least {bound.forced} ID switches ({bound.forced_per_10:.2f} per 10 "
                      "people)."])  # fmt: skip
