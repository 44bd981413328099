"""A .tflite file in LiteRT (or tflite_runtime), with LiteRT's own messages kept off stderr."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from posecli.core.errors import ModelError
from posecli.model.metadata import tflite_metadata
from posecli.model.tensors import TensorInfo

_STDERR_LOCK = threading.Lock()
# tflite_runtime's arm64 build turns on flush-to-zero, and numpy < 2 then warns at its first
# float limits lookup (twice a run) that the smallest subnormal is zero: noise, and not -q.
SUBNORMAL_WARNING = r"The value of the smallest subnormal for <class 'numpy\.float"


def _interpreter_module():
    """The interpreter module: ai-edge-litert, else tflite_runtime on boards that ship only it."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError as exc:
            raise ModelError(
                "no TFLite interpreter: install ai-edge-litert (or tflite-runtime)"
            ) from exc
        warnings.filterwarnings("ignore", SUBNORMAL_WARNING, UserWarning)
    return interpreter


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what native code prints on fd 2 (LiteRT's INFO lines) while the block runs."""
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def library_path(name: str) -> str:
    """A delegate library as the dynamic loader needs it: a file that exists here by an absolute
    path (the loader searches its own folders for a bare name, not the current one), else the
    name as given (a library in the system's folders, such as libvx_delegate.so.2)."""
    return os.path.abspath(name) if os.path.isfile(name) else name


class TFLiteBackend:
    """A .tflite file in LiteRT (or tflite_runtime)."""

    kind = "TFLite (LiteRT)"

    def __init__(self, path: Path, threads: int, delegate: str | None):
        self.path = path
        self._interpreter = self._load(threads, delegate)
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()
        self._output_index = self._outputs[0]["index"]

    def _load(self, threads: int, delegate: str | None):
        """Create and allocate the interpreter, with the external delegate if one is named."""
        module = _interpreter_module()
        delegates = []
        if delegate:
            try:
                delegates = [module.load_delegate(library_path(delegate))]
            except (OSError, ValueError, RuntimeError, AttributeError) as exc:
                # AttributeError: a shared library without TFLite's delegate entry points
                raise ModelError(f"{delegate}: cannot load delegate ({exc})") from exc
        try:
            with native_stderr_silenced():
                interpreter = module.Interpreter(
                    model_path=str(self.path), num_threads=threads,
                    experimental_delegates=delegates,
                )  # fmt: skip
                interpreter.allocate_tensors()
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a usable TFLite model ({reason})") from exc
        return interpreter

    def input_info(self) -> TensorInfo:
        """The (first) input tensor."""
        return _tensor_info(self._input)

    def output_infos(self) -> list[TensorInfo]:
        """Every output tensor."""
        return [_tensor_info(detail) for detail in self._outputs]

    def metadata(self) -> dict:
        """Ultralytics' metadata appended to the file, or {}."""
        return tflite_metadata(self.path)

    def quantization(self) -> str:
        """'per-channel' if any tensor has several scales, else 'per-tensor' (or 'float')."""
        scale_counts = [
            len(t["quantization_parameters"]["scales"])
            for t in self._interpreter.get_tensor_details()
        ]
        if any(n > 1 for n in scale_counts):
            return "per-channel"
        return "per-tensor" if any(scale_counts) else "float"

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a batch of one, without its batch axis."""
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)[0]


def _tensor_info(detail: dict) -> TensorInfo:
    """Describe one tensor from the interpreter's details."""
    scale, zero = detail["quantization"]
    return TensorInfo(
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero),
    )
