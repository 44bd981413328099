"""Click options shared by infer, track, eval and bench, and the estimator they describe."""

from __future__ import annotations

import math

import click

from posecli.estimator import PoseEstimator
from posecli.media import images
from posecli.model import registry as models
from posecli.model import tiles
from posecli.model.layouts import COORDINATE_CHOICES
from posecli.model.preprocess import INTERPOLATIONS, RESIZE_MODES
from posecli.model.tta import TTA_MODES


class Number(click.FloatRange):
    """click's FloatRange, which lets NaN and infinity through (they fail no comparison with a
    bound), refusing them too."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class TileSize(click.ParamType):
    """--tile: 'auto' or a whole number of pixels, at least tiles.MIN_TILE."""

    name = "tile"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).lower() == "auto":
            return "auto" if isinstance(value, str) else value
        try:
            return click.IntRange(tiles.MIN_TILE).convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not 'auto' or a whole number of pixels from "
                      f"{tiles.MIN_TILE} up.", param, ctx)  # fmt: skip


class ClassList(click.ParamType):
    """--classes: class indices, comma-separated ('0' or '0,2')."""

    name = "classes"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            classes = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            classes = ()
        if not classes or min(classes) < 0:
            self.fail(f"{value!r} is not class indices like 0 or 0,2.", param, ctx)
        return classes


def apply_options(options: list, func):
    """Decorate func with click options, first in the list first in --help."""
    for option in reversed(options):
        func = option(func)
    return func


def model_options(func):
    """-m/--model and --imgsz, which pick one model."""
    return apply_options([
        click.option("-m", "--model", "model", default=None,
                     help="Model name from `posecli models list` or a .tflite or .onnx path."),
        click.option("--imgsz", type=click.Choice(["192", "256", "320"]), default=None,
                     help="Pick the yolov8n-pose model with this input size."),
    ], func)  # fmt: skip


kpt_spec_option = click.option(
    "--kpt-spec", type=click.Path(dir_okay=False), default=None,
    help="Keypoint spec: the Ultralytics dataset YAML or a posecli YAML/JSON "
         "[default: MODEL.yaml/.yml/.json beside the model, else built-in].",
)  # fmt: skip


coords_option = click.option(
    "--coords", type=click.Choice(COORDINATE_CHOICES), default="auto", show_default=True,
    help="Model output coordinates: auto (read from the file), normalised 0..1, pixels, or "
         "keypoint-pixels (boxes 0..1, keypoints in input pixels: exports before 2024).",
)  # fmt: skip


def pipeline_options(func):
    """Thresholds and runtime options shared by infer, track, eval and bench."""
    return apply_options([
        click.option("--iou", type=Number(0, 1), default=0.7, show_default=True,
                     help="NMS IoU threshold."),
        click.option("--max-det", type=click.IntRange(1), default=100, show_default=True,
                     help="Most people kept per image."),
        click.option("--threads", type=click.IntRange(1), default=None,
                     help="CPU threads (default: all cores)."),
        click.option("--delegate", type=click.Path(dir_okay=False), default=None,
                     help="External delegate library (e.g. an NPU delegate .so)."),
        click.option("--resize", type=click.Choice(RESIZE_MODES), default="letterbox",
                     show_default=True, help="Letterbox (keep aspect) or stretch to the input."),
        click.option("--interp", type=click.Choice(INTERPOLATIONS), default="linear",
                     show_default=True,
                     help="Resize interpolation (nearest samples pixel centres, as TensorFlow)."),
        click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
                     help="flip: also run the mirrored input and merge both outputs (2x time)."),
        click.option("--max-pixels", type=click.IntRange(1), default=images.DEFAULT_MAX_PIXELS,
                     show_default=True, help="Refuse images with more pixels than this."),
        click.option("--max-bytes", type=click.IntRange(1), default=images.DEFAULT_MAX_BYTES,
                     show_default=True, help="Refuse image files larger than this."),
        click.option("--full-decode", is_flag=True,
                     help="Always decode JPEGs at full size (no reduced-scale decoding)."),
        click.option("--tile", type=TileSize(), default=None, metavar="PX|auto",
                     help="Also run overlapping PX x PX tiles of each image and merge, to find "
                          "small people ('auto': a third of the shorter side)."),
        click.option("--tile-overlap", type=Number(0, tiles.MAX_OVERLAP),
                     default=tiles.DEFAULT_OVERLAP, show_default=True,
                     help="--tile: the least share of a tile its neighbours overlap."),
        kpt_spec_option,
        click.option("--classes", type=ClassList(), default=None, metavar="I[,J...]",
                     help="Keep only people of these classes (a model of several classes)."),
        coords_option,
    ], func)  # fmt: skip


def conf_option(default: float):
    """--conf, whose default differs between infer (0.25) and eval (0.001)."""
    return click.option("--conf", type=Number(0, 1), default=default,
                        show_default=True, help="Person score threshold.")  # fmt: skip


def model_choice(model: str | None, imgsz: str | None) -> str | None:
    """The model to load from -m and --imgsz, which exclude each other."""
    if model and imgsz:
        raise click.UsageError("give either -m/--model or --imgsz, not both")
    return models.model_for_size(int(imgsz)) if imgsz else model


def build_estimator(model, conf, iou, max_det, threads, delegate, resize, interp, tta,
                    max_pixels, max_bytes, full_decode, tile=None,
                    tile_overlap=tiles.DEFAULT_OVERLAP, kpt_spec=None,
                    imgsz=None, classes=None, coords="auto") -> PoseEstimator:  # fmt: skip
    """A PoseEstimator from the shared command-line options."""
    return PoseEstimator(
        model=model_choice(model, imgsz), conf=conf, iou=iou, max_det=max_det, resize=resize,
        threads=threads, delegate=delegate, max_pixels=max_pixels,
        reduced_decode=not full_decode, max_bytes=max_bytes, interp=interp, tta=tta,
        kpt_spec=kpt_spec, tile=tile, tile_overlap=tile_overlap, classes=classes,
        coords=coords,
    )  # fmt: skip
