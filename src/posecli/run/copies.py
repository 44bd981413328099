"""Annotated copies: where they go, images drawn in the workers or in order, and the copy of
each video, started, fed and finished by the pipeline's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posecli.core.errors import ImageError, OutputError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, People
from posecli.media import images
from posecli.media.sources import Item
from posecli.output.draw import DrawStyle, draw_poses
from posecli.output.video_writer import AnnotatedVideo
from posecli.pipeline.events import FrameResult, ImageHook, SourceEnd, VideoStart

SAVE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Drawing:
    """How annotated copies are drawn: keypoints from `kpt_conf`, in `style`."""

    kpt_conf: float = 0.5
    style: DrawStyle = field(default_factory=DrawStyle)


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


class AnnotatedImages:
    """The annotated copies of images: drawn in the workers as they finish (`in_workers`), or
    kept there and drawn in order by `finish` with the poses that are written (tracked ones)."""

    def __init__(self, save_dir: Path | None, items: dict[str, Item], kpt_conf: float,
                 style: DrawStyle, spec: KeypointSpec, in_workers: bool):  # fmt: skip
        self.save_dir, self.items, self.kpt_conf, self.spec = save_dir, items, kpt_conf, spec
        self.style = style
        self.in_workers = in_workers
        self.kept: dict[str, np.ndarray] = {}
        self.failures: dict[str, str] = {}

    @property
    def hook(self) -> ImageHook | None:
        """The pipeline's per-image hook, when annotated copies are asked for."""
        return None if self.save_dir is None else self._hook

    def _hook(self, path: str, bgr: np.ndarray, poses: People) -> None:
        """In a worker: save the copy, or keep the pixels for `finish`."""
        if not self.in_workers:
            self.kept[path] = bgr
            return
        failure = self._save(path, bgr, poses)
        if failure:
            self.failures[path] = failure

    def finish(self, result: ImageResult) -> str | None:
        """Save a kept image's copy with the result's poses; the error line of a failed copy."""
        bgr = self.kept.pop(result.path, None)
        if bgr is not None:
            return self._save(result.path, bgr, result.poses)
        return self.failures.pop(result.path, None)

    def _save(self, path: str, bgr: np.ndarray, poses: People) -> str | None:
        """Write one annotated copy; the error line if that fails."""
        assert self.save_dir is not None
        return save_annotated(annotated_copy(self.save_dir, self.items[path]), bgr, poses,
                              self.kpt_conf, self.spec, self.style)  # fmt: skip


def save_annotated(dest: Path, bgr, poses: People, kpt_conf: float,
                   spec: KeypointSpec, style: DrawStyle) -> str | None:  # fmt: skip
    """Write the annotated copy of an image atomically; the error line if that fails."""
    try:
        images.write_atomic(dest, draw_poses(bgr, poses, kpt_conf, spec, style))
    except (ImageError, OutputError) as exc:
        return not_saved(exc)
    return None
