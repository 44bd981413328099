"""Telling regular files from folders, FIFOs and devices, which are never read as data files."""

from __future__ import annotations

import os
import stat

SPECIAL_FILES = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def special_kind(mode: int) -> str | None:
    """None for a regular file; else what it is ("FIFO", "character device", ...)."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in SPECIAL_FILES if test(mode)), "special file")


def not_regular_reason(path: str | os.PathLike) -> str | None:
    """Why a path cannot be read as a data file (missing, a folder, a FIFO...), or None.

    Only stat is used, so a FIFO or device is never opened.
    """
    try:
        kind = special_kind(os.stat(path).st_mode)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    if kind == "directory":
        return "is a directory"
    return f"not a regular file but a {kind}" if kind else None
