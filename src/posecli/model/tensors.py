"""What a model file says of one of its tensors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and (scale, zero point) of one model tensor."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
