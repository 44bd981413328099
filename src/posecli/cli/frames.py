"""Where annotated copies go, the annotated copies of videos, and progress in frames."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from posecli.core.errors import ImageError, OutputError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import printable_path, single_line
from posecli.media.sources import Item
from posecli.output.draw import DrawStyle
from posecli.output.video_writer import AnnotatedVideo
from posecli.pipeline.flow import FrameResult, SourceEnd, VideoStart

PROGRESS_INTERVAL = 0.25
SAVE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def not_saved(exc: Exception) -> str:
    """The error line of an annotated copy that could not be written."""
    return f"{exc} (annotated copy not saved; the results are written)"


def annotated_copy(save_dir: Path, item: Item) -> Path:
    """Where the annotated copy of an item goes: an image's name, as .jpg if OpenCV can't write
    it; a video's as .mp4."""
    if item.is_video:
        return annotated_video_path(save_dir, item.name)
    dest = save_dir / item.name
    return dest if dest.suffix.lower() in SAVE_SUFFIXES else dest.with_suffix(".jpg")


def annotated_video_path(save_dir: Path, name: str) -> Path:
    """Where the annotated copy of a video goes: its name with .mp4."""
    return (save_dir / name).with_suffix(".mp4")


class AnnotatedVideos:
    """The annotated copy of each video being processed, started, fed and finished by events."""

    def __init__(
        self, save_dir: Path | None, items: dict[str, Item], kpt_conf: float, spec: KeypointSpec,
        style: DrawStyle,
    ):  # fmt: skip
        self.save_dir = save_dir
        self.items = items
        self.kpt_conf = kpt_conf
        self.spec = spec
        self.style = style
        self.open: dict[str, AnnotatedVideo] = {}

    def start(self, event: VideoStart) -> str | None:
        """Open the copy of a video that has just started; the error line if that fails."""
        if self.save_dir is None:
            return None
        dest = annotated_video_path(self.save_dir, self.items[event.path].name)
        try:
            self.open[event.path] = AnnotatedVideo(
                dest, event.width, event.height, event.fps, self.kpt_conf, self.spec, self.style
            )
        except (ImageError, OutputError) as exc:
            return not_saved(exc)
        return None

    def add(self, frame: FrameResult) -> None:
        """Draw and encode one frame of a video whose copy is open."""
        writer = self.open.get(frame.result.path)
        if writer is not None and frame.image is not None:
            writer.add(frame.image, frame.result.poses)

    def finish(self, end: SourceEnd) -> str | None:
        """Close a video's copy and move it into place (the frames it had, if it ended early);
        the error line if that fails."""
        writer = self.open.pop(end.path, None)
        try:
            if writer is not None:
                writer.finish()
        except ImageError as exc:
            return not_saved(exc)
        return None

    def abort(self) -> None:
        """Drop every unfinished copy: nothing is left under a final name."""
        for writer in self.open.values():
            writer.abort()
        self.open.clear()


class FrameProgress:
    """'NAME: frame N/TOTAL, R frames/s' on a terminal's stderr while a video runs."""

    def __init__(self, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.active = False
        self.total = self.done = 0
        self.name = ""
        self.start = self.shown = 0.0

    def begin(self, event: VideoStart) -> None:
        """A video started."""
        self.name, self.total, self.done = single_line(printable_path(event.path)), event.frames, 0
        self.start = self.shown = time.perf_counter()
        self.active = True

    def frame(self) -> None:
        """A frame finished (images between videos are not counted): redraw the line a few
        times a second."""
        if not self.active:
            return
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
        if self.enabled and self.active and self.done:
            click.echo("\r\033[K", err=True, nl=False)
        self.active = False
