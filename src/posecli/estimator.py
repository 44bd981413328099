"""The library API: PoseEstimator runs the whole pipeline on one image or, in parallel, on many."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from posecli.core import keypoints
from posecli.core.errors import ImageError, ModelError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, Pose
from posecli.media import images, video
from posecli.model import registry as models
from posecli.model import tiles
from posecli.model.decode import Head, decode_people, decode_poses, to_poses
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
from posecli.pipeline import flow as pipeline
from posecli.tracking.camera_motion import grey_thumbnail

ImageHook = pipeline.ImageHook
URL_BYTES_LIMIT = 200_000_000


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


class PoseEstimator:
    """Multi-person pose estimation with a YOLOv8n/YOLO11n-pose TFLite model of any K and N x M.

    `kpt_spec` (a spec file or a KeypointSpec) says what the K keypoints are; without it, a spec
    beside the model (same stem, .yaml/.yml/.json) is used, else the built-in one for K; it is
    `keypoint_spec` (names, skeleton, flip_pairs).
    `predict(image_bgr)` gives the poses in one image; `predict_files(paths)` streams results
    for many files in input order, decoding and inferring in parallel worker threads;
    `stream(source)` gives a video's, camera's or URL's results frame by frame. One estimator's
    `predict` may be called from several threads, whose calls take turns on the one
    interpreter; `predict_files` and `stream` run several in parallel.
    `predict_file`/`predict_files` decode large JPEGs at reduced scale, as the CLI does (unless
    `reduced_decode=False`); `predict_file(path)` gives exactly the CLI's result for a file and
    raises ImageError for a file that cannot be read, with the reason the CLI gives.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 100,
        resize: str = "letterbox",
        threads: int | None = None,
        delegate: str | None = None,
        max_pixels: int = images.DEFAULT_MAX_PIXELS,
        reduced_decode: bool = True,
        max_bytes: int = images.DEFAULT_MAX_BYTES,
        interp: str = "linear",
        tta: str = "none",
        kpt_spec: str | os.PathLike | KeypointSpec | None = None,
        tile: int | str | None = None,
        tile_overlap: float = tiles.DEFAULT_OVERLAP,
        classes: Iterable[int] | None = None,
        coords: str = "auto",
    ):
        self._arguments = dict(locals())
        del self._arguments["self"]
        for name, value, allowed in (("resize", resize, RESIZE_MODES),
                                     ("interp", interp, INTERPOLATIONS),
                                     ("tta", tta, TTA_MODES),
                                     ("coords", coords, COORDINATE_CHOICES)):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
        self.model_path, self.spec = models.resolve(model)
        self.settings = Settings(conf, iou, max_det, resize, max_pixels, reduced_decode,
                                 max_bytes, interp, tta, tile, tile_overlap)  # fmt: skip
        if threads is not None:
            check_count("threads", threads)
        self.threads = threads or default_threads()
        self.delegate = delegate
        self._model = PoseModel(self.model_path, self.threads, delegate, kpt_spec, coords=coords)
        self.layout = self._model.layout
        self.keypoint_spec, self.keypoint_dims = self.layout.spec, self.layout.dims
        self._head = self._decode_head(classes)
        spec = self.keypoint_spec
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

    def arguments(self) -> dict:
        """The constructor's arguments, to build the same estimator elsewhere (a Ray actor)."""
        return dict(self._arguments)

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width M, height N), read from the model."""
        return self._model.input_size

    def predict(self, image_bgr: np.ndarray) -> list[Pose]:
        """Poses in one 8-bit BGR (or grayscale) image, in its pixel coordinates.

        The array is used as given; for the CLI's exact results from a file, `predict_file`.
        """
        return self.predict_loaded(self._model, images.LoadedImage.whole(_as_bgr(image_bgr)))

    def predict_file(self, path: str | os.PathLike, hook: ImageHook | None = None) -> ImageResult:
        """Read, run and decode one image file as `posecli infer` does (large JPEGs at reduced
        scale unless `reduced_decode=False`); ImageError, with the CLI's reason, for a bad file."""
        result = self.process_file(self._model, hook, str(path))[0]
        if result.error is not None:
            raise ImageError(result.error)
        return result

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        workers: int | None = None,
        hook: ImageHook | None = None,
    ) -> Iterator[ImageResult]:
        """Results for many sources (images, and each frame of videos), in input order.

        Images are decoded and run in `workers` threads with a model each; at most a few are in
        flight, so memory stays flat for any number of files. `hook(path, image, poses)` runs in
        the worker with each image's full-resolution pixels (not for video frames); the poses
        are the same without it.
        """
        if isinstance(paths, str | bytes | os.PathLike):
            raise TypeError("paths must be a list (or other iterable) of paths, not one path")
        events = pipeline.run(self, (str(p) for p in paths), workers=self.worker_count(workers),
                              hook=hook)  # fmt: skip
        return _results(events)

    def stream(
        self,
        source: str | os.PathLike,
        vid_stride: int = 1,
        every_frame: bool = False,
        timeout: float = video.DEFAULT_TIMEOUT,
    ) -> Iterator[ImageResult]:
        """Per-frame results of a video file, camera ('0', '/dev/video0') or URL, in order.

        Frames are decoded ahead in a thread and never accumulate. Live sources drop frames that
        inference cannot keep up with unless `every_frame`. A source that cannot be read, or
        stops early, ends with a result whose `error` says why.
        """
        options = pipeline.StreamOptions(vid_stride, every_frame, timeout=timeout)
        yield from _results(pipeline.run(self, [str(source)], options, self.worker_count(None)))

    def worker_models(self, workers: int) -> list[PoseModel]:
        """Models for `workers` inference threads: this one alone, or one 1-thread model each."""
        if workers <= 1 or self.delegate:
            return [self._model]
        return [PoseModel(self.model_path, threads=1, layout=self.layout) for _ in range(workers)]

    def worker_count(self, workers: int | None) -> int:
        """How many inference threads to use: one with a delegate, else `workers` or threads."""
        return 1 if self.delegate else (workers or self.threads)

    def load(self, source: str | os.PathLike | bytes, full: bool = False) -> images.LoadedImage:
        """Decode a file, a URL or an encoded image's bytes, at reduced JPEG scale unless `full`
        or reduced decoding is off."""
        reduce = None
        if self.settings.reduced_decode and not full:
            reduce = partial(max_reduction, size=self.input_size, mode=self.settings.resize)
            if self.settings.tile is not None:
                reduce = partial(tiles.max_reduction, whole=reduce, tile=self.settings.tile,
                                 input_size=self.input_size)  # fmt: skip
        if isinstance(source, str) and video.is_url(source):
            source = self.fetch(source)
        if isinstance(source, bytes):
            return images.decode(source, self.settings.max_pixels, reduce)
        return images.load(source, self.settings.max_pixels, reduce, self.settings.max_bytes)

    def fetch(self, url: str, timeout: float = video.DEFAULT_TIMEOUT) -> bytes:
        """An image URL's bytes, within the size limits, giving up after `timeout` seconds."""
        limit = min(URL_BYTES_LIMIT, self.settings.max_bytes)
        return pipeline.fetch_url(url, timeout, limit)

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

    def decode(
        self, output: np.ndarray, transform: Transform, width: int, height: int
    ) -> list[Pose]:
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

    def predict_loaded(self, model: PoseModel, loaded: images.LoadedImage) -> list[Pose]:
        """Preprocess, invoke and decode one decoded image (and its tiles, with `tile`)."""
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
    ) -> list[Pose]:
        """Poses from the raw output of each region: the whole image's, or with `tile` the
        people of every region merged (`tiles.merge`)."""
        if self.settings.tile is None:
            return self.decode(outputs[0], transforms[0], width, height)
        s = self.settings
        runs = [decode_people(output, self.input_size, transform, s.conf, s.iou, s.max_det,
                              self.keypoint_dims, self._head)
                for output, transform in zip(outputs, transforms, strict=True)]  # fmt: skip
        merged = tiles.merge(runs, self.regions(width, height), width, height, s.max_det)
        return to_poses(merged, (width, height), self._head.names)

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

    def process_file(
        self, model: PoseModel, hook: ImageHook | None, path: str,
        timeout: float = video.DEFAULT_TIMEOUT, thumbnail: bool = False,
    ) -> tuple[ImageResult, np.ndarray | None]:  # fmt: skip
        """The whole job for one file or image URL (fetched once), errors captured in the result;
        with `thumbnail`, also the image's grey thumbnail (for the camera's motion)."""
        try:
            source = self.fetch(path, timeout) if video.is_url(path) else path
            loaded = self.load(source)
            poses = self.predict_loaded(model, loaded)
            if hook is not None:
                full = loaded if loaded.reduction == 1 else self.load(source, full=True)
                hook(path, full.bgr, poses)
        except ImageError as exc:
            return ImageResult(path, error=str(exc)), None
        except Exception as exc:  # one bad image must not cost the rest of the batch
            return ImageResult(path, error=f"unexpected {type(exc).__name__}: {exc}"), None
        small = grey_thumbnail(loaded.bgr) if thumbnail else None
        return ImageResult(path, loaded.width, loaded.height, poses), small


def _results(events: Iterator[pipeline.Event]) -> Iterator[ImageResult]:
    """The per-image and per-frame results; a video that failed or stopped early as an error."""
    for event in events:
        if isinstance(event, pipeline.FrameResult):
            yield event.result
        elif isinstance(event, pipeline.SourceEnd) and event.error:
            yield ImageResult(event.path, error=event.error)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 arrays as BGR."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an image as a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, "
                         f"got shape {image.shape}")  # fmt: skip
    if not image.size:
        raise ValueError(f"expected an image, got an empty array of shape {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return image[..., :3]
