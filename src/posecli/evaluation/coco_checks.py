"""Field-by-field checks of COCO keypoint annotation and results files, so that a malformed
entry is one clear error naming it rather than a failure deep in pycocotools."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from posecli.core.errors import AnnotationError

Check = Callable[[object], bool]


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_id(value: object) -> bool:
    """An int id (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def numbers(count: int) -> Check:
    """A check for a list of `count` finite numbers."""
    return lambda v: isinstance(v, list) and len(v) == count and all(map(is_number, v))


IMAGE_FIELDS: dict[str, tuple[Check, str]] = {
    "id": (is_id, "an integer"),
    "file_name": (lambda v: isinstance(v, str) and bool(v), "a file name"),
}


def annotation_fields(count: int) -> dict[str, tuple[Check, str]]:
    """What an annotation of a category with `count` keypoints must hold, for COCOeval."""
    return {
        "image_id": (is_id, "an integer"),
        "bbox": (numbers(4), "4 numbers"),
        "area": (is_number, "a number"),
        "iscrowd": (lambda v: v in (0, 1) and not isinstance(v, float), "0 or 1"),
        "keypoints": (numbers(3 * count), f"{3 * count} numbers (3 per keypoint)"),
        "num_keypoints": (lambda v: is_id(v) and v >= 0, "a count"),
    }


def result_fields(count: int) -> dict[str, tuple[Check, str]]:
    """What one result of a results file must hold."""
    return {
        "image_id": (is_id, "an integer"),
        "category_id": (is_id, "an integer"),
        "keypoints": (numbers(3 * count), f"{3 * count} numbers (3 per keypoint)"),
        "score": (is_number, "a number"),
        "bbox": (numbers(4), "4 numbers"),
    }


def check_entries(path: Path, what: str, entries: list, fields: dict[str, tuple[Check, str]],
                  optional: tuple[str, ...] = ()) -> None:  # fmt: skip
    """AnnotationError naming the first entry (`what`, by its id or place) that is not an object
    with every field passing its check (an `optional` one may be missing)."""
    for place, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: {what} {place + 1} is not an object")
        for name, (check, wanted) in fields.items():
            if name in optional and name not in entry:
                continue
            if not check(entry.get(name)):
                label = entry["id"] if is_id(entry.get("id")) else f"number {place + 1}"
                raise AnnotationError(
                    f"{path}: {what} {label}: {name} is {_shown(entry.get(name))}, not {wanted}"
                )


def _shown(value: object) -> str:
    """A field's value for a message: missing, or its JSON-ish text cut short."""
    if value is None:
        return "missing or null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
