"""How a run shows on the terminal: one-line errors and warnings, a progress bar for images,
frame progress for videos, and the summary line when it stops early."""

from __future__ import annotations

import sys
import time
from collections.abc import Generator, Iterator

import click

from posecli.cli.common import error, info, warning, with_progress
from posecli.core.errors import OutputError
from posecli.core.text import printable_path, single_line
from posecli.pipeline.events import Event, FrameResult, SourceEnd, VideoStart
from posecli.run.job import Reporter
from posecli.run.stats import Stats

PROGRESS_INTERVAL = 0.25
NOT_WRITTEN = ", results not written (interrupted; jsonl keeps finished images)"


class CliReporter(Reporter):
    """Errors always, warnings and progress unless `quiet`, on standard error."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def error(self, line: str) -> None:
        """A `posecli: error: ...` line."""
        error(line)

    def warning(self, line: str) -> None:
        """A `posecli: warning: ...` line unless quiet."""
        warning(line, self.quiet)

    def watch(
        self, events: Iterator[Event], images: int, only_images: bool, to_stdout: bool
    ) -> Generator[Event, None, None]:
        """A bar over a run of images only, a line per video; neither when quiet or when the
        results are printed on the same terminal."""
        on_terminal = to_stdout and sys.stdout.isatty()
        progress = FrameProgress(self.quiet or on_terminal)
        no_bar = self.quiet or on_terminal or not only_images
        try:
            for event in with_progress(events, images, no_bar):
                if isinstance(event, SourceEnd):
                    progress.end()
                elif isinstance(event, VideoStart):
                    progress.begin(event)
                yield event
                if isinstance(event, FrameResult):
                    progress.frame()
        finally:
            progress.end()

    def stopped(self, stats: Stats, exc: BaseException, unwritten: bool) -> None:
        """The summary so far, saying why the run stopped."""
        if not isinstance(exc, Exception):
            info(stats.summary() + (NOT_WRITTEN if unwritten else ", interrupted"), self.quiet)
        elif isinstance(exc, OutputError):
            info(stats.summary() + ", stopped: the output cannot be written", self.quiet)


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
