"""A run's counts, and its closing summary line."""

from __future__ import annotations

import time

from posecli.core.results import ImageResult
from posecli.core.text import plural


class Stats:
    """Counts for the closing summary line."""

    def __init__(self, videos: set[str]) -> None:
        self.videos = videos  # the paths whose results are video frames
        self.read: set[str] = set()  # the videos that gave frames
        self.images = self.frames = self.poses = self.failed = self.unsaved = self.dropped = 0
        self.live = False
        self.start = time.perf_counter()

    def add(self, result: ImageResult) -> None:
        """Count one processed image (alone or a frame of a --sequence) or video frame."""
        if result.path not in self.videos:
            self.images += 1
        else:
            self.frames += 1
            self.read.add(result.path)
        self.poses += len(result.poses)

    def summary(self, skipped: int = 0) -> str:
        """'N images, V videos, F frames, M poses, K failed' with timing (skips, dropped frames
        if any); images only if there were some or no frames, poses and rate only if any ran."""
        elapsed = time.perf_counter() - self.start
        count, unit = (self.frames, "frames") if self.frames else (self.images, "images")
        rate = f" ({count / elapsed if elapsed > 0 else 0.0:.1f} {unit}/s)" if count else ""
        skip = f", {skipped} skipped" if skipped else ""
        unsaved = f", {self.unsaved} not saved" if self.unsaved else ""
        images = [plural(self.images, "image")] if self.images or not self.frames else []
        videos = [plural(len(self.read), "video"), plural(self.frames, "frame")] * bool(self.frames)
        poses = [plural(self.poses, "pose")] if count else []
        dropped = f", {plural(self.dropped, 'frame')} dropped" if self.live or self.dropped else ""
        done = ", ".join([*images, *videos, *poses, f"{self.failed} failed"])
        return f"{done}{unsaved}{skip}{dropped} in {elapsed:.2f} s{rate}"
