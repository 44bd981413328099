"""What a model file says about itself: Ultralytics' export metadata in TFLite and ONNX files."""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

# Ultralytics writes these as Python literals in ONNX properties (names, kpt_shape, ...).
LITERAL_KEYS = ("names", "kpt_shape", "kpt_names", "imgsz", "end2end", "args")


def tflite_metadata(path: Path) -> dict:
    """The dict Ultralytics appends to a TFLite file as a zip archive (metadata.json or
    temp_meta.txt); {} when the file carries none."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names:
                return {}
            text = archive.read(names[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError):
        return {}
    value = _literal(text)
    return value if isinstance(value, dict) else {}


def onnx_metadata(properties: dict[str, str]) -> dict:
    """An ONNX file's metadata properties, with Ultralytics' literal values parsed."""
    return {k: _literal(v) if k in LITERAL_KEYS else v for k, v in properties.items()}


def _literal(text: str) -> object:
    """JSON or a Python literal; the text itself when it is neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def class_names(metadata: dict) -> tuple[str, ...] | None:
    """The class names in index order from `names` ({0: 'person'} or a list), if given."""
    names = metadata.get("names")
    if isinstance(names, dict):
        try:
            return tuple(str(names[k]) for k in sorted(names, key=int))
        except (TypeError, ValueError):
            return None
    if isinstance(names, list | tuple) and names:
        return tuple(str(n) for n in names)
    return None
