#!/usr/bin/env python3
"""Video throughput and memory of `posecli infer`, measured against the CPU-bound ceiling.

Prints, in one run, for ../shared/videos/coco-pan-720p30.mp4 and coco-pan-1080p30.mp4: decode CPU
ms per frame (decoded, converted to BGR and letterboxed) and 1-thread invoke CPU ms per frame,
each measured alone; the ceiling cores / (decode + invoke); frames/s of
`posecli infer VIDEO --format jsonl -o out.jsonl` (from its closing line: the frame loop without
interpreter start-up and imports) and its ratio to the ceiling (target >= 0.90);
frames/s with `--save-dir` (annotated H.264) and its ratio to without (target >= 0.40). Then peak
RSS of `posecli infer` on a short and an 8x longer video (PETS repeated; target: within 10 %).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import av

from posecli import PoseEstimator
from posecli.evaluation.bench import decode_cpu_ms, invoke_cpu_ms
from posecli.media.video import VideoSource

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(rb"(\d+) frames, .* in ([\d.]+) s \(")


def run_infer(*args) -> tuple[float, int, int]:
    """Run `posecli infer ARGS`: frames/s from its summary (the frame loop, without start-up),
    frames, and peak RSS in MiB."""
    command = [sys.executable, "-m", "posecli", "infer", *map(str, args)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    match = SUMMARY.search(err)
    if status != 0 or match is None:
        raise SystemExit(f"posecli infer failed: {err.decode()}")
    frames, seconds = int(match[1]), float(match[2])
    return frames / seconds, frames, usage.ru_maxrss // 1024


def repeated_video(source: Path, dest: Path, times: int, limit: int | None) -> Path:
    """source's packets `times` over (or its first `limit` packets), copied without re-encoding."""
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="matroska") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream_from_template(stream_in)
        packets = [p for p in inp.demux(stream_in) if p.size][:limit]
        stamps = [(p.pts, p.dts) for p in packets]
        step = max(max(s for s in stamp if s is not None) for stamp in stamps) + 1
        for loop in range(times):
            for packet, (pts, dts) in zip(packets, stamps, strict=True):
                packet.stream = stream
                packet.time_base = stream_in.time_base  # muxing rescaled it
                packet.pts = None if pts is None else pts + loop * step
                packet.dts = None if dts is None else dts + loop * step
                out.mux(packet)
    return dest


def video_figures(estimator: PoseEstimator, video: Path, tmp: Path, frames: int) -> None:
    """The ceiling and end-to-end figures for one video."""
    source = VideoSource(str(video))
    width, height = source.width, source.height
    source.close()
    decode_ms, kept = decode_cpu_ms(estimator, str(video))
    invoke_ms = invoke_cpu_ms(estimator, kept, frames)
    cores = len(os.sched_getaffinity(0))
    ceiling = cores * 1000 / (decode_ms + invoke_ms)
    out = tmp / "out.jsonl"
    plain, count, _ = run_infer(video, "--format", "jsonl", "-o", out)
    saved, _, _ = run_infer(video, "--format", "jsonl", "-o", out, "--save-dir", tmp / "saved")
    print(f"{video.name}: {count} frames {width}x{height}, {cores} cores")
    print(f"  decode {decode_ms:.2f} + invoke {invoke_ms:.2f} ms CPU/frame: "
          f"ceiling {ceiling:.1f} frames/s")  # fmt: skip
    print(f"  infer -f jsonl -o out.jsonl: {plain:.1f} frames/s = {plain / ceiling:.2f} of ceiling "
          f"(target >= 0.90)")  # fmt: skip
    print(f"  with --save-dir: {saved:.1f} frames/s = {saved / plain:.2f} x without "
          f"(target >= 0.40)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--smoke", action="store_true", help="Short videos only (a quick check).")
    args = parser.parse_args()
    videos = args.shared / "videos"
    estimator = PoseEstimator()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as name:
        tmp = Path(name)
        limit = 30 if args.smoke else None
        for video in ("coco-pan-720p30.mp4", "coco-pan-1080p30.mp4"):
            clip = videos / video
            if args.smoke:
                clip = repeated_video(clip, tmp / f"smoke-{video}.mkv", 1, limit)
            video_figures(estimator, clip, tmp, 50 if args.smoke else 300)
        short = repeated_video(videos / "pets-vtest.avi", tmp / "short.mkv", 1, limit)
        long = repeated_video(videos / "pets-vtest.avi", tmp / "long.mkv", 8, limit)
        rss = []
        for video in (short, long):
            _, frames, peak = run_infer(video, "--format", "jsonl", "-o", tmp / "rss.jsonl")
            rss.append(peak)
            print(f"{video.name}: {frames} frames, peak RSS {peak} MiB")
        print(f"peak RSS long / short: {rss[1] / rss[0]:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
