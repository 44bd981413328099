"""A pose model in its runtime (LiteRT for TFLite files, onnxruntime for ONNX): the canonical
input and output (see `layouts`), whatever the file's own layout."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from posecli.core.keypoints import SpecArgument
from posecli.model.layouts import Layout, describe, with_coordinates
from posecli.model.onnx_backend import OnnxBackend
from posecli.model.tensors import TensorInfo
from posecli.model.tflite_backend import TFLiteBackend


def default_threads() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_backend(path: Path, threads: int, delegate: str | None):
    """LiteRT for a TFLite file, onnxruntime for an .onnx one (by its name; TFL3 files are
    TFLite whatever their name)."""
    if path.suffix.lower() == ".onnx" and not _is_tflite(path):
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
