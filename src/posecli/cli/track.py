"""`posecli track`: infer's run with a person ID on every pose, kept from frame to frame."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import click

from posecli.cli.applies import refuse_untuned
from posecli.cli.infer import run_options, run_sources
from posecli.cli.options import Number, apply_options, model_options, pipeline_options
from posecli.core.errors import PoseCliError
from posecli.core.text import printable_path
from posecli.estimator import PoseEstimator
from posecli.media.sources import Item
from posecli.output.writers import TRACK_FORMATS
from posecli.pipeline.events import Stage
from posecli.tracking.camera_motion import grey_thumbnail
from posecli.tracking.smoothing import BETA, MIN_CUTOFF, KeypointSmoother
from posecli.tracking.stage import DEFAULT_FPS, TrackOptions, track_events
from posecli.tracking.tracker import TrackerSettings

DEFAULTS = TrackerSettings()


def association_options(func):
    """The association, camera-motion and smoothing options, defaulting to TrackerSettings'."""
    unit = Number(0, 1)
    return apply_options([
        click.option("--track-high", type=unit, default=DEFAULTS.high, show_default=True,
                     help="Detections at least this sure are matched to tracks first."),
        click.option("--track-low", type=unit, default=DEFAULTS.low, show_default=True,
                     help="Detections from this up to --track-high only continue tracks."),
        click.option("--new-track", type=unit, default=DEFAULTS.new_track, show_default=True,
                     help="An unmatched detection at least this sure starts a track."),
        click.option("--track-buffer", type=click.IntRange(0), default=DEFAULTS.buffer,
                     show_default=True, help="Frames at 30 fps (so 1 s) that a lost person's "
                                             "ID waits for them to be found again."),
        click.option("--match-thresh", type=unit, default=DEFAULTS.match, show_default=True,
                     help="The highest cost (1 - similarity x score) still matched."),
        click.option("--keypoint-weight", type=unit, default=DEFAULTS.keypoint_weight,
                     show_default=True, help="Weight of keypoint similarity (OKS) against "
                                             "box IoU in the matching."),
        click.option("--duplicate-iou", type=Number(0, 1, min_open=True),
                     default=DEFAULTS.duplicate, show_default=True,
                     help="A detection at this box IoU with a person matched in the frame "
                          "starts no track (1: off)."),
        click.option("--box-only", is_flag=True,
                     help="Match by box IoU only (ByteTrack's association, no keypoints)."),
        click.option("--camera-motion/--no-camera-motion", default=True, show_default=True,
                     help="Measure the camera's motion into each video frame or --sequence "
                          "image (optical flow) and move the tracks with it."),
        click.option("--smooth", is_flag=True,
                     help="One Euro filter on every keypoint of every track."),
        click.option("--smooth-beta", type=Number(0), default=BETA, show_default=True,
                     help="--smooth: how fast the filter opens with speed (less lag, more "
                          "jitter)."),
        click.option("--smooth-min-cutoff", type=Number(0, min_open=True),
                     default=MIN_CUTOFF, show_default=True,
                     help="--smooth: cutoff in Hz at rest (lower: steadier, more lag)."),
    ], func)  # fmt: skip


def tracker_options(func):
    """The association and smoothing options, and those that make images a sequence."""
    return association_options(apply_options([
        click.option("--sequence", is_flag=True,
                     help="Track the images as the frames of one video, in the order given "
                          "(a folder's or glob's in natural order: f9 before f10); otherwise "
                          "each image is tracked alone."),
        click.option("--fps", type=Number(1e-6, 1e6), default=DEFAULT_FPS,
                     show_default=True, help="--sequence: frames per second of the images."),
    ], func))  # fmt: skip


@click.command()
@click.argument("sources", nargs=-1, required=True)
@model_options
@pipeline_options
@click.option("--conf", type=Number(0, 1), default=None,
              help="Person score threshold [default: --track-low, which the tracker's second "
                   "stage needs].")  # fmt: skip
@run_options(TRACK_FORMATS)
@tracker_options
def track(track_high, track_low, new_track, track_buffer, match_thresh, keypoint_weight,
          duplicate_iou, box_only, camera_motion, smooth, smooth_beta, smooth_min_cutoff,
          sequence, fps, **params) -> int:  # fmt: skip
    """Find people in videos and give each a stable ID across frames.

    SOURCES are as for `posecli infer`. Each video, camera or stream is tracked on its own; every
    pose written has an integer "id". --format mot writes MOTChallenge rows for one video.
    """
    if sequence and (params["shard"] or params["skip_existing"]):
        raise click.UsageError("--sequence tracks all the images: no --shard or --skip-existing")
    boxes_only = params["fmt"] == "mot" and params["save_dir"] is None
    refuse_untuned({"sequence": sequence, "smooth": smooth, "box_only": box_only,
                    "boxes_only": boxes_only})  # fmt: skip
    options = track_options(track_high, track_low, new_track, track_buffer, match_thresh,
                            keypoint_weight, duplicate_iou, box_only, camera_motion, smooth,
                            smooth_beta, smooth_min_cutoff, fps if sequence else None)  # fmt: skip
    if params["conf"] is None:
        params["conf"] = track_low
    check = partial(check_mot_items, sequence=sequence) if params["fmt"] == "mot" else None
    return run_sources(**params, stage=partial(tracking_stage, options), check_items=check,
                       measure=grey_thumbnail if camera_motion else None,
                       measure_images=camera_motion and sequence,
                       keep_missing=sequence, natural_order=sequence)  # fmt: skip


def track_options(track_high, track_low, new_track, track_buffer, match_thresh, keypoint_weight,
                  duplicate_iou, box_only, camera_motion, smooth, smooth_beta, smooth_min_cutoff,
                  sequence_fps: float | None = None) -> TrackOptions:  # fmt: skip
    """The TrackOptions that the association and smoothing options describe."""
    if track_low > track_high:
        raise click.UsageError(f"--track-low {track_low} is above --track-high {track_high}")
    settings = TrackerSettings(
        high=track_high, low=track_low, new_track=new_track, buffer=track_buffer,
        match=match_thresh, keypoint_weight=keypoint_weight, use_keypoints=not box_only,
        duplicate=duplicate_iou,
    )  # fmt: skip
    smoother = partial(KeypointSmoother, smooth_min_cutoff, smooth_beta) if smooth else None
    return TrackOptions(settings, smoother, sequence_fps, camera_motion=camera_motion)


def tracking_stage(options: TrackOptions, estimator: PoseEstimator) -> Stage:
    """Tracking of the pipeline's events, with the OKS sigmas of the model's keypoint spec."""
    sigmas = estimator.keypoint_spec.oks_sigmas()
    return partial(track_events, options=replace(options, sigmas=sigmas))


def check_mot_items(items: list[Item], sequence: bool) -> None:
    """MOT rows name no source: one video, or the images of one --sequence, per run; else an
    error naming the second source, before anything is done."""
    videos = [i.path for i in items if i.is_video]
    if videos and len(items) > 1:
        second = items[1].path if items[0].is_video else videos[0]
        raise PoseCliError(
            f"{printable_path(second)}: --format mot takes one video, camera or stream "
            "(or one --sequence of images) per run; nothing was done"
        )
    if items and not videos and not sequence:
        raise PoseCliError(
            f"{printable_path(items[0].path)}: --format mot takes images only as the frames of "
            "one --sequence; nothing was done"
        )
