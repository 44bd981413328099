"""`posecli bench`: per-stage timings and throughput measured in one run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from posecli.cli.common import EXIT_FAILED, EXIT_OK, echo, error
from posecli.cli.options import build_estimator, conf_option, model_options, pipeline_options
from posecli.core.errors import PoseCliError
from posecli.evaluation import bench as bench_module
from posecli.media.sources import expand


@click.command()
@model_options
@pipeline_options
@conf_option(default=0.25)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of images (default: a synthetic one).",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Images to run (the folder's images are cycled).",
)
@click.option(
    "--video",
    "video_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Measure a video instead: frames/s against the decode + invoke CPU ceiling.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def bench(images_dir, count, video_path, as_json, **options) -> int:
    """Per-stage milliseconds and end-to-end vs invoke-only images/s, measured in one run."""
    estimator = build_estimator(**options)
    if video_path is not None:
        video_report = bench_module.run_video(estimator, video_path)
        echo(json.dumps(video_report.to_dict()) if as_json else video_report.table())
        return EXIT_OK
    images_found = None
    if images_dir is not None:
        items = expand([str(images_dir)], False).items
        images_found = [Path(i.path) for i in items if not i.is_video]  # --video times videos
        if not images_found:
            raise PoseCliError(f"{images_dir}: no images in this folder")
    report = bench_module.run(estimator, images_found, count)
    for name, reason in report.skipped:
        error(f"{name}: {reason}")
    echo(json.dumps(report.to_dict()) if as_json else report.table())
    return EXIT_FAILED if report.skipped else EXIT_OK
