"""Result writers for each output format, and output files that are never left half-written."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from posecli.core import files
from posecli.core.errors import ImageError, OutputError, PoseCliError
from posecli.core.keypoints import DEFAULT_LABEL
from posecli.core.results import ImageResult, Pose
from posecli.core.text import printable_path, single_line
from posecli.output.mot import mot_rows

FORMATS = ("text", "json", "jsonl", "csv", "coco", "yolo")  # yolo: a data set (yolo.py)
TRACK_FORMATS = (*FORMATS, "mot")
TAIL_BYTES = 1 << 16


class Sink:
    """Where text output goes: stdout, a results file or a special file.

    A regular file is written to a temp file beside it (a symbolic link's target) and renamed
    over it at commit; `lines` files (jsonl) are appended to one whole line per write, so
    several processes can append to one file; devices and FIFOs are written through.
    `open` makes (or checks) the destination before any work, so output problems show first.
    """

    def __init__(self, path: Path | None = None, lines: bool = False, append: bool = False):
        self.path = path
        self.lines = lines and path is not None
        self.append = append
        self._fd: int | None = None
        self._tmp: str | None = None
        self._target: Path | None = None
        self._fresh = False
        self._wrote = False

    @property
    def replaced_at_commit(self) -> bool:
        """True while results go to a temporary file that replaces the destination at commit
        (a regular file, not jsonl): nothing reaches it before."""
        return self._tmp is not None

    @property
    def is_file(self) -> bool:
        """True when writing to a named file rather than standard output."""
        return self.path is not None

    def open(self) -> None:
        """Create the destination (or its temp file) now; an OutputError if that fails."""
        if self.path is None or self._fd is not None:
            return
        if files.is_special(self.path):
            self._fd = self._os_open(os.O_WRONLY)
        elif self.lines:
            files.make_parent(self.path)
            self._fd = self._os_open(os.O_RDWR | os.O_CREAT | os.O_APPEND)
            lock_lines_file(self._fd, self.path, self.append)
            self._fresh = not self.append
        else:
            self._target = files.replace_target(self.path)
            self._fd, self._tmp = files.temp_beside(self._target)

    def _os_open(self, flags: int) -> int:
        """os.open the path, an OutputError on failure."""
        assert self.path is not None
        try:
            return os.open(self.path, flags | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise files.output_error(self.path, exc) from exc

    def write(self, text: str, flush: bool = False) -> None:
        """Write text (one image's records) to the destination, opening it first if needed."""
        if self.path is None:
            write_stdout(text, flush)
            return
        self.open()
        assert self._fd is not None
        if self._fresh:
            self._truncate()
        try:
            files.write_all(self._fd, text.encode("utf-8"), self.path)
        except OutputError:
            if self.lines:
                self._take_back_torn_line()
            raise
        self._wrote = True

    def _take_back_torn_line(self) -> None:
        """After a failed write (a full disk, a size limit), cut off the half-written line, if
        no other run is appending to the file (its lines could already follow ours)."""
        assert self._fd is not None and self.path is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        with contextlib.suppress(OSError, OutputError):
            cut_torn_line(self._fd, self.path)

    def drop_lines(self, unwanted: Callable[[bytes], bool]) -> bool:
        """Remove the lines `unwanted` picks from an appended jsonl file, holding it alone for
        the rewrite; False (nothing done) while another run is appending to it."""
        assert self.lines and self._fd is not None and self.path is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        try:
            with open(self.path, "rb") as f:
                kept = b"".join(line for line in f if not unwanted(line))
            os.ftruncate(self._fd, 0)
            files.write_all(self._fd, kept, self.path)
        except OSError as exc:
            raise files.output_error(self.path, exc) from exc
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
        return True

    def _truncate(self) -> None:
        """Empty a jsonl file that this run starts afresh (at its first record)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            raise files.output_error(self.path, exc) from exc
        self._fresh = False

    def commit(self) -> None:
        """Finish: flush stdout, or close the file and move a temp file with content into place."""
        if self.path is None:
            write_stdout("", flush=True)
            return
        if self._tmp is not None and not self._wrote:
            self.abort()
            return
        self._close()
        if self._tmp is not None and self._target is not None:
            try:
                files.commit_temp(self._tmp, self._target, self.path)
            finally:
                self.abort()

    def abort(self) -> None:
        """Stop early: a temp file is deleted, an appended file keeps its finished lines."""
        with contextlib.suppress(OutputError):  # stopping already; the first error is reported
            self._close()
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def _close(self) -> None:
        """Close the file descriptor if one is open (a deferred write error is an OutputError)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:
                raise files.output_error(self.path or "standard output", exc) from exc


def write_stdout(text: str, flush: bool) -> None:
    """Write to standard output; an OutputError (not a closed pipe) if that fails."""
    try:
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise files.output_error("standard output", exc) from exc


def lock_lines_file(fd: int, path: Path, append: bool) -> None:
    """Appenders share a lock; a run that starts the file afresh must be its only writer.

    An appender that is first to arrive also cuts off a torn last line left by a killed run.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if append and _wait_for_shared_lock(fd):
            return
        raise PoseCliError(
            f"{path}: another posecli run is writing this file; runs that share a jsonl -o "
            "file (shards) must all be given --append"
        ) from None
    if append:
        cut_torn_line(fd, path)
        fcntl.flock(fd, fcntl.LOCK_SH)


def _wait_for_shared_lock(fd: int, seconds: float = 2.0) -> bool:
    """Take a shared lock, waiting briefly for another appender's torn-line check to finish."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def cut_torn_line(fd: int, path: Path) -> None:
    """Truncate a file after its last newline (a kill can leave half a line)."""
    size = os.fstat(fd).st_size
    tail_start = max(0, size - TAIL_BYTES)
    while size:
        tail = os.pread(fd, size - tail_start, tail_start)
        newline = tail.rfind(b"\n")
        if newline >= 0 or tail_start == 0:
            keep = tail_start + newline + 1
            if keep != size:
                try:
                    os.ftruncate(fd, keep)
                except OSError as exc:
                    raise files.output_error(path, exc) from exc
            return
        tail_start = max(0, tail_start - TAIL_BYTES)


class Writer:
    """Base writer: `write` each processed image's result, then `close` once.

    `keypoint_names` are the model's K keypoint names (the CSV columns); `label` names what
    it finds (the text format's counts).
    Subclasses turn a result into records; JSON-array formats join records with a separator.
    A failed input is written only by formats with an error record (`failures`: json, jsonl).
    """

    streaming = False
    separator = ""
    failures = False

    def __init__(self, sink: Sink, keypoint_names: tuple[str, ...], label: str = DEFAULT_LABEL):
        self.sink = sink
        self.keypoint_names = keypoint_names
        self.label = label
        self.images = 0
        self.items = 0
        self.ended = False  # the trailer was written

    def write(self, result: ImageResult) -> None:
        """Add one processed image, or a failed input's error record where the format has one."""
        if not result.ok and not self.failures:
            return
        records = self.records(result)
        text = "".join(
            (self.separator if self.items + i else self.header()) + record
            for i, record in enumerate(records)
        )
        if text:
            self.sink.write(text, flush=self.streaming)
        self.items += len(records)  # once written: Ctrl-C in the write leaves the header unsent
        self.images += 1

    def close(self) -> None:
        """Write the trailer and commit; a file given nothing to write is left untouched."""
        if self.images or not self.sink.is_file:
            self._end(self.sink.write)
        self.sink.commit()

    def end_interrupted(self) -> None:
        """After Ctrl-C, end what went to standard output so that it parses (a JSON array is
        closed), unless it was ended; a file is abandoned by its sink, never looking complete."""
        if not self.sink.is_file and not self.ended:
            with contextlib.suppress(OSError, OutputError):
                self._end(lambda text: write_stdout(text, flush=True))

    def _end(self, write: Callable[[str], None]) -> None:
        """Write the trailer (after the header if no record was written), once."""
        self.ended = True
        write((self.header() if not self.items else "") + self.trailer())

    def header(self) -> str:
        """Text before the first record."""
        return ""

    def trailer(self) -> str:
        """Text after the last record."""
        return ""

    def records(self, result: ImageResult) -> list[str]:
        """One image's records as text."""
        raise NotImplementedError


class TextWriter(Writer):
    """A short human summary line per image."""

    streaming = True

    def records(self, result: ImageResult) -> list[str]:
        people = counted(len(result.poses), self.label)
        if any(p.track_id is not None for p in result.poses):
            ids = ", ".join(f"id {p.track_id}: {p.score:.2f}" for p in result.poses)
            detail = f" ({ids})"
        else:
            scores = " ".join(f"{p.score:.2f}" for p in result.poses)
            detail = f" (scores {scores})" if scores else ""
        where = single_line(printable_path(result.path))
        if result.frame is not None:
            where += f" frame {result.frame} ({result.time:.3f} s)"
        return [f"{where}: {result.width}x{result.height}, {people}{detail}\n"]


class JsonlWriter(Writer):
    """One JSON object per image (or failed input) per line, flushed as each image finishes."""

    streaming = True
    failures = True

    def records(self, result: ImageResult) -> list[str]:
        return [_json(result.to_dict()) + "\n"]


class JsonWriter(Writer):
    """A JSON array of the JSONL objects."""

    separator = ",\n"
    failures = True

    def header(self) -> str:
        return "[\n"

    def trailer(self) -> str:
        return "\n]\n"

    def records(self, result: ImageResult) -> list[str]:
        return [_json(result.to_dict())]


class CocoWriter(JsonWriter):
    """A COCO results list (pycocotools loadRes) with image_id from the file name's number."""

    failures = False

    def __init__(self, sink: Sink, keypoint_names: tuple[str, ...], label: str = DEFAULT_LABEL):
        super().__init__(sink, keypoint_names, label)
        self.ids: dict[int, str] = {}

    def records(self, result: ImageResult) -> list[str]:
        image_id = coco_image_id(result.path)
        first = self.ids.setdefault(image_id, result.path)
        if first != result.path:
            raise ImageError(f"COCO image_id {image_id} is already used by {printable_path(first)}")
        return [_json(d) for d in coco_detections(result.poses, image_id)]


class CsvWriter(Writer):
    """One row per person: image, frame and time (empty for images), person index, (track ID,)
    (class index and name, for a model of several classes,) score, box and K x (x, y, conf)."""

    def __init__(self, sink: Sink, keypoint_names: tuple[str, ...], label: str = DEFAULT_LABEL,
                 tracked: bool = False, classes: bool = False):  # fmt: skip
        super().__init__(sink, keypoint_names, label)
        self.tracked, self.classes = tracked, classes

    def header(self) -> str:
        return _csv_text([csv_columns(self.keypoint_names, self.tracked, self.classes)])

    def records(self, result: ImageResult) -> list[str]:
        record = result.to_dict()
        where = [record["image"], record.get("frame", ""), record.get("time", "")]
        rows = [[*where, i, *([pose.get("id")] if self.tracked else []),
                 *(_class_cells(pose) if self.classes else []), *_flat_pose(pose)]
                for i, pose in enumerate(record["poses"])]  # fmt: skip
        return [_csv_text([row]) for row in rows]


def _class_cells(record: dict) -> list:
    """A pose record's class index and name (empty where it has none)."""
    found = record.get("class") or {}
    return [found.get("index", ""), found.get("name", "")]


class MotWriter(Writer):
    """MOTChallenge text: `frame,id,x,y,w,h,score,-1,-1,-1` per tracked person, frames from 1."""

    def records(self, result: ImageResult) -> list[str]:
        if result.frame is None:
            raise ImageError("--format mot needs frames: a video, or images given with --sequence")
        return [row + "\n" for row in mot_rows(result.frame, result.poses)]


WRITERS: dict[str, type[Writer]] = {
    "text": TextWriter,
    "json": JsonWriter,
    "jsonl": JsonlWriter,
    "csv": CsvWriter,
    "coco": CocoWriter,
    "mot": MotWriter,
}


def make_writer(
    fmt: str,
    path: Path | None,
    keypoint_names: tuple[str, ...],
    append: bool = False,
    tracked: bool = False,
    label: str = DEFAULT_LABEL,
    classes: bool = False,
) -> Writer:
    """A writer for the format, to `path` (atomically, jsonl appended per image) or stdout.

    A jsonl file is started afresh unless `append`. `tracked` adds the `id` column to CSV and
    `classes` (a model of several classes) the `class` and `class_name` columns; `label` is what
    the model finds.
    """
    sink = Sink(path, lines=fmt == "jsonl", append=append)
    if fmt == "csv":
        return CsvWriter(sink, keypoint_names, label, tracked, classes)
    return WRITERS[fmt](sink, keypoint_names, label)


def counted(n: int, label: str) -> str:
    """'1 person', '3 people'; another class name takes an s: '3 hands'."""
    if label == DEFAULT_LABEL:
        return f"{n} {'person' if n == 1 else 'people'}"
    return f"{n} {label}{'' if n == 1 else 's'}"


def csv_columns(keypoint_names: tuple[str, ...], tracked: bool = False,
                classes: bool = False) -> list[str]:  # fmt: skip
    """The CSV header: image, frame, time, person, (id,) (class, class_name,) score, box, then
    <name>_x, _y, _conf."""
    keypoint_columns = (f"{n}_{axis}" for n in keypoint_names for axis in ("x", "y", "conf"))
    track = ["id"] if tracked else []
    kind = ["class", "class_name"] if classes else []
    return ["image", "frame", "time", "person", *track, *kind, "score", "x1", "y1", "x2", "y2",
            *keypoint_columns]  # fmt: skip


def _json(obj: dict) -> str:
    """Compact JSON that keeps non-ASCII text readable."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _flat_pose(record: dict) -> list[float]:
    """A pose's JSON record as score, x1, y1, x2, y2, then x, y, conf for each keypoint."""
    return [record["score"], *record["box"], *(v for kp in record["keypoints"] for v in kp)]


def _csv_text(rows: list[list]) -> str:
    """CSV-encode rows to a string."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def coco_image_id(path: str) -> int:
    """COCO image_id: the number that ends the file name's stem (000000397133.jpg gives 397133)."""
    match = re.search(r"([0-9]+)$", Path(path).stem)
    if match is None:
        raise ImageError("the file name does not end in a number to use as a COCO image_id")
    return int(match.group(1))


def coco_detections(poses: Iterable[Pose], image_id: int, category_id: int = 1) -> list[dict]:
    """COCO result entries: the category, bbox [x, y, w, h], keypoints [x, y, conf] x K, score;
    tracked poses also "track_id" (PoseTrack's key: loadRes overwrites "id")."""
    return [
        {
            **({} if p.track_id is None else {"track_id": p.track_id}),
            "image_id": image_id,
            "category_id": category_id,
            "bbox": np.round(np.r_[p.box[:2], p.box[2:] - p.box[:2]].astype(float), 2).tolist(),
            "keypoints": np.round(p.keypoints.astype(float), 4).ravel().tolist(),
            "score": round(float(p.score), 5),
        }
        for p in poses
    ]
