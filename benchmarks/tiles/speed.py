"""Frames/s of `posecli track --tile` on a video against the 2-core CPU ceiling, in one run
(`python -m benchmarks.tiles.speed [VIDEO]`).

The ceiling is cores / (decode and preprocessing CPU ms + runs x 1-thread invoke CPU ms) per
frame, where a frame's runs are the whole frame and its tiles; `posecli bench --video` measures
both terms. The command is timed end to end as a user runs it (start-up included), MOT rows to
/dev/null. Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.tiles import PETS, TILE


def bench_video(video: Path, tile: str | None) -> dict:
    """`posecli bench --video` with this tile: decode and invoke CPU ms per frame, runs, ceiling."""
    args = ["bench", "--video", str(video), "--json", *(["--tile", tile] if tile else [])]
    return json.loads(posecli(*args).stdout)


def posecli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m posecli ARGS`, failing loudly."""
    return subprocess.run([sys.executable, "-m", "posecli", *args], capture_output=True,
                          check=True, text=True)  # fmt: skip


def track_fps(video: Path, tile: str | None, frames: int) -> float:
    """Frames/s of `posecli track VIDEO [--tile T] -f mot -o /dev/null`, start-up included."""
    start = time.perf_counter()
    posecli("track", str(video), *(["--tile", tile] if tile else []), "-f", "mot", "-o",
            os.devnull, "-q")  # fmt: skip
    return frames / (time.perf_counter() - start)


def measure(video: Path, tile: str | None) -> dict:
    """The bench figures and track's frames/s for one tile setting."""
    report = bench_video(video, tile)
    report["track_fps"] = round(track_fps(video, tile, report["frames"]), 1)
    report["track_ratio"] = round(report["track_fps"] / report["ceiling_fps"], 3)
    return report


def speed_section(video: Path = PETS, fps: float = 10.0) -> str:
    """Markdown: the figures of the whole frame and of --tile TILE, measured now."""
    lines = ["| run | runs/frame | decode + prep ms | invoke ms | ceiling frames/s | "
             "`infer` frames/s | share | `track` frames/s | share | real time |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for tile in (None, TILE):
        r = measure(video, tile)
        name = f"`--tile {tile}`" if tile else "whole frame only"
        lines.append(f"| {name} | {r['runs_per_frame']} | {r['decode_cpu_ms']:.2f} | "
                     f"{r['invoke_cpu_ms']:.1f} | {r['ceiling_fps']:.1f} | "
                     f"{r['end_to_end_fps']:.1f} | {r['ratio']:.2f} | {r['track_fps']:.1f} | "
                     f"{r['track_ratio']:.2f} | {r['track_fps'] / fps:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tiles.speed",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("video", type=Path, nargs="?", default=PETS)
    parser.add_argument("--tile", default=TILE, help=f"tile size or auto [default: {TILE}]")
    parser.add_argument("--fps", type=float, default=10.0, help="the video's own frame rate")
    args = parser.parse_args()
    for tile in (None, args.tile):
        r = measure(args.video, tile)
        name = f"--tile {tile}" if tile else "no tiles"
        print(f"{name}: {r['runs_per_frame']} runs/frame, decode+prep {r['decode_cpu_ms']} ms, "
              f"invoke {r['invoke_cpu_ms']} ms CPU/frame; ceiling {r['ceiling_fps']} frames/s; "
              f"infer {r['end_to_end_fps']} ({r['ratio']:.2f} of ceiling); track "
              f"{r['track_fps']} ({r['track_ratio']:.2f} of ceiling, "
              f"{r['track_fps'] / args.fps:.2f}x real time)")  # fmt: skip


if __name__ == "__main__":
    main()
