"""Turning command-line sources (files, folders, globs, '-', cameras, URLs) into inputs."""

from __future__ import annotations

import glob
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from posecli.media import video

IMAGE_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".webp",
        ".avif",
        ".gif",
        ".tif",
        ".tiff",
        ".jp2",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
    ]
)


MAX_PATH_LINE = 65536
IMAGE_DATA_ON_STDIN = "standard input holds image data, not paths; give the file name instead"


@dataclass(frozen=True)
class Item:
    """One image or video to process: the path (or camera, or URL) to read and its name relative
    to the folder it came from."""

    path: str
    name: str

    @cached_property
    def is_video(self) -> bool:
        """Whether the item is read as video (see is_video_source), found out once."""
        return is_video_source(self.path)


@dataclass(frozen=True)
class Skipped:
    """A folder passed over on purpose, and why."""

    path: str
    reason: str


@dataclass
class Inputs:
    """The images found, the sources that could not be used with the reason for each, and
    what was passed over on purpose (a symbolic-link loop) with the reason."""

    items: list[Item] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    keep_missing: bool = False  # names that do not exist become items, not errors
    natural: bool = False  # folders and globs in natural order (f9 before f10)
    lists: list[str] = field(default_factory=list)  # the .txt lists of sources read


def is_image_name(name: str) -> bool:
    """True for file names with an image extension OpenCV reads."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_video_source(path: str) -> bool:
    """True for sources read as video: cameras, non-image URLs, video files by name or content."""
    if video.camera_device(path) or video.is_url(path):
        return not is_image_name(path.split("?")[0])
    if is_image_name(path):
        return False
    return video.is_video_name(path) or video.looks_like_video(path)


def is_input_name(name: str) -> bool:
    """True for the files taken from folders: images and videos, by extension."""
    return is_image_name(name) or video.is_video_name(name)


def device_or_url_item(source: str) -> Item | None:
    """An item for a camera ('0', '/dev/video0') or a URL, named for its output files."""
    if video.camera_device(source):
        return Item(source, f"camera{source.removeprefix('/dev/video')}")
    if video.is_url(source):
        tail = source.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        return Item(source, tail if "." in tail else f"{tail or 'stream'}.mp4")
    return None


def read_path_lines(stream: BinaryIO) -> list[str]:
    """Paths from a stream, one per line, undecodable bytes kept (os.fsdecode).

    A NUL byte cannot be in a path, nor a line be longer than MAX_PATH_LINE: such a stream
    holds image data (`cat photo.jpg | ...`), and it is not read any further.
    """
    paths = []
    while line := stream.readline(MAX_PATH_LINE + 1):
        if b"\0" in line or len(line) > MAX_PATH_LINE:
            raise ValueError(
                "standard input holds image data, not paths; give the file name instead"
            )
        if line := line.rstrip(b"\r\n"):
            paths.append(os.fsdecode(line))
    return paths


def expand(
    sources: Iterable[str],
    recursive: bool,
    stdin: BinaryIO | None = None,
    keep_missing: bool = False,
    natural: bool = False,
) -> Inputs:
    """Every image that the sources name, in a stable order, plus one error per bad source.
    With `keep_missing`, a name that does not exist is an item too (it fails in its place);
    with `natural`, folders and globs are in natural order (numbers by value), else by name."""
    inputs = Inputs(keep_missing=keep_missing, natural=natural)
    for source in sources:
        if source == "-" and stdin is not None:
            try:
                lines = read_path_lines(stdin)
            except ValueError as exc:
                inputs.errors.append((source, str(exc)))
                continue
            _add_all(inputs, lines, recursive)
        elif is_list_file(source):
            _add_list(inputs, source, recursive)
        else:
            _add_all(inputs, [source], recursive)
    return inputs


def is_list_file(source: str) -> bool:
    """True for a .txt file named as a source: a list of sources, one per line (Ultralytics')."""
    return source.lower().endswith(".txt") and os.path.isfile(source)


def _add_list(inputs: Inputs, path: str, recursive: bool) -> None:
    """The sources a .txt list names, in its order; a relative name that is not found from
    the current folder is taken from the list's folder (as Ultralytics does)."""
    try:
        with open(path, "rb") as f:
            lines = read_path_lines(f)
    except OSError as exc:
        inputs.errors.append((path, (exc.strerror or str(exc)).lower()))
        return
    except ValueError:
        inputs.errors.append((path, "not a list of sources (a NUL byte or a 64 KiB line)"))
        return
    if not lines:
        inputs.errors.append((path, "an empty list of sources"))
    inputs.lists.append(path)
    folder = os.path.dirname(path)
    _add_all(inputs, [_listed(line, folder) for line in lines], recursive)


def _listed(name: str, folder: str) -> str:
    """A name from a list file: as it is, unless only the list's folder holds it."""
    beside = os.path.join(folder, name)
    if os.path.lexists(name) or not os.path.lexists(beside):
        return name
    return beside


def _add_all(inputs: Inputs, sources: list[str], recursive: bool) -> None:
    """Expand each source into `inputs` (a .txt among them is a file, not a list)."""
    for source in sources:
        if (item := device_or_url_item(source)) is not None:
            inputs.items.append(item)
        elif os.path.isdir(source):
            _add_folder(inputs, source, recursive)
        elif os.path.lexists(source) or (inputs.keep_missing and _names_a_file(source)):
            inputs.items.append(Item(source, os.path.basename(source)))
        elif glob.has_magic(source):
            matches = sorted(glob.glob(source, recursive=True), key=_order(inputs))
            if not matches:
                inputs.errors.append((source, "no file matches this pattern"))
            _add_all(inputs, matches, recursive)
        else:
            inputs.errors.append((source, "no such file or directory"))


def _names_a_file(source: str) -> bool:
    """True for a name that stands for one file: not a pattern, not a folder (a trailing /)."""
    return not glob.has_magic(source) and bool(os.path.basename(source))


def _add_folder(inputs: Inputs, root: str, recursive: bool) -> None:
    """The images in a folder (and its subfolders with `recursive`), or one error if none."""
    before, errors_before = len(inputs.items), len(inputs.errors)
    for found in _walk(root, root, recursive, frozenset(), _order(inputs)):
        if isinstance(found, Item):
            inputs.items.append(found)
        elif isinstance(found, Skipped):
            inputs.warnings.append((found.path, found.reason))
        else:
            inputs.errors.append(found)
    if len(inputs.items) == before and len(inputs.errors) == errors_before:
        hint = "" if recursive or not _has_subfolder(root) else " (use -r to look in subfolders)"
        inputs.errors.append((root, f"no images or videos in this folder{hint}"))


def _has_subfolder(folder: str) -> bool:
    """Whether the folder holds a folder (or a link to one); False if it cannot be read."""
    try:
        with os.scandir(folder) as entries:
            return any(_is_dir(entry) for entry in entries)
    except OSError:
        return False


def natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key for natural order: runs of digits by value (f9 < f10), then the name itself."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def _order(inputs: Inputs) -> Callable[[str], Any]:
    """The sort key of names for these inputs: natural order, or plain."""
    return natural_key if inputs.natural else str


def _walk(
    folder: str,
    root: str,
    recursive: bool,
    ancestors: frozenset[tuple[int, int]],
    order: Callable[[str], Any],
) -> Iterator[Item | Skipped | tuple[str, str]]:
    """Images and videos below folder, names sorted by `order` (a subfolder is one only with
    `recursive`, whatever its name); symlink loops skipped, unreadable folders reported."""
    try:
        st = os.stat(folder)
        entries = sorted(os.scandir(folder), key=lambda e: order(e.name))
    except OSError as exc:
        yield folder, (exc.strerror or str(exc)).lower()
        return
    ancestors = ancestors | {(st.st_dev, st.st_ino)}
    for entry in entries:
        if recursive and _is_dir(entry):
            target = os.stat(entry.path)
            if (target.st_dev, target.st_ino) in ancestors:
                yield Skipped(entry.path, "symbolic link loop, not followed")
            else:
                yield from _walk(entry.path, root, recursive, ancestors, order)
        elif is_input_name(entry.name) and not _is_dir(entry):
            yield Item(entry.path, os.path.relpath(entry.path, root))


def _is_dir(entry: os.DirEntry) -> bool:
    """True for a folder or a link to one; False where the link is broken."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def select_shard(items: list[Item], index: int, count: int) -> list[Item]:
    """The items of shard `index` of `count`: a stable split by a checksum of each path."""
    return [i for i in items if zlib.crc32(os.fsencode(i.path)) % count == index]


def unique_names(
    items: list[Item], output_name: Callable[[Item], str] = lambda i: i.name
) -> list[Item]:
    """Rename items whose output names collide (a/x.jpg, b/x.jpg given as files; x.gif and
    x.jpg when both are saved as x.jpg) to x_1.jpg...; a path given twice keeps one name."""
    seen: set[str] = set()
    named: dict[str, Item] = {}
    out = []
    for item in items:
        if item.path in named:
            out.append(named[item.path])
            continue
        candidate, stem, n = item, Path(item.name), 0
        while output_name(candidate) in seen:
            n += 1
            candidate = Item(item.path, str(stem.with_name(f"{stem.stem}_{n}{stem.suffix}")))
        seen.add(output_name(candidate))
        named[item.path] = candidate
        out.append(candidate)
    return out
