"""What `infer` does per video: annotated copies, progress in frames, and resuming finished ones."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..keypoints import KeypointSpec
from ..pipeline import FrameResult, SourceEnd, VideoStart, is_video_source
from ..pose import printable_path
from ..video import VideoError, VideoSource
from ..video_writer import AnnotatedVideo

PROGRESS_INTERVAL = 0.25


def annotated_video_path(save_dir: Path, name: str) -> Path:
    """Where the annotated copy of a video goes: its name with .mp4."""
    return (save_dir / name).with_suffix(".mp4")


class AnnotatedVideos:
    """The annotated copy of each video being processed, started, fed and finished by events."""

    def __init__(
        self, save_dir: Path | None, names: dict[str, str], kpt_conf: float, spec: KeypointSpec
    ):
        self.save_dir = save_dir
        self.names = names
        self.kpt_conf = kpt_conf
        self.spec = spec
        self.open: dict[str, AnnotatedVideo] = {}

    def start(self, event: VideoStart) -> None:
        """Open the copy of a video that has just started."""
        if self.save_dir is None:
            return
        dest = annotated_video_path(self.save_dir, self.names[event.path])
        self.open[event.path] = AnnotatedVideo(
            dest, event.width, event.height, event.fps, self.kpt_conf, self.spec
        )

    def add(self, frame: FrameResult) -> None:
        """Draw and encode one frame of a video whose copy is open."""
        writer = self.open.get(frame.result.path)
        if writer is not None and frame.image is not None:
            writer.add(frame.image, frame.result.poses)

    def finish(self, end: SourceEnd) -> None:
        """Close a video's copy and move it into place (the frames it had, if it ended early)."""
        writer = self.open.pop(end.path, None)
        if writer is not None:
            writer.finish()

    def abort(self) -> None:
        """Drop every unfinished copy: nothing is left under a final name."""
        for writer in self.open.values():
            writer.abort()
        self.open.clear()


class FrameProgress:
    """'NAME: frame N/TOTAL, R frames/s' on a terminal's stderr while a video runs."""

    def __init__(self, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.total = self.done = 0
        self.name = ""
        self.start = self.shown = 0.0

    def begin(self, event: VideoStart) -> None:
        """A video started."""
        self.name, self.total, self.done = printable_path(event.path), event.frames, 0
        self.start = self.shown = time.perf_counter()

    def frame(self) -> None:
        """A frame finished: redraw the line a few times a second."""
        self.done += 1
        now = time.perf_counter()
        if self.enabled and now - self.shown >= PROGRESS_INTERVAL:
            self.shown = now
            total = f"/{self.total}" if self.total else ""
            rate = self.done / (now - self.start)
            click.echo(f"\r{self.name}: frame {self.done}{total}, {rate:.1f} frames/s  ",
                       err=True, nl=False)  # fmt: skip

    def end(self) -> None:
        """A video finished: clear the line."""
        if self.enabled and self.done:
            click.echo("\r\033[K", err=True, nl=False)


def finished_videos(jsonl: Path, paths: list[str], stride: int) -> set[str]:
    """Videos whose every frame is recorded in the jsonl file; records of the others removed.

    A video counts as finished when it has as many records as its container says it has frames
    (every `stride`th); partly recorded ones are rewritten from their first frame on resume.
    """
    counts = recorded_frame_counts(jsonl)
    done = set()
    for path in paths:
        recorded = counts.get(printable_path(path), 0)
        if recorded and recorded == expected_frames(path, stride):
            done.add(path)
    partial = {printable_path(p) for p in paths if p not in done and counts.get(printable_path(p))}
    if partial:
        drop_records(jsonl, partial)
    return done


def recorded_frame_counts(jsonl: Path) -> dict[str, int]:
    """How many frame records each source has in a jsonl file."""
    counts: dict[str, int] = {}
    if not jsonl.is_file():
        return counts
    for record in _records(jsonl.read_bytes()):
        if isinstance(record, dict) and "frame" in record and "image" in record:
            counts[record["image"]] = counts.get(record["image"], 0) + 1
    return counts


def expected_frames(path: str, stride: int) -> int:
    """Frames a full run over a video gives: its container's count / stride (0 if unknown)."""
    try:
        source = VideoSource(path)
    except VideoError:
        return 0
    try:
        return -(-source.frame_count // stride)
    finally:
        source.close()


def drop_records(jsonl: Path, images: set[str]) -> None:
    """Rewrite a jsonl file in place (it is open for appending) without these sources' records."""
    with open(jsonl, "r+b") as f:
        kept = [line for line in f.readlines() if _record_image(line) not in images]
        f.seek(0)
        f.writelines(kept)
        f.truncate()


def video_items(paths: list[str]) -> list[str]:
    """The sources among paths that are read as videos."""
    return [p for p in paths if is_video_source(p)]


def _records(data: bytes) -> list:
    """Parsed jsonl lines, skipping any that are not JSON."""
    out = []
    for line in data.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _record_image(line: bytes) -> str | None:
    """The image/source a jsonl line is about."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("image") if isinstance(record, dict) else None
