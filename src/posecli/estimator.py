"""The library's front: PoseEstimator runs a pose model on one image, on many files in
parallel worker threads, or on the frames of a video, camera or stream."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from posecli.core.errors import ImageError
from posecli.core.keypoints import KeypointSpec
from posecli.core.results import ImageResult, People
from posecli.media import images, video
from posecli.model import tiles
from posecli.model.layouts import Layout
from posecli.model.predictor import Predictor, Settings
from posecli.pipeline import flow as pipeline
from posecli.pipeline.events import Event, FrameResult, ImageHook, SourceEnd, StreamOptions
from posecli.pipeline.items import process_file


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
        settings = Settings(conf, iou, max_det, resize, max_pixels, reduced_decode, max_bytes,
                            interp, tta, tile, tile_overlap)  # fmt: skip
        self.predictor = Predictor(model, settings, threads, delegate, kpt_spec, classes, coords)

    @property
    def model_name(self) -> str:
        """Manifest name of the model, or its file name for a model given by path."""
        return self.predictor.model_name

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width M, height N), read from the model."""
        return self.predictor.input_size

    @property
    def keypoint_spec(self) -> KeypointSpec:
        """What the model's K keypoints are: names, skeleton, flip pairs, OKS sigmas."""
        return self.predictor.keypoint_spec

    @property
    def keypoint_dims(self) -> int:
        """Values per keypoint in the model's output: 3 (x, y, confidence) or 2 (x, y)."""
        return self.predictor.keypoint_dims

    @property
    def layout(self) -> Layout:
        """How the model's file lays out its input and output (see `layouts`)."""
        return self.predictor.layout

    @property
    def settings(self) -> Settings:
        """The decoding and preprocessing settings."""
        return self.predictor.settings

    def arguments(self) -> dict:
        """The constructor's arguments, to build the same estimator elsewhere (a Ray actor)."""
        return dict(self._arguments)

    def predict(self, image_bgr: np.ndarray) -> People:
        """Poses in one 8-bit BGR (or grayscale) image, in its pixel coordinates.

        The array is used as given; for the CLI's exact results from a file, `predict_file`.
        """
        return self.predictor.predict(images.LoadedImage.whole(_as_bgr(image_bgr)))

    def predict_file(self, path: str | os.PathLike, hook: ImageHook | None = None) -> ImageResult:
        """Read, run and decode one image file as `posecli infer` does (large JPEGs at reduced
        scale unless `reduced_decode=False`); ImageError, with the CLI's reason, for a bad file."""
        result = process_file(self.predictor, None, str(path), hook=hook).result
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
        workers = self.predictor.worker_count(workers)
        sources = (str(p) for p in paths)
        return _results(pipeline.run(self.predictor, sources, workers=workers, hook=hook))

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
        options = StreamOptions(vid_stride, every_frame, timeout=timeout)
        workers = self.predictor.worker_count(None)
        yield from _results(pipeline.run(self.predictor, [str(source)], options, workers))


def _results(events: Iterator[Event]) -> Iterator[ImageResult]:
    """The per-image and per-frame results; a video that failed or stopped early as an error."""
    for event in events:
        if isinstance(event, FrameResult):
            yield event.result
        elif isinstance(event, SourceEnd) and event.error:
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
