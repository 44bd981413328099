"""The anchor grids of a YOLO pose head: strides 8, 16 and 32 over an N x M input."""

from __future__ import annotations

STRIDES = (8, 16, 32)


def grid_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """(rows, columns) of the stride 8, 16 and 32 anchor grids of an N x M input, in output order.

    A stride-2 convolution rounds up, so a side that does not divide gives ceil(side / s) cells.
    """
    return [(-(-height // s), -(-width // s)) for s in STRIDES]


def anchors_for(height: int, width: int) -> int:
    """Output columns F for an N x M input: the cells of its anchor grids."""
    return sum(rows * cols for rows, cols in grid_shapes(height, width))
