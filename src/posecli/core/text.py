"""Text for one-line messages and records: file names as valid UTF-8, no line breaks."""

from __future__ import annotations

import os


def printable_path(path: str) -> str:
    """A path as valid UTF-8 text: undecodable bytes of non-UTF-8 names shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


LINE_BREAKERS = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != 9} | {10: "\\n", 13: "\\r"}


def single_line(text: str) -> str:
    """Text for a one-line message or record: control characters (a newline in a file name)
    shown as \\n, \\r or \\xNN, so that one item is one line."""
    return text.translate(LINE_BREAKERS)


def plural(count: int, noun: str) -> str:
    """'1 image', '2 images'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
