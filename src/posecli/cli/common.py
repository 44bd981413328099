"""What every command shares: exit statuses, one-line messages, closed streams, progress."""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

import click

from posecli.core import files
from posecli.core.text import single_line
from posecli.output.writers import write_stdout

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_OUTPUT = 0, 1, 2, 70, 74


def error(message: str) -> None:
    """One `posecli: error: ...` line on standard error."""
    click.echo(f"posecli: error: {single_line(message)}", err=True)


def echo(text: str) -> None:
    """A line on standard output; a full disk there is an output error, not a bug."""
    write_stdout(text + "\n", flush=True)


class ClosedOutput(io.TextIOBase):
    """Standard output that the caller closed (`>&-`): writing to it is an output error, from
    posecli's writers and from click's help and version text alike."""

    def write(self, text: str) -> int:
        raise files.output_error("standard output", OSError(errno.EBADF, "it is closed"))


def stand_in_for_closed_streams() -> None:
    """Give closed standard streams (`<&-`, `>&-`, `2>&-`) stand-ins: /dev/null on the file
    descriptor, so that no file opened later takes its number; ClosedOutput for results sent
    to standard output; /dev/null for messages; an empty standard input."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")
    if sys.stdin is None:
        sys.stdin = open(os.devnull)


def divert_native_stderr() -> None:
    """Drop what native libraries print on fd 2 (libjpeg, libpng, LiteRT); posecli's own
    messages (sys.stderr) go on to a copy of the original standard error.

    A file that a library complains about still gets its own error line when it cannot be
    decoded; the library's words are not attributable to one image among parallel workers.
    """
    try:
        sys.stderr.flush()
        own = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return  # no standard error to protect
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(own, "w", encoding=encoding, errors="backslashreplace", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def info(message: str, quiet: bool) -> None:
    """A status line on standard error unless --quiet."""
    if not quiet:
        click.echo(single_line(message), err=True)


def warning(message: str, quiet: bool) -> None:
    """One `posecli: warning: ...` line on standard error unless --quiet."""
    info(f"posecli: warning: {message}", quiet)


def with_progress(
    results: Iterable[T], total: int, quiet: bool, label: str = "posecli"
) -> Iterator[T]:
    """The results, with a progress bar on a terminal's stderr when there is more than one."""
    if quiet or total < 2 or not sys.stderr.isatty():
        yield from results
        return
    with click.progressbar(results, length=total, file=sys.stderr, label=label) as bar:
        yield from bar
