"""The work on one item, the same in a local worker thread and in a Ray actor: an image file or
URL, or a decoded video frame, in; its result out, with errors captured in the result."""

from __future__ import annotations

import os

from posecli.core.errors import ImageError
from posecli.core.results import ImageResult
from posecli.media import images, video
from posecli.media.fetch import fetch_url
from posecli.model.predictor import Predictor
from posecli.model.runtime import PoseModel
from posecli.pipeline.events import DEFAULT_STREAM, FrameResult, ImageHook, StreamOptions

URL_BYTES_LIMIT = 200_000_000


def load(
    predictor: Predictor, source: str | os.PathLike | bytes, full: bool = False
) -> images.LoadedImage:
    """Decode a file, a URL or an encoded image's bytes, at the reduced JPEG scale the
    predictor allows unless `full`."""
    s = predictor.settings
    reduce = None if full else predictor.reduction_limit()
    if isinstance(source, str) and video.is_url(source):
        source = fetch(predictor, source)
    if isinstance(source, bytes):
        return images.decode(source, s.max_pixels, reduce)
    return images.load(source, s.max_pixels, reduce, s.max_bytes)


def fetch(predictor: Predictor, url: str, timeout: float = video.DEFAULT_TIMEOUT) -> bytes:
    """An image URL's bytes, within the size limits, giving up after `timeout` seconds."""
    return fetch_url(url, timeout, min(URL_BYTES_LIMIT, predictor.settings.max_bytes))


def process_file(
    predictor: Predictor,
    model: PoseModel | None,
    path: str,
    options: StreamOptions = DEFAULT_STREAM,
    hook: ImageHook | None = None,
) -> FrameResult:
    """The whole job for one file or image URL (fetched once); `hook(path, bgr, poses)` gets its
    full-resolution pixels, and the options' `measure` its decoded ones with `measure_images`."""
    try:
        source = fetch(predictor, path, options.timeout) if video.is_url(path) else path
        loaded = load(predictor, source)
        poses = predictor.predict(loaded, model)
        if hook is not None:
            full = loaded if loaded.reduction == 1 else load(predictor, source, full=True)
            hook(path, full.bgr, poses)
    except ImageError as exc:
        return FrameResult(ImageResult(path, error=str(exc)))
    except Exception as exc:  # one bad image must not cost the rest of the batch
        return FrameResult(ImageResult(path, error=f"unexpected {type(exc).__name__}: {exc}"))
    measure = options.measure if options.measure_images else None
    result = ImageResult(path, loaded.width, loaded.height, poses)
    return FrameResult(result, measured=measure(loaded.bgr) if measure else None)


def process_frame(
    predictor: Predictor,
    model: PoseModel | None,
    path: str,
    frame: video.DecodedFrame,
    options: StreamOptions,
) -> FrameResult:
    """Run one decoded frame through the model as an image; poses in the frame's own pixels."""
    loaded = images.LoadedImage.whole(frame.pixels)
    poses = predictor.predict(loaded, model)
    result = ImageResult(path, loaded.width, loaded.height, poses, None, frame.index, frame.time)
    image = frame.pixels if options.keep_images else None
    measured = options.measure(frame.pixels) if options.measure else None
    return FrameResult(result, image, measured)
