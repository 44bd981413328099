"""What every command shares: exit statuses, one-line messages, interrupts and progress."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

import click

from ..pose import ImageResult
from ..writers import write_stdout

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_OUTPUT = 0, 1, 2, 70, 74


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop, keep what is done, exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


def error(message: str) -> None:
    """One `posecli: error: ...` line on standard error."""
    click.echo(f"posecli: error: {message}", err=True)


def echo(text: str) -> None:
    """A line on standard output; a full disk there is an output error, not a bug."""
    write_stdout(text + "\n", flush=True)


def info(message: str, quiet: bool) -> None:
    """A status line on standard error unless --quiet."""
    if not quiet:
        click.echo(message, err=True)


def with_progress(
    results: Iterable[ImageResult], total: int, quiet: bool, label: str = "posecli"
) -> Iterator[ImageResult]:
    """The results, with a progress bar on a terminal's stderr when there is more than one."""
    if quiet or total < 2 or not sys.stderr.isatty():
        yield from results
        return
    with click.progressbar(results, length=total, file=sys.stderr, label=label) as bar:
        yield from bar
