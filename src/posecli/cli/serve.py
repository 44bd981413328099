"""`posecli serve`: the live annotated poses of a camera, stream or video, in any browser."""

from __future__ import annotations

import asyncio
import time

import click
from click.core import ParameterSource

from posecli.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, echo, error, info
from posecli.cli.options import (
    Number,
    apply_options,
    build_estimator,
    model_options,
    pipeline_options,
)
from posecli.cli.track import association_options, refuse_untuned, track_options, tracking_stage
from posecli.core.text import printable_path
from posecli.media.sources import is_video_source
from posecli.media.video import DEFAULT_TIMEOUT
from posecli.pipeline.events import StreamOptions
from posecli.run import interrupts
from posecli.tracking.camera_motion import grey_thumbnail

INSTALL_HINT = "posecli serve needs its extra: pip install 'posecli[serve]'"
TRACK_PARAMS = ("track_high", "track_low", "new_track", "track_buffer", "match_thresh",
                "keypoint_weight", "duplicate_iou", "box_only", "camera_motion", "smooth",
                "smooth_beta", "smooth_min_cutoff")  # fmt: skip


def serve_options(func):
    """Where and how the source is served."""
    return apply_options([
        click.option("--conf", type=Number(0, 1), default=None,
                     help="Person score threshold [default: --track-low; 0.25 with --no-track]."),
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to listen on; any but a loopback one needs a token."),
        click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
                     help="Port to listen on (0: any free one)."),
        click.option("--token", default=None,
                     help="Token that every request must carry (?token=); off a loopback "
                          "address one is made up when not given."),
        click.option("--loop", is_flag=True, help="Play a video file again and again."),
        click.option("--realtime/--no-realtime", default=True, show_default=True,
                     help="Play video files at their own frame rate (--no-realtime: as fast as "
                          "inference goes, for benchmarks)."),
        click.option("--no-track", is_flag=True,
                     help="Plain inference: no IDs (as `posecli infer`)."),
        click.option("--kpt-conf", type=Number(0, 1), default=0.5, show_default=True,
                     help="Keypoints below this confidence are not drawn."),
        click.option("--timeout", type=Number(min=0, min_open=True), default=DEFAULT_TIMEOUT,
                     show_default=True, help="Seconds to wait for a URL or camera to answer."),
        click.option("-q", "--quiet", is_flag=True, help="Nothing on standard error but errors."),
    ], func)  # fmt: skip


@click.command()
@click.argument("source")
@model_options
@pipeline_options
@serve_options
@association_options
def serve(source, host, port, token, loop, realtime, no_track, kpt_conf, timeout, quiet,
          **params) -> int:  # fmt: skip
    """Show the annotated poses of SOURCE live in any browser, until Ctrl-C.

    SOURCE is a camera ('0', '/dev/video0'), a stream URL or a video file. Routes: / (the
    page), /stream.mjpg (MJPEG), /events (each frame's jsonl record as Server-Sent Events),
    /status (JSON).
    """
    try:
        from posecli.serve import server as serving
    except ModuleNotFoundError as exc:
        if exc.name != "aiohttp":
            raise
        error(INSTALL_HINT)
        return EXIT_USAGE
    if not is_video_source(source):
        raise click.UsageError(f"{source}: serve takes a camera, a stream URL or a video file")
    tracking = {name: params.pop(name) for name in TRACK_PARAMS}
    refuse_track_options(no_track, tracking)
    if params["conf"] is None:
        params["conf"] = 0.25 if no_track else tracking["track_low"]
    track = None if no_track else track_options(**tracking)
    estimator = build_estimator(**params)
    stage = None if track is None else tracking_stage(track, estimator)
    measure = grey_thumbnail if track is not None and track.camera_motion else None
    stream = StreamOptions(keep_images=True, measure=measure, timeout=timeout)
    options = serving.ServeOptions(source, kpt_conf, loop, realtime, stream)
    stop = serving.StopRequest()
    started = time.perf_counter()

    def ready(url: str) -> None:
        echo(url)
        info(f"posecli serve: open {url} in a browser; Ctrl-C stops", quiet)

    with interrupts.ending_live_sources(stop):
        player = asyncio.run(serving.serve(
            lambda hub: serving.Player(hub, estimator, options, stage), printable_path(source),
            estimator.keypoint_spec.label, host, port, serving.access_token(host, token), stop,
            ready,
        ))  # fmt: skip
    meter = player.meter
    info(f"{meter.frames} frames, {meter.poses} poses, {player.dropped} dropped in "
         f"{time.perf_counter() - started:.2f} s", quiet)  # fmt: skip
    if player.failure is not None:
        error(f"{printable_path(source)}: {player.failure}")
        return EXIT_FAILED
    return EXIT_OK


def refuse_track_options(no_track: bool, tracking: dict) -> None:
    """A usage error for a tracking option given with --no-track, or without the flag it tunes."""
    context = click.get_current_context()
    given = [n for n in tracking if context.get_parameter_source(n) is ParameterSource.COMMANDLINE]
    if no_track and given:
        raise click.UsageError(f"--{given[0].replace('_', '-')} does not apply with --no-track")
    refuse_untuned({"sequence": False, "smooth": tracking["smooth"],
                    "box_only": tracking["box_only"]})  # fmt: skip
