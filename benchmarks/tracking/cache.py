"""Pickle files under --cache: a value computed once and read back on later runs.

Caches written by scripts/track_benchmark.py (this package's former single script, run directly
or imported by scripts/tiles_report.py) and by posecli before its subpackages still load: their
classes are looked up where they live now.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MOVED_MODULES = {  # module of a pickled class then -> module now
    "track_benchmark": "benchmarks.tracking.synthesis",
    "__main__": "benchmarks.tracking.synthesis",
    "posecli.pose": "posecli.core.results",
}


class _Unpickler(pickle.Unpickler):
    """An unpickler that finds the classes of MOVED_MODULES in their new modules."""

    def find_class(self, module: str, name: str):
        return super().find_class(MOVED_MODULES.get(module, module), name)


def read(path: Path):
    """The value pickled in a file."""
    return _Unpickler(io.BytesIO(path.read_bytes())).load()


def cached(path: Path | None, compute: Callable[[], T]) -> T:
    """The value kept at `path` when it is there, else compute() (then kept there if a path is
    given)."""
    if path and path.exists():
        return read(path)
    value = compute()
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(value))
    return value
