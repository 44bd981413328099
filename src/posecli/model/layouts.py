"""Which YOLO-pose layout a model file has, read from its tensors' shapes and types, its metadata
and a probe run; a Layout tells the runtime how to turn the output into the canonical form
decode reads: (4 + nc + K*D, F) rows x anchors, or end-to-end (N, 6 + K*D), coordinates 0..1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from posecli.core import keypoints
from posecli.core.errors import ModelError
from posecli.core.keypoints import KeypointSpec, SpecArgument
from posecli.model.anchors import anchors_for
from posecli.model.metadata import class_names

# --coords: (boxes in pixels?, keypoints in pixels?) for each forced choice.
COORDINATES = {"normalised": (False, False), "pixels": (True, True),
               "keypoint-pixels": (False, True)}  # fmt: skip
COORDINATE_CHOICES = ("auto", *COORDINATES)
# A coordinate whose median magnitude over the probe's candidates exceeds this is in pixels.
PIXEL_MEDIAN = 2.0
# Ultralytics' end-to-end heads keep max_det = 300 people; a file without metadata saying it is
# end-to-end must have that shape to be read as one.
END2END_ROWS = 300
PROBE_SEED = 0  # the probe image: seeded noise, which every layout gives some candidates for


@dataclass(frozen=True, eq=False)
class Layout:
    """What a model's tensors hold; `sources` says where each fact came from."""

    input_nchw: bool
    input_size: tuple[int, int]  # (width M, height N)
    transposed: bool
    end2end: bool
    class_names: tuple[str, ...]
    spec: KeypointSpec
    dims: int
    box_pixels: bool = False
    keypoint_pixels: bool = False
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> int:
        """nc, the class score rows (the person score is their maximum)."""
        return len(self.class_names)

    @property
    def values(self) -> int:
        """K * D, the keypoint values of one candidate."""
        return self.spec.count * self.dims

    @property
    def rows(self) -> int:
        """Values per candidate: 4 + nc + K*D, or 6 + K*D end-to-end."""
        return (6 if self.end2end else 4 + self.classes) + self.values

    def pixel_scale(self) -> np.ndarray | None:
        """Per-row factors taking pixel coordinates to 0..1 (a column for rows x anchors, a
        row for end-to-end); None when all are normalised already."""
        if not (self.box_pixels or self.keypoint_pixels):
            return None
        width, height = self.input_size
        scale = np.ones(self.rows, np.float32)
        if self.box_pixels:
            scale[0:4] = (1 / width, 1 / height) * 2
        if self.keypoint_pixels:
            first = self.rows - self.values
            scale[first :: self.dims] = 1 / width
            scale[first + 1 :: self.dims] = 1 / height
        return scale[None] if self.end2end else scale[:, None]


def input_layout(path: Path, shape: tuple[int, ...]) -> tuple[bool, tuple[int, int]]:
    """(NCHW?, (width, height)) of an input (1, N, M, 3) or (1, 3, N, M)."""
    nhwc = len(shape) == 4 and shape[0] == 1 and shape[3] == 3
    nchw = len(shape) == 4 and shape[0] == 1 and shape[1] == 3
    if nhwc and nchw:
        raise ModelError(f"{path}: input shape {shape} could be NHWC (1, N, M, 3) or NCHW "
                         "(1, 3, N, M); posecli cannot tell which")  # fmt: skip
    if not (nhwc or nchw) or min(shape[1:]) < 1:
        raise ModelError(f"{path}: input shape {shape} is not (1, N, M, 3) or (1, 3, N, M)")
    height, width = shape[2:4] if nchw else shape[1:3]
    return nchw, (width, height)


def output_layout(
    path: Path, shapes: list[tuple[int, ...]], size: tuple[int, int], metadata: dict
) -> tuple[bool, bool, int, str]:
    """(transposed?, end-to-end?, values per candidate, where the layout came from)."""
    width, height = size
    anchors = anchors_for(height, width)
    if len(shapes) != 1:
        raise ModelError(f"{path}: {len(shapes)} outputs {shapes}; posecli reads pose models "
                         "with one output")  # fmt: skip
    shape = shapes[0]
    end2end = metadata.get("end2end")
    if len(shape) != 3 or shape[0] != 1 or (end2end is False and anchors not in shape[1:]):
        raise ModelError(_foreign(path, shape, anchors, height, width))
    if shape[1] == shape[2] == anchors:
        raise ModelError(f"{path}: output shape {shape} has {anchors} anchors on both axes; "
                         "posecli cannot tell values from anchors")  # fmt: skip
    if anchors in shape[1:]:
        if end2end is True:
            raise ModelError(f"{path}: its metadata says end-to-end but output shape {shape} "
                             f"has an axis of {anchors} anchors")  # fmt: skip
        transposed = shape[1] == anchors
        return transposed, False, shape[2] if transposed else shape[1], "shape"
    if shape[2] <= 6 or not (end2end or shape[1] == END2END_ROWS):
        raise ModelError(_foreign(path, shape, anchors, height, width))
    return False, True, shape[2], "metadata end2end" if end2end else f"shape (1, {END2END_ROWS}, C)"


def _foreign(path: Path, shape: tuple[int, ...], anchors: int, height: int, width: int) -> str:
    """The one line for an output that is none of the pose layouts."""
    return (f"{path}: output shape {shape} is not the pose layout (1, 5 + K x D, {anchors}) "
            f"for a {height} x {width} input, transposed, or end-to-end (1, {END2END_ROWS}, "
            "6 + K x D); "
            "is this a detection or another model?")  # fmt: skip


def describe(
    path: Path,
    input_shape: tuple[int, ...],
    output_shapes: list[tuple[int, ...]],
    metadata: dict,
    kpt_spec: SpecArgument,
) -> Layout:
    """The layout from shapes and metadata (coordinates not yet probed: see `with_coordinates`)."""
    task = metadata.get("task")
    if task is not None and task != "pose":
        raise ModelError(f"{path}: its metadata says task {task!r}; posecli reads pose models")
    nchw, size = input_layout(path, input_shape)
    transposed, end2end, rows, shape_source = output_layout(path, output_shapes, size, metadata)
    names = class_names(metadata)
    values = rows - (6 if end2end else 4 + len(names or ("person",)))
    _check_metadata(path, output_shapes[0], rows, names, values, metadata)
    fallback = keypoints.from_metadata(metadata, f"{path} metadata")
    spec, dims = keypoints.for_model(path, 5 + values, kpt_spec, fallback)
    if names is None:
        names = (spec.label,)
    named = "from metadata names" if "names" in metadata else "assumed: the file names no classes"
    sources = {
        "input": "from shape",
        "output": f"from {shape_source}",
        "classes": named,
        "keypoints": _keypoint_source(spec, fallback),
    }
    return Layout(nchw, size, transposed, end2end, names, spec, dims, sources=sources)


def _check_metadata(
    path: Path, shape: tuple[int, ...], rows: int, names: tuple[str, ...] | None, values: int,
    metadata: dict,
) -> None:  # fmt: skip
    """Refuse an output whose size disagrees with the classes and kpt_shape of its metadata."""
    if values < 1:
        raise ModelError(f"{path}: output shape {shape} is not the pose layout: no keypoint "
                         f"values after the box and {len(names or ('person',))} class "
                         "row(s)")  # fmt: skip
    kpt_shape = metadata.get("kpt_shape")
    if not (isinstance(kpt_shape, list | tuple) and len(kpt_shape) == 2):
        return
    count, dims = kpt_shape
    if isinstance(count, int) and isinstance(dims, int) and count * dims != values:
        classes = len(names or ("person",))
        raise ModelError(f"{path}: output shape {shape} has {rows} values per candidate, but its "
                         f"metadata gives {classes} class(es) and kpt_shape [{count}, {dims}]; "
                         "a layout posecli does not read")  # fmt: skip


def _keypoint_source(spec: KeypointSpec, fallback: KeypointSpec | None) -> str:
    """Where K and D came from: a spec, the file's metadata, or the output's row count."""
    if fallback is not None and spec is fallback:
        return "from metadata kpt_shape"
    if spec is keypoints.COCO17 or spec.source == keypoints.GENERIC_SOURCE:
        return "from shape (rows - 4 - nc = K x D, D = 3 when it divides)"
    return f"from spec {spec.source}"


def with_coordinates(
    layout: Layout,
    output_range: float | None,
    probe: Callable[[np.ndarray], np.ndarray],
    onnx: bool = False,
    forced: str = "auto",
) -> Layout:
    """The layout with box and keypoint coordinates decided: normalised when an integer output's
    range (`output_range`, its largest magnitude) cannot hold pixels, else by a probe run on a
    noise image (median magnitude of x and y over its candidates); when the probe finds no
    candidate, by Ultralytics' convention (ONNX in pixels, TFLite 0..1). `forced` (--coords)
    overrides them all."""
    if forced != "auto":
        boxes_px, points_px = COORDINATES[forced]
        sources = {**layout.sources, "coordinates": f"from --coords {forced}"}
        return replace(layout, box_pixels=boxes_px, keypoint_pixels=points_px, sources=sources)
    if output_range is not None and output_range <= PIXEL_MEDIAN:
        source = f"from the output's quantization range (|v| <= {output_range:.3g})"
        return replace(layout, sources={**layout.sources, "coordinates": source})
    width, height = layout.input_size
    noise = np.random.default_rng(PROBE_SEED).integers(0, 256, (height, width, 3), np.uint8)
    boxes, points = _coordinate_values(layout, probe(noise))
    if boxes.size == 0:
        source = f"assumed: the probe found nothing ({'ONNX' if onnx else 'TFLite'} convention)"
        return replace(layout, box_pixels=onnx, keypoint_pixels=onnx,
                       sources={**layout.sources, "coordinates": source})  # fmt: skip
    source = "from a probe (median |x|, |y| of candidates on a noise image)"
    return replace(layout, box_pixels=_in_pixels(boxes), keypoint_pixels=_in_pixels(points),
                   sources={**layout.sources, "coordinates": source})  # fmt: skip


def _coordinate_values(layout: Layout, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box and keypoint x, y values of a probe's raw output, candidates as columns."""
    first = layout.rows - layout.values
    xy = np.arange(first, layout.rows).reshape(-1, layout.dims)[:, :2].ravel()
    if layout.end2end:
        output = output[output[:, 4] > 0].T
    return output[:4], output[xy]


def _in_pixels(values: np.ndarray) -> bool:
    """Whether coordinates are in input pixels: their median magnitude is over PIXEL_MEDIAN."""
    finite = np.abs(values[np.isfinite(values)])
    return bool(finite.size) and float(np.median(finite)) > PIXEL_MEDIAN
