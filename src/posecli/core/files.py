"""Output files: atomic replacement of regular files, writing through special files and links.

Every OS error on an output becomes an OutputError naming the path and the reason.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from posecli.core.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)
# A temp name is `.NAME.XXXXXXXX.part`: NAME is cut so that the whole stays under NAME_MAX.
TEMP_NAME_BYTES = 200


def reason(exc: OSError) -> str:
    """The OS's reason for an error, in lower case ('no space left on device')."""
    return (exc.strerror or str(exc)).lower()


def output_error(path: object, exc: OSError) -> OutputError:
    """An OutputError naming path and the OS's reason."""
    return OutputError(f"{path}: cannot write: {reason(exc)}")


def identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file a path leads to, or None if there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def is_special(path: Path) -> bool:
    """True when path leads to something that is not a regular file (a device, FIFO, socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def replace_target(path: Path) -> Path:
    """The path an atomic write must replace: a symbolic link's final target, else path."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def make_parent(path: Path) -> None:
    """Create the folders above path that are missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file where a folder should be
        raise output_error(path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))) from exc
    except OSError as exc:
        raise output_error(path, exc) from exc


def check_name_length(path: Path) -> None:
    """Refuse a file name longer than its folder allows, before any work is done."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    if len(os.fsencode(path.name)) > limit:
        raise OutputError(f"{path}: cannot write: file name too long (over {limit} bytes)")


def temp_beside(path: Path) -> tuple[int, str]:
    """Open a hidden temporary file next to path, with the permissions a new file would get."""
    make_parent(path)
    check_name_length(path)
    short = os.fsdecode(os.fsencode(path.name)[:TEMP_NAME_BYTES])
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{short}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


def write_all(fd: int, data: bytes, path: object) -> None:
    """Write every byte to fd (one write call for what the OS takes at once)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise output_error(path, exc) from exc


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write data so readers see the old file or the whole new one, never a part.

    A device or FIFO is written through; a symbolic link's target is replaced, not the link.
    """
    if is_special(path):
        write_through(path, data)
        return
    target = replace_target(path)
    fd, tmp = temp_beside(target)
    try:
        try:
            write_all(fd, data, path)
        finally:
            os.close(fd)
        commit_temp(tmp, target, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_through(path: Path, data: bytes) -> None:
    """Write data to an existing special file (a device or FIFO) in place."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise output_error(path, exc) from exc
    try:
        write_all(fd, data, path)
    finally:
        os.close(fd)


def commit_temp(tmp: str, target: Path, shown: object) -> None:
    """Move a finished temp file over its target."""
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise output_error(shown, exc) from exc


def check_writable(path: Path) -> None:
    """Before any work: prove path can be written (its temp file is made and removed)."""
    if is_special(path):
        return
    fd, tmp = temp_beside(replace_target(path))
    os.close(fd)
    os.unlink(tmp)


def check_folder_writable(folder: Path) -> None:
    """Create folder if needed and prove a file can be created in it; an error names the
    folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".posecli.", suffix=".part", dir=folder)
    except FileExistsError as exc:  # a file where the folder should be
        raise output_error(folder, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))) from exc
    except OSError as exc:
        raise output_error(folder, exc) from exc
    os.close(fd)
    os.unlink(tmp)
