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

from posecli.core.errors import ModelError
from posecli.core.keypoints import SpecArgument
from posecli.model.layouts import Layout, describe, with_coordinates
from posecli.model.metadata import tflite_metadata

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


def load_backend(path: Path, threads: int, delegate: str | None):
    """LiteRT for a TFLite file, onnxruntime for an .onnx one (by its name; TFL3 files are
    TFLite whatever their name)."""
    if path.suffix.lower() == ".onnx" and not _is_tflite(path):
        from posecli.model.onnx_backend import OnnxBackend

        return OnnxBackend(path, threads, delegate)
    return TFLiteBackend(path, threads, delegate)


def _is_tflite(path: Path) -> bool:
    """Whether the file starts like a TFLite flatbuffer (identifier TFL3 at byte 4)."""
    try:
        with path.open("rb") as file:
            return file.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


class PoseModel:
    """A loaded pose model of any layout posecli reads (see `layouts`): turns an (N, M, 3) RGB
    image into the canonical output, (4 + nc + K*D, F) or end-to-end (N, 6 + K*D), 0..1."""

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        delegate: str | None = None,
        kpt_spec: SpecArgument = None,
        layout: Layout | None = None,
        coords: str = "auto",
    ):
        self.path = Path(path)
        self._backend = load_backend(self.path, threads or default_threads(), delegate)
        self._lock = threading.Lock()  # one invoke at a time: the interpreter is not reentrant
        self._input = self._backend.input_info()
        self._output = self._backend.output_infos()[0]
        self._input_dtype = np.dtype(self._input.dtype)
        self._scale: np.ndarray | None = None
        self.layout = layout or self._describe(kpt_spec, coords)
        self.input_size = self.layout.input_size
        self._scale = self.layout.pixel_scale()

    def _describe(self, kpt_spec: SpecArgument, coords: str) -> Layout:
        """Read the layout from the tensors and metadata, then the coordinates (`coords`, or
        the output's range or a probe)."""
        outputs = [t.shape for t in self._backend.output_infos()]
        metadata = self._backend.metadata()
        self.layout = describe(self.path, self._input.shape, outputs, metadata, kpt_spec)
        onnx = self.kind.startswith("ONNX")
        return with_coordinates(self.layout, self._output_range(), self.run, onnx, coords)

    def _output_range(self) -> float | None:
        """The largest magnitude an integer output can hold, None for a float output."""
        if not self._output.scale or not np.issubdtype(self._output.dtype, np.integer):
            return None
        info = np.iinfo(self._output.dtype)
        zero = self._output.zero_point
        return max(abs(info.min - zero), abs(info.max - zero)) * self._output.scale

    @property
    def kind(self) -> str:
        """The file format and runtime: 'TFLite (LiteRT)' or 'ONNX (onnxruntime)'."""
        return self._backend.kind

    def info(self) -> dict[str, TensorInfo]:
        """Input and output tensor descriptions."""
        return {"input": self._input, "output": self._output}

    def quantization(self) -> str:
        """How the weights are quantized: 'per-channel', 'per-tensor', 'float' or the ONNX kind."""
        return self._backend.quantization()

    def run(self, rgb: np.ndarray) -> np.ndarray:
        """Invoke on one (N, M, 3) uint8 RGB image; return the canonical float32 output.

        Safe from several threads: their calls take turns.
        """
        model_input = self._to_input(rgb)[None]
        with self._lock:
            output = self._backend.invoke(model_input)
        return self._from_output(output)

    def _to_input(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 goes in unchanged; other input types are quantized or normalized to 0..1; an
        NCHW input gets its channels first."""
        dtype = self._input_dtype
        if dtype == np.uint8:
            values = rgb
        elif np.issubdtype(dtype, np.integer) and self._input.scale:
            info = np.iinfo(dtype)
            scaled = rgb.astype(np.float32) / 255.0 / self._input.scale + self._input.zero_point
            values = np.clip(np.round(scaled), info.min, info.max).astype(dtype)
        else:
            values = (rgb.astype(np.float32) / 255.0).astype(dtype)
        if self.layout.input_nchw:
            return np.ascontiguousarray(values.transpose(2, 0, 1))
        return values

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        """Dequantize an integer output, put values on rows, and coordinates in 0..1."""
        if raw.dtype != np.float32:
            raw = ((raw.astype(np.float32) - self._output.zero_point) * self._output.scale
                   if self._output.scale else raw.astype(np.float32))  # fmt: skip
        if self.layout.transposed:
            raw = raw.T
        return raw if self._scale is None else raw * self._scale


def _tensor_info(detail: dict) -> TensorInfo:
    """Describe one tensor from the interpreter's details."""
    scale, zero = detail["quantization"]
    return TensorInfo(
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero),
    )
