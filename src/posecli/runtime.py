"""Loading a TFLite pose model into LiteRT (or tflite_runtime) and running it."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

STRIDES = (8, 16, 32)
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


def grid_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """(rows, columns) of the stride 8, 16 and 32 anchor grids of an N x M input, in output order.

    A stride-2 convolution rounds up, so a side that does not divide gives ceil(side / s) cells.
    """
    return [(-(-height // s), -(-width // s)) for s in STRIDES]


def anchors_for(height: int, width: int) -> int:
    """Output columns F for an N x M input: the cells of its anchor grids."""
    return sum(rows * cols for rows, cols in grid_shapes(height, width))


def default_threads() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and (scale, zero point) of one model tensor."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


def library_path(name: str) -> str:
    """A delegate library as the dynamic loader needs it: a file that exists here by an absolute
    path (the loader searches its own folders for a bare name, not the current one), else the
    name as given (a library in the system's folders, such as libvx_delegate.so.2)."""
    return os.path.abspath(name) if os.path.isfile(name) else name


class PoseModel:
    """A loaded pose model: checks its layout, turns an (N, M, 3) RGB image into (5 + K*D, F)."""

    def __init__(self, path: Path, threads: int | None = None, delegate: str | None = None):
        self.path = Path(path)
        self._interpreter = self._load(threads or default_threads(), delegate)
        self._lock = threading.Lock()  # one invoke at a time: the interpreter is not reentrant
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_size, self.output_rows = self._check_layout()

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

    def _check_layout(self) -> tuple[tuple[int, int], int]:
        """Validate input (1, N, M, 3) and output (1, rows, F); return ((M, N), rows)."""
        in_shape = tuple(int(v) for v in self._input["shape"])
        out_shape = tuple(int(v) for v in self._output["shape"])
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3 or min(in_shape[1:3]) < 1:
            raise ModelError(f"{self.path}: input shape {in_shape} is not (1, N, M, 3)")
        height, width = in_shape[1:3]
        anchors = anchors_for(height, width)
        if len(out_shape) != 3 or out_shape[0] != 1 or out_shape[2] != anchors:
            raise ModelError(
                f"{self.path}: output shape {out_shape} is not the pose layout "
                f"(1, 5 + K x D, {anchors}) for a {height} x {width} input; "
                "is this a detection or another model?"
            )
        return (width, height), out_shape[1]

    def info(self) -> dict[str, TensorInfo]:
        """Input and output tensor descriptions."""
        return {"input": _tensor_info(self._input), "output": _tensor_info(self._output)}

    def quantization(self) -> str:
        """'per-channel' if any tensor has several scales, else 'per-tensor' (or 'float')."""
        scale_counts = [
            len(t["quantization_parameters"]["scales"])
            for t in self._interpreter.get_tensor_details()
        ]
        if any(n > 1 for n in scale_counts):
            return "per-channel"
        return "per-tensor" if any(scale_counts) else "float"

    def run(self, rgb: np.ndarray) -> np.ndarray:
        """Invoke on one (N, M, 3) uint8 RGB image; return the (5 + K*D, F) float32 output.

        Safe from several threads: their calls take turns.
        """
        model_input = self._to_input(rgb)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], model_input)
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output["index"])[0]
        return self._from_output(output)

    def _to_input(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 goes in unchanged; other input types are quantized or normalized to 0..1."""
        dtype = self._input["dtype"]
        if dtype == np.uint8:
            return rgb
        scale, zero = self._input["quantization"]
        values = rgb.astype(np.float32) / 255.0
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)
        return values.astype(dtype)

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        """Dequantize an integer output; float outputs pass through."""
        if raw.dtype == np.float32:
            return raw
        scale, zero = self._output["quantization"]
        return ((raw.astype(np.float32) - zero) * scale).astype(np.float32)


def _tensor_info(detail: dict) -> TensorInfo:
    """Describe one tensor from the interpreter's details."""
    scale, zero = detail["quantization"]
    return TensorInfo(
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero),
    )
