"""An .onnx pose model in onnxruntime (the optional extra posecli[onnx])."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posecli.core.errors import ModelError
from posecli.model.metadata import onnx_metadata
from posecli.model.tensors import TensorInfo

INSTALL = "pip install 'posecli[onnx]'"
DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
          "tensor(int8)": "int8"}  # fmt: skip


class OnnxBackend:
    """An .onnx file in onnxruntime on the CPU."""

    kind = "ONNX (onnxruntime)"

    def __init__(self, path: Path, threads: int, delegate: str | None):
        if delegate:
            raise ModelError(f"{path}: --delegate is for TFLite models; ONNX runs on the CPU")
        try:
            import onnxruntime
        except ImportError:
            raise ModelError(f"{path}: ONNX models need onnxruntime: {INSTALL}") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        self.path = path
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception types, one per failure kind
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: not a usable ONNX model ({reason})") from exc
        self._meta = self._session.get_modelmeta()
        self._input = self._session.get_inputs()[0]
        self._output_name = self._session.get_outputs()[0].name
        self._input_info = TensorInfo(self._fixed_input_shape(), self._dtype(self._input), 0.0, 0)

    def _dtype(self, arg) -> str:
        """numpy's name for an input's or output's element type."""
        if arg.type not in DTYPES:
            raise ModelError(f"{self.path}: {arg.name} is {arg.type}; posecli reads float32, "
                             "float16, uint8 and int8 tensors")  # fmt: skip
        return DTYPES[arg.type]

    def _fixed_input_shape(self) -> tuple[int, ...]:
        """The input's shape; dynamic sides are taken from the metadata's imgsz."""
        shape = list(self._input.shape)
        if all(isinstance(v, int) for v in shape):
            return tuple(shape)
        imgsz = self.metadata().get("imgsz")
        if len(shape) != 4 or not isinstance(imgsz, list | tuple) or len(imgsz) != 2:
            raise ModelError(f"{self.path}: input shape {shape} is dynamic and the file gives no "
                             "imgsz")  # fmt: skip
        channels_first = shape[1] == 3
        sides = [int(imgsz[0]), int(imgsz[1])]
        return tuple([1, 3, *sides] if channels_first else [1, *sides, 3])

    def input_info(self) -> TensorInfo:
        """The (first) input tensor."""
        return self._input_info

    def output_infos(self) -> list[TensorInfo]:
        """Every output tensor; dynamic shapes as one run on zeros gives them."""
        outputs = self._session.get_outputs()
        if all(isinstance(v, int) for o in outputs for v in o.shape):
            return [TensorInfo(tuple(o.shape), self._dtype(o), 0.0, 0) for o in outputs]
        zeros = np.zeros(self._input_info.shape, self._input_info.dtype)
        values = self._session.run(None, {self._input.name: zeros})
        return [TensorInfo(v.shape, self._dtype(o), 0.0, 0)
                for o, v in zip(outputs, values, strict=True)]  # fmt: skip

    def metadata(self) -> dict:
        """The file's metadata properties (Ultralytics' when exported by it)."""
        return onnx_metadata(dict(self._meta.custom_metadata_map))

    def quantization(self) -> str:
        """'qdq-int8' for a graph onnxruntime's quantizer made, else 'float'."""
        return "qdq-int8" if "quantize" in self._meta.producer_name else "float"

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a batch of one, without its batch axis."""
        return self._session.run([self._output_name], {self._input.name: batch})[0][0]
