"""Result writers for each output format, and output files that are never left half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from .errors import ImageError
from .files import temp_beside
from .pose import KEYPOINT_NAMES, ImageResult, Pose, printable_path

FORMATS = ("text", "json", "jsonl", "csv", "coco")
CSV_COLUMNS = [
    "image", "person", "score", "x1", "y1", "x2", "y2",
    *(f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in ("x", "y", "conf")),
]  # fmt: skip


class Sink:
    """Text output: stdout, a file appended to as it goes (jsonl), or a temp file renamed at commit.

    A file is opened only at the first write, so a run that writes nothing leaves it untouched.
    """

    def __init__(self, path: Path | None = None, atomic: bool = True, append: bool = False):
        self.path = path
        self.atomic = atomic and path is not None
        self.append = append
        self._stream: TextIO | None = sys.stdout if path is None else None
        self._tmp: str | None = None

    @property
    def is_file(self) -> bool:
        """True when writing to a named file rather than standard output."""
        return self.path is not None

    def write(self, text: str, flush: bool = False) -> None:
        """Write text, opening the destination first if needed."""
        stream = self._stream or self._open()
        stream.write(text)
        if flush:
            stream.flush()

    def _open(self) -> TextIO:
        """Open the file (or its temporary stand-in) for writing."""
        assert self.path is not None
        stream: TextIO
        if self.atomic:
            fd, self._tmp = temp_beside(self.path)
            stream = open(fd, "w", encoding="utf-8", newline="")
        else:
            stream = open(self.path, "a" if self.append else "w", encoding="utf-8", newline="")
        self._stream = stream
        return stream

    def commit(self) -> None:
        """Finish: flush stdout, or close the file and move a temp file into place."""
        if self._stream is None:
            return
        self._stream.flush()
        if self.is_file:
            self._stream.close()
            if self._tmp and self.path is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None

    def abort(self) -> None:
        """Stop early: a temp file is deleted, an appended file keeps its finished lines."""
        if self._stream is None or not self.is_file:
            return
        self._stream.close()
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None


class Writer:
    """Base writer: `write` each processed image's result, then `close` once.

    Subclasses turn a result into records; JSON-array formats join records with a separator.
    """

    atomic = True
    separator = ""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.images = 0
        self.items = 0

    def write(self, result: ImageResult) -> None:
        """Add one successfully processed image."""
        records = self.records(result)
        text = "".join(
            (self.separator if self.items + i else self.header()) + record
            for i, record in enumerate(records)
        )
        self.items += len(records)
        self.images += 1
        if text:
            self.sink.write(text, flush=not self.atomic)

    def close(self) -> None:
        """Write the trailer and commit; a file with no processed image is left untouched."""
        if self.images or not self.sink.is_file:
            self.sink.write((self.header() if not self.items else "") + self.trailer())
        self.sink.commit()

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

    atomic = False

    def records(self, result: ImageResult) -> list[str]:
        n = len(result.poses)
        people = f"{n} {'person' if n == 1 else 'people'}"
        scores = " ".join(f"{p.score:.2f}" for p in result.poses)
        detail = f" (scores {scores})" if scores else ""
        return [
            f"{printable_path(result.path)}: {result.width}x{result.height}, {people}{detail}\n"
        ]


class JsonlWriter(Writer):
    """One JSON object per image per line, flushed as each image finishes."""

    atomic = False

    def records(self, result: ImageResult) -> list[str]:
        return [_json(result.to_dict()) + "\n"]


class JsonWriter(Writer):
    """A JSON array of the JSONL objects."""

    separator = ",\n"

    def header(self) -> str:
        return "[\n"

    def trailer(self) -> str:
        return "\n]\n"

    def records(self, result: ImageResult) -> list[str]:
        return [_json(result.to_dict())]


class CocoWriter(JsonWriter):
    """A COCO results list (pycocotools loadRes) with image_id from the file name's digits."""

    def records(self, result: ImageResult) -> list[str]:
        return [_json(d) for d in coco_detections(result.poses, coco_image_id(result.path))]


class CsvWriter(Writer):
    """One row per person: image, person index, score, box and 17 x (x, y, conf)."""

    def header(self) -> str:
        return _csv_text([CSV_COLUMNS])

    def records(self, result: ImageResult) -> list[str]:
        name = printable_path(result.path)
        return [_csv_text([[name, i, *_flat_pose(p)]]) for i, p in enumerate(result.poses)]


WRITERS: dict[str, type[Writer]] = {
    "text": TextWriter,
    "json": JsonWriter,
    "jsonl": JsonlWriter,
    "csv": CsvWriter,
    "coco": CocoWriter,
}


def make_writer(fmt: str, path: Path | None, append: bool = False) -> Writer:
    """A writer for the format, to `path` (atomically unless jsonl/text) or stdout."""
    cls = WRITERS[fmt]
    return cls(Sink(path, atomic=cls.atomic, append=append))


def _json(obj: dict) -> str:
    """Compact JSON that keeps non-ASCII text readable."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _flat_pose(pose: Pose) -> list[float]:
    """score, x1, y1, x2, y2, then x, y, conf for each keypoint, rounded as in JSON output."""
    record = pose.to_dict()
    return [record["score"], *record["box"], *(v for kp in record["keypoints"] for v in kp)]


def _csv_text(rows: list[list]) -> str:
    """CSV-encode rows to a string."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def coco_image_id(path: str) -> int:
    """COCO image_id from the digits in the file's name (000000397133.jpg gives 397133)."""
    digits = re.sub(r"\D", "", Path(path).stem)
    if not digits:
        raise ImageError("no digits in the file name to use as a COCO image_id")
    return int(digits)


def coco_detections(poses: list[Pose], image_id: int) -> list[dict]:
    """COCO result entries: category 1, bbox [x, y, w, h], keypoints [x, y, conf] x 17, score."""
    return [
        {
            "image_id": image_id,
            "category_id": 1,
            "bbox": np.round(np.r_[p.box[:2], p.box[2:] - p.box[:2]].astype(float), 2).tolist(),
            "keypoints": np.round(p.keypoints.astype(float), 4).ravel().tolist(),
            "score": round(float(p.score), 5),
        }
        for p in poses
    ]
