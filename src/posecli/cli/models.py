"""`posecli models`: list, pull and inspect the models."""

from __future__ import annotations

import os
from pathlib import Path

import click

from posecli.cli.common import EXIT_OK, EXIT_USAGE, echo, error, info
from posecli.cli.options import Number, TileSize, coords_option, kpt_spec_option
from posecli.core.errors import ModelError
from posecli.model import registry as models
from posecli.model import tiles
from posecli.model.layouts import Layout
from posecli.model.runtime import PoseModel


@click.group(name="models")
def models_group() -> None:
    """List, fetch and inspect the models."""


@models_group.command(name="list")
def models_list() -> int:
    """Known models: name, input size, quantization and whether a copy is installed."""
    default, specs = models.load_manifest()
    echo(f"{'name':<22}{'input':>6}  {'quant':<12}{'card AP50':>10}  location")
    for spec in specs.values():
        path = models.find_file(spec)
        ap = f"{spec.card_ap50:.2f}" if spec.card_ap50 else "-"
        mark = "*" if spec.name == default else " "
        echo(f"{spec.name + mark:<22}{spec.input_size:>6}  {spec.quantization:<12}"
                   f"{ap:>10}  {path or 'not installed'}")  # fmt: skip
    return EXIT_OK


@models_group.command(name="pull")
@click.argument("names", nargs=-1)
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Copy from this folder instead of downloading.",
)
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=None,
    help="Install here instead of the user cache.",
)
def models_pull(names, source, dest) -> int:
    """Fetch models (all when none are named), verify their sha256 and install them; one that
    fails is one error line (exit 2) and the rest are still installed."""
    _, specs = models.load_manifest()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise click.BadParameter(f"unknown model {', '.join(unknown)}; known: {', '.join(specs)}")
    status = EXIT_OK
    for name in names or specs:
        try:
            path = models.pull(specs[name], source, dest)
        except ModelError as exc:  # the models after it are still pulled
            error(str(exc))
            status = EXIT_USAGE
            continue
        echo(f"{name}: {path}")
    if dest is not None and not searched(dest):
        info(f"posecli looks for models in ${models.ENV_MODELS} and {models.cache_dir()}: "
             f"set {models.ENV_MODELS}={dest} to use the models in {dest}", False)  # fmt: skip
    return status


def searched(folder: Path) -> bool:
    """Whether models in `folder` are found by name (it is on the search path)."""
    return any(os.path.realpath(d) == os.path.realpath(folder) for d in models.search_dirs())


def layout_lines(layout: Layout) -> list[str]:
    """What `models info` says of a layout: input and output arrangement, coordinates, NMS and
    classes, each with where it came from."""
    src = layout.sources
    order = "NCHW (1, 3, N, M)" if layout.input_nchw else "NHWC (1, N, M, 3)"
    if layout.end2end:
        arrangement = "end-to-end (1, N, 6 + K x D): x1 y1 x2 y2, score, class, keypoints"
    elif layout.transposed:
        arrangement = "transposed (1, F, 4 + nc + K x D): anchors x values"
    else:
        arrangement = "(1, 4 + nc + K x D, F): values x anchors"
    boxes = "input pixels" if layout.box_pixels else "0..1"
    points = "input pixels" if layout.keypoint_pixels else "0..1"
    nms = "in the graph (end-to-end; posecli keeps scores over --conf)" if layout.end2end else (
        "after the model (posecli's NMS)")  # fmt: skip
    names = ", ".join(layout.class_names)
    return [
        f"input layout: {order}; {src['input']}",
        f"output layout: {arrangement}; {src['output']}",
        f"coordinates: boxes {boxes}, keypoints {points}; {src['coordinates']}",
        f"NMS: {nms}",
        f"classes: nc = {layout.classes} ({names}); {src['classes']}",
    ]


@models_group.command(name="info")
@click.argument("model", required=False)
@kpt_spec_option
@coords_option
@click.option(
    "--tile",
    type=TileSize(),
    default="auto",
    show_default=True,
    metavar="PX|auto",
    help="Tile size for the tiles-per-frame line.",
)
@click.option(
    "--tile-overlap",
    type=Number(0, tiles.MAX_OVERLAP),
    default=tiles.DEFAULT_OVERLAP,
    show_default=True,
    help="Tile overlap for the tiles-per-frame line.",
)
def models_info(
    model: str | None, kpt_spec: str | None, coords: str, tile: int | str, tile_overlap: float
) -> int:
    """Shapes, dtypes, quantization, N x M, K, D and keypoint spec of a model name or path (the
    default model without one), and the tiles --tile runs on common frame sizes."""
    path, spec = models.resolve(model)
    loaded = PoseModel(path, threads=1, kpt_spec=kpt_spec, coords=coords)
    layout = loaded.layout
    kpt, dims = layout.spec, layout.dims
    echo(f"model: {spec.name if spec else path.name}\nfile: {path}\nformat: {loaded.kind}")
    for role, t in loaded.info().items():
        echo(f"{role}: shape {list(t.shape)} {t.dtype} scale {t.scale:.6g} zero {t.zero_point}")
    for line in layout_lines(layout):
        echo(line)
    echo(f"quantization: {loaded.quantization()}")
    width, height = loaded.input_size
    values = "x, y, visibility" if dims == 3 else "x, y; confidence reported as 1.0"
    echo(f"input size: {height} x {width} (N x M: height x width)")
    echo(f"keypoints: K = {kpt.count}, D = {dims} ({values}); "
         f"{layout.sources['keypoints']}")  # fmt: skip
    echo(f"keypoint spec: {kpt.describe()}")
    echo(f"keypoint names: {', '.join(kpt.names)}")
    counts = [f"{w}x{h}: {tiles.tile_count(w, h, tile, tile_overlap, loaded.input_size)}"
              for w, h in tiles.COMMON_FRAMES]  # fmt: skip
    echo(f"tiles run besides the whole frame with --tile {tile}, overlap {tile_overlap:g}: "
         f"{', '.join(counts)}")  # fmt: skip
    return EXIT_OK
