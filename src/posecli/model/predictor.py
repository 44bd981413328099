"""The model layer's front: a pose model with its settings; a decoded image in, its people out.

No files and no threads: reading sources and running workers are the pipeline's job."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np

from posecli.core import keypoints
from posecli.core.errors import ModelError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import People
from posecli.media import images
from posecli.model import registry, tiles
from posecli.model.decode import Head, clipped_people, decode_people, decode_poses
from posecli.model.layouts import COORDINATE_CHOICES
from posecli.model.preprocess import (
    INTERPOLATIONS,
    RESIZE_MODES,
    Transform,
    max_reduction,
    to_model_input,
)
from posecli.model.runtime import PoseModel, default_threads
from posecli.model.tta import TTA_MODES, flip_averaged, flip_index


@dataclass(frozen=True)
class Settings:
    """Decoding and preprocessing knobs shared by `infer`, `eval` and `bench`."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 100
    resize: str = "letterbox"
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    reduced_decode: bool = True
    max_bytes: int = images.DEFAULT_MAX_BYTES
    interp: str = "linear"
    tta: str = "none"
    tile: int | str | None = None
    tile_overlap: float = tiles.DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        for name, allowed in (("resize", RESIZE_MODES), ("interp", INTERPOLATIONS),
                              ("tta", TTA_MODES)):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        for name, high in (("conf", 1), ("iou", 1), ("tile_overlap", tiles.MAX_OVERLAP)):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= high:
                raise ValueError(f"{name} must be a number from 0 to {high}, not {value!r}")
        for name in ("max_det", "max_pixels", "max_bytes"):
            check_count(name, getattr(self, name))
        tiles.check_tile(self.tile)


def check_count(name: str, value: object) -> None:
    """ValueError unless `value` is a whole number of at least 1 (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")


DEFAULT_SETTINGS = Settings()


class Predictor:
    """A pose model of any K and N x M with its `settings` (thresholds, resize, TTA, tiles):
    `predict` gives a decoded image's people in its pixels."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        settings: Settings = DEFAULT_SETTINGS,
        threads: int | None = None,
        delegate: str | None = None,
        kpt_spec: str | os.PathLike | KeypointSpec | None = None,
        classes: Iterable[int] | None = None,
        coords: str = "auto",
    ):
        if coords not in COORDINATE_CHOICES:
            raise ValueError(f"coords must be one of {COORDINATE_CHOICES}, not {coords!r}")
        self.model_path, self.spec = registry.resolve(model)
        self.settings = settings
        if threads is not None:
            check_count("threads", threads)
        self.threads = threads or default_threads()
        self.delegate = delegate
        self._model = PoseModel(self.model_path, self.threads, delegate, kpt_spec, coords=coords)
        self.layout = self._model.layout
        self.keypoint_spec, self.keypoint_dims = self.layout.spec, self.layout.dims
        self._head = self._decode_head(classes)
        spec = self.keypoint_spec
        tta = settings.tta
        if tta == "flip" and (self.layout.end2end or self.layout.classes > 1):
            raise ModelError(f"{self.model_path}: --tta flip needs a one-class output of values "
                             "x anchors; this is end-to-end or has several classes")  # fmt: skip
        self._flip_idx = spec.flip_idx or flip_index(spec.names)
        if tta == "flip" and self.keypoint_dims != 3:
            raise ModelError(f"{self.model_path}: --tta flip needs x, y, conf per keypoint (D = 3)")
        if (
            tta == "flip"
            and not spec.flip_idx
            and spec.names == keypoints.generic(spec.count).names
        ):
            raise ModelError(f"{self.model_path}: --tta flip needs to know which keypoints swap in "
                             "a mirror image: give --kpt-spec with flip_idx")  # fmt: skip

    @property
    def model_name(self) -> str:
        """Manifest name of the model, or its file name for a model given by path."""
        return self.spec.name if self.spec else self.model_path.name

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width M, height N), read from the model."""
        return self._model.input_size

    def worker_models(self, workers: int) -> list[PoseModel]:
        """Models for `workers` inference threads: this one alone, or one 1-thread model each."""
        if workers <= 1 or self.delegate:
            return [self._model]
        return [PoseModel(self.model_path, threads=1, layout=self.layout) for _ in range(workers)]

    def worker_count(self, workers: int | None) -> int:
        """How many inference threads to use: one with a delegate, else `workers` or threads."""
        return 1 if self.delegate else (workers or self.threads)

    def reduction_limit(self) -> Callable[[int, int], float] | None:
        """How far a width x height JPEG may be decoded reduced for this model's input (and
        tiles); None when reduced decoding is off."""
        if not self.settings.reduced_decode:
            return None
        reduce = partial(max_reduction, size=self.input_size, mode=self.settings.resize)
        if self.settings.tile is not None:
            reduce = partial(tiles.max_reduction, whole=reduce, tile=self.settings.tile,
                             input_size=self.input_size)  # fmt: skip
        return reduce

    def preprocess(self, loaded: images.LoadedImage) -> tuple[np.ndarray, Transform]:
        """Model input and the transform from original-image pixels to model pixels."""
        return self._region_input(loaded, np.array([0, 0, loaded.width, loaded.height]))

    def run(self, rgb: np.ndarray, model: PoseModel | None = None) -> np.ndarray:
        """Invoke the model on a preprocessed input; its canonical output (see `layouts`).

        With `tta="flip"` the model also runs on the mirrored input, and each anchor's output is
        merged with the mirrored output at the mirrored anchor (see `tta.flip_averaged`).
        """
        model = model or self._model
        output = model.run(rgb)
        if self.settings.tta == "flip":
            mirrored = model.run(np.ascontiguousarray(rgb[:, ::-1]))
            output = flip_averaged(output, mirrored, rgb.shape[:2], self._flip_idx)
        return output

    def decode(self, output: np.ndarray, transform: Transform, width: int, height: int) -> People:
        """Raw output to poses in original-image pixels, with this estimator's thresholds."""
        s = self.settings
        return decode_poses(output, self.input_size, transform, (width, height), s.conf, s.iou,
                            s.max_det, self.keypoint_dims, self._head)  # fmt: skip

    def _decode_head(self, classes: Iterable[int] | None) -> Head:
        """What decode needs of the layout: nc, end-to-end, the classes kept (`classes`; None
        when all are) and, for several classes, their names."""
        count = self.layout.classes
        keep = None if classes is None else tuple(sorted(set(classes)))
        bad = [c for c in keep or () if not isinstance(c, int) or not 0 <= c < count]
        if bad or keep == ():
            known = ", ".join(self.layout.class_names)
            raise ModelError(f"{self.model_path}: --classes {bad or 'none'}: the model has "
                             f"classes 0 to {count - 1} ({known})")  # fmt: skip
        if keep == tuple(range(count)):
            keep = None
        names = self.layout.class_names if count > 1 else None
        return Head(count, self.layout.end2end, keep, names)

    def predict(self, loaded: images.LoadedImage, model: PoseModel | None = None) -> People:
        """Preprocess, invoke and decode one decoded image (and its tiles, with `tile`), on
        `model` (a worker's) or this predictor's own."""
        inputs = self.model_inputs(loaded)
        outputs = [self.run(rgb, model) for rgb, _ in inputs]
        return self.decode_runs(outputs, [t for _, t in inputs], loaded.width, loaded.height)

    def regions(self, width: int, height: int) -> np.ndarray:
        """(R, 4) x1 y1 x2 y2 of what is run of a width x height image: the whole image, then
        with `tile` each tile."""
        s = self.settings
        whole = np.array([[0, 0, width, height]], np.int64)
        if s.tile is None:
            return whole
        side = tiles.tile_side(s.tile, width, height, self.input_size)
        return np.concatenate((whole, tiles.tile_regions(width, height, side, s.tile_overlap)))

    def model_inputs(self, loaded: images.LoadedImage) -> list[tuple[np.ndarray, Transform]]:
        """The model input of each region (`regions`) and its transform from original pixels."""
        return [self._region_input(loaded, r) for r in self.regions(loaded.width, loaded.height)]

    def decode_runs(
        self, outputs: list[np.ndarray], transforms: list[Transform], width: int, height: int
    ) -> People:
        """Poses from the raw output of each region: the whole image's, or with `tile` the
        people of every region merged (`tiles.merge`)."""
        if self.settings.tile is None:
            return self.decode(outputs[0], transforms[0], width, height)
        s = self.settings
        runs = [decode_people(output, self.input_size, transform, s.conf, s.iou, s.max_det,
                              self.keypoint_dims, self._head)
                for output, transform in zip(outputs, transforms, strict=True)]  # fmt: skip
        merged = tiles.merge(runs, self.regions(width, height), width, height, s.max_det)
        return clipped_people(merged, (width, height), self._head.names)

    def _region_input(
        self, loaded: images.LoadedImage, region: np.ndarray
    ) -> tuple[np.ndarray, Transform]:
        """One x1 y1 x2 y2 region of the original image fitted to the model input, as an image."""
        r = loaded.reduction
        height, width = loaded.bgr.shape[:2]
        x1, y1 = round(region[0] / r), round(region[1] / r)
        x2 = width if region[2] >= loaded.width else round(region[2] / r)
        y2 = height if region[3] >= loaded.height else round(region[3] / r)
        s = self.settings
        rgb, t = to_model_input(loaded.bgr[y1:y2, x1:x2], self.input_size, s.resize, s.interp)
        return rgb, Transform(t.scale_x / r, t.scale_y / r, t.pad_x - x1 * t.scale_x,
                              t.pad_y - y1 * t.scale_y)  # fmt: skip
