"""`--skip-existing`: which sources a previous run finished, from its jsonl file and saved copies.

Sources are matched to records by the file's device and inode, not by the text of the path, so
`photos/a.jpg` and `/data/photos/a.jpg` are one file (relative records are taken from the
current folder). URLs and cameras are matched by their text.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from posecli.core import files
from posecli.core.text import printable_path
from posecli.media import video
from posecli.media.sources import Item
from posecli.media.video import VideoError
from posecli.output.writers import Sink
from posecli.run.copies import annotated_copy


@dataclass(frozen=True)
class Record:
    """What a jsonl record says about the run that wrote it."""

    source: str  # the "image" text
    frame: int | None  # the video frame, None for an image
    fits: bool  # written by the same command: every pose has an "id" if tracked, none if not
    failed: bool = False  # an error record: the source failed


def finished_items(
    jsonl: Path | None, save_dir: Path | None, items: list[Item], stride: int, sink: Sink,
    timeout: float, tracked: bool = False, failed: tuple[str, ...] = (),
) -> tuple[set[str], dict[str, str]]:  # fmt: skip
    """Paths already done (recorded in the jsonl file and/or saved in save_dir, both if both),
    and the items to redo whose old records cannot be removed now, with the reason.

    Only records of the same command count (`tracked`: `posecli track`'s, whose poses have an
    "id"), and a video only with every `stride`th frame recorded, each once; an error record
    makes its source unfinished. The old records of `failed` (sources that fail before the
    run, such as a missing file) are removed, as they are written again.

    An item that is redone has its records removed from the jsonl file first (a video partly
    recorded, or anything recorded whose annotated copy is missing), so that nothing is written
    twice; that needs the file to itself for a moment, so not while another run (a shard with
    --append) is writing it.
    """
    done = {i.path for i in items}
    records: list[Record] = []
    if jsonl is not None:
        records = list(recorded_sources(jsonl, tracked))
        videos = {i.path for i in items if i.is_video}
        images = [i for i in items if i.path not in videos]
        done &= recorded_files(records, images) | finished_videos(records, videos, stride, timeout)
    if save_dir is not None:
        saved = {i.path for i in items if annotated_copy(save_dir, i).is_file()}
        done &= saved
    recorded = {source_key(r.source) for r in records} - {source_key(p) for p in done}
    redone = {i.path for i in items if i.path not in done and source_key(i.path) in recorded}
    gone = {p for p in failed if source_key(p) in recorded}
    blocked = drop_records(redone | gone, sink)
    return done, {p: reason for p, reason in blocked.items() if p not in gone}


def recorded_files(records: list[Record], items: list[Item]) -> set[str]:
    """The image items that a fitting record names. A record's text names two files when a name
    with a non-UTF-8 byte, printed as \\xNN, sits beside a file literally named so: both count
    as done once that text has been recorded twice."""
    done: set[tuple[int, int]] = set()
    images = (r.source for r in records if r.frame is None and r.fits and not r.failed)
    for text, count in Counter(images).items():
        ids = {f for f in map(files.identity, spellings(text)) if f is not None}
        if count >= len(ids):
            done |= ids
    return {i.path for i in items if files.identity(i.path) in done}


def finished_videos(
    records: list[Record], paths: set[str], stride: int, timeout: float
) -> set[str]:
    """Videos whose records are exactly the frames a run at `stride` gives (0, stride, 2 x
    stride, ... of the frames their container declares), each once and fitting the run, with
    no error record. Cameras and streams are never finished."""
    frames: dict[object, list[int]] = {}
    misfits = {source_key(r.source) for r in records if r.failed}
    for r in records:
        if r.frame is not None:
            frames.setdefault(source_key(r.source), []).append(r.frame)
            if not r.fits:
                misfits.add(source_key(r.source))
    return {
        path for path in paths
        if source_key(path) in frames and source_key(path) not in misfits
        and sorted(frames[source_key(path)]) == expected_frames(path, stride, timeout)
    }  # fmt: skip


def drop_records(paths: set[str], sink: Sink) -> dict[str, str]:
    """Remove the records of `paths` from the jsonl file; if another run is writing it, the
    reason why each cannot be redone now (else nothing)."""
    keys = {source_key(p) for p in paths}
    if not keys or sink.drop_lines(lambda line: _line_key(line) in keys):
        return {}
    reason = (
        f"recorded in {printable_path(str(sink.path))} but not finished, and another run "
        "is writing that file: not redone (run --skip-existing again when it has finished)"
    )
    return dict.fromkeys(paths, reason)


def expected_frames(path: str, stride: int, timeout: float) -> list[int]:
    """The frame numbers a full run over a video file records: every `stride`th of the frames
    its container declares, or of its packets where it declares none (none for cameras and
    streams)."""
    if video.camera_device(path) or video.is_url(path):
        return []
    try:
        source = video.open_source(path, timeout)
    except VideoError:
        return []
    try:
        return [] if source.live else list(range(0, source.counted_frames(), stride))
    finally:
        source.close()


@cache
def source_key(text: str) -> object:
    """What a path or a record's text stands for: the file's (device, inode), else the text."""
    if not (video.is_url(text) or video.camera_device(text)):
        for spelling in sorted(spellings(text)):
            file_id = files.identity(spelling)
            if file_id is not None:
                return file_id
    return text


def spellings(text: str) -> set[str]:
    """The paths a record's text can stand for: itself, and with each \\xNN read as a byte."""
    raw = re.sub(
        rb"\\x([0-9a-f]{2})",
        lambda m: bytes([int(m[1], 16)]),
        text.encode("utf-8", "surrogatepass"),
    )
    return {text, os.fsdecode(raw)}


def recorded_sources(jsonl: Path, tracked: bool) -> Iterator[Record]:
    """Each complete record of a jsonl results file, and whether it fits a `tracked` run."""
    if not jsonl.is_file():
        return
    data = jsonl.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        record = _record(line)
        if record is None or not isinstance(record.get("image"), str):
            continue
        poses = record.get("poses")
        ids = [isinstance(p, dict) and "id" in p for p in poses] if isinstance(poses, list) else []
        frame = record.get("frame")
        if "frame" in record and not isinstance(frame, int):
            frame = -1  # a frame record without a frame number: it matches no frame
        fits = all(ids) if tracked else not any(ids)
        yield Record(record["image"], frame, fits, "error" in record)


def _line_key(line: bytes) -> object:
    """The source_key of a jsonl line's record, else None."""
    record = _record(line)
    if record is None or not isinstance(record.get("image"), str):
        return None
    return source_key(record["image"])


def _record(line: bytes) -> dict | None:
    """A jsonl line's record, or None when it is not a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
