"""docs/tracking.md: template.md (and ultralytics.md when reference tracks were scored) filled
with what the run measured and the settings it ran with."""

from __future__ import annotations

import inspect
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.tracking import scoring, smoothing, sweep, synthesis, timing
from benchmarks.tracking.clips import LARGER, MODEL
from benchmarks.tracking.measure import DEFAULT, LONG_BUFFER, Measurements
from benchmarks.tracking.tables import height_table, target_table, tracker_table
from posecli import PoseEstimator
from posecli.tracking import camera_motion
from posecli.tracking.smoothing import KeypointSmoother

HERE = Path(__file__).parent
IDF1_TARGET = 80  # the targets on the held-out set
SWITCHES_PER_10_TARGET = 1
TRACKING_MS_TARGET = 1.0  # tracking and smoothing, WALKERS people
JITTER_CUT_TARGET = 60  # % of the still-camera jitter smoothing takes away
LAG_TARGET = 1.0  # frames smoothing may add
AP_DROP_TARGET = 0.5  # keypoint AP50 smoothing may cost
ERROR_PERCENTILE = 99  # of the camera motion's corner errors


def command(sequences: int, still: int, dev: int, reference: bool) -> str:
    """The command line that makes the report with these options."""
    line = f"python -m benchmarks.tracking --sequences {sequences} --still {still} --dev {dev}"
    return line + (" --reference DIR" if reference else "")


def listed(values, first: str = "") -> str:
    """Numbers as "a, b and c", the first followed by `first` ("1 (off), 0.6 and 0.5")."""
    words = [f"{v:g}" for v in values]
    words[0] += f" {first}" if first else ""
    return ", ".join(words[:-1]) + f" and {words[-1]}"


def targets(m: Measurements) -> list[tuple[str, str, bool, str]]:
    """The issue's targets against the held-out figures (name, measured, met, best possible)."""
    ours, box = m.rows["held-out"]["ours"], m.rows["held-out"]["box"]
    c, b, bound = ours.counts, box.counts, m.bounds["held-out"]
    jitter_cut = 100 * (1 - m.jitter[1] / m.jitter[0])
    lag, ap = m.lag[True] - m.lag[False], m.ap[True] - m.ap[False]
    smoothing_ms = m.tracking_ms[True]
    return [
        (f"IDF1 at least {IDF1_TARGET}", f"{100 * c.idf1:.1f}", 100 * c.idf1 >= IDF1_TARGET,
         f"at most {100 * bound.idf1:.1f}"),
        (f"at most {SWITCHES_PER_10_TARGET} ID switch per 10 people",
         f"{ours.switches_per_10:.2f}", ours.switches_per_10 <= SWITCHES_PER_10_TARGET,
         f"at least {bound.forced_per_10:.2f}"),
        ("IDF1 above the box-only baseline", f"{100 * c.idf1:.1f} vs {100 * b.idf1:.1f}",
         c.idf1 > b.idf1, ""),
        ("fewer ID switches than the baseline", f"{c.switches} vs {b.switches}",
         c.switches < b.switches, ""),
        *ultralytics_targets(m),
        (f"tracking and smoothing at most {TRACKING_MS_TARGET:g} ms per frame, "
         f"{timing.WALKERS} people", f"{smoothing_ms:.2f} ms", smoothing_ms <= TRACKING_MS_TARGET,
         ""),
        (f"still-camera jitter down at least {JITTER_CUT_TARGET} %", f"{jitter_cut:.0f} %",
         jitter_cut >= JITTER_CUT_TARGET, ""),
        (f"smoothing lag at most {LAG_TARGET:g} frame", f"{lag:+.2f} frames", lag <= LAG_TARGET,
         ""),
        (f"keypoint AP50 falls by at most {AP_DROP_TARGET:g}", f"{ap:+.2f}",
         ap >= -AP_DROP_TARGET, ""),
    ]  # fmt: skip


def ultralytics_targets(m: Measurements) -> list[tuple[str, str, bool, str]]:
    """Targets against Ultralytics' tracker, when its tracks were scored."""
    rows = m.rows["held-out"]
    if "ultralytics" not in rows:
        return []
    c, u = rows["ours"].counts, rows["ultralytics"].counts
    return [("IDF1 above Ultralytics' `yolo pose track`",
             f"{100 * c.idf1:.1f} vs {100 * u.idf1:.1f}", c.idf1 > u.idf1, ""),
            ("fewer ID switches than Ultralytics", f"{c.switches} vs {u.switches}",
             c.switches < u.switches, "")]  # fmt: skip


def ultralytics_paragraph(m: Measurements) -> str:
    """ultralytics.md filled in, or nothing when no reference tracks were scored."""
    row = m.rows["held-out"].get("ultralytics")
    if row is None:
        return ""
    c = row.counts
    values = {"reference": m.reference, "mota": 100 * c.mota, "idf1": 100 * c.idf1,
              "switches_per_person": c.switches / row.people}  # fmt: skip
    return "\n\n" + (HERE / "ultralytics.md").read_text().strip().format_map(values)


def switch_gaps(m: Measurements) -> dict[str, int]:
    """How many held-out ID switches of posecli came after the person had gone unmatched for
    longer than the buffer, for up to the buffer, and for no frame."""
    gaps = np.array(m.rows["held-out"]["ours"].counts.switch_gaps)
    buffer = DEFAULT.buffer
    return {"switches_long": int((gaps > buffer).sum()),
            "switches_short": int(((gaps > 0) & (gaps <= buffer)).sum()),
            "switches_next": int((gaps == 0).sum()), "switches": len(gaps)}  # fmt: skip


def longer_buffer(m: Measurements) -> str:
    """What the longer buffer does to the held-out ID switches, in words."""
    held_out = m.rows["held-out"]
    saved = held_out["ours"].counts.switches - held_out["long"].counts.switches
    return f"brings back only {saved} of them" if saved > 0 else "does not bring them back"


def bound_values(m: Measurements) -> dict:
    """The best-possible figures of both sets."""
    test, tune = m.bounds["held-out"], m.bounds["tuning"]
    return {
        "test_forced": test.forced, "test_forced_per_10": test.forced_per_10,
        "tune_forced": tune.forced, "test_bound_idf1": 100 * test.idf1,
        "tune_bound_idf1": 100 * tune.idf1, "evidence": scoring.EVIDENCE,
        "reach": "cannot" if test.forced_per_10 > SWITCHES_PER_10_TARGET else "could in principle",
        "idf1_target": IDF1_TARGET, "idf1_margin": 100 * test.idf1 - IDF1_TARGET,
    }  # fmt: skip


def detector_values(m: Measurements) -> dict:
    """How much of the people each model finds, what it sees and what it costs."""
    seen, larger_seen = m.seen_at[MODEL], m.seen_at[LARGER]
    larger = m.rows["held-out"]["larger"].counts
    return {
        "found": m.found, "height_table": height_table(m.by_height),
        "seen_width": seen[0], "seen_height": seen[1],
        "min_height_seen": synthesis.MIN_HEIGHT * seen[1] / synthesis.HEIGHT,
        "larger_seen": f"{larger_seen[0]}x{larger_seen[1]}", "larger_idf1": 100 * larger.idf1,
        "larger_switches": larger.switches, "larger_bound_idf1": 100 * m.larger_bound.idf1,
        "larger_ms": m.model_ms[LARGER], "model_ms": m.model_ms[MODEL],
    }  # fmt: skip


def tracking_values(m: Measurements) -> dict:
    """The tracking tables, the set sizes and the camera motion's adoption figures."""
    tune, test = m.rows["tuning"], m.rows["held-out"]
    on, off = m.dev_rows[True].counts, m.dev_rows[False].counts
    sizes = {f"{short}_{k}": v for short, label in (("tune", "tuning"), ("test", "held-out"))
             for k, v in asdict(m.sizes[label]).items()}  # fmt: skip
    return {
        **sizes, "tune_table": tracker_table(list(tune.values())),
        "test_table": tracker_table(list(test.values())), "ultralytics": ultralytics_paragraph(m),
        "dev_videos": m.dev_videos, "dev_idf1_on": 100 * on.idf1, "dev_idf1_off": 100 * off.idf1,
        "dev_switches_on": on.switches, "dev_switches_off": off.switches,
        "tune_idf1": 100 * tune["ours"].counts.idf1,
        "tune_idf1_no_camera": 100 * tune["no camera"].counts.idf1,
        "tune_switches": tune["ours"].counts.switches,
        "tune_switches_no_camera": tune["no camera"].counts.switches,
        "longer": longer_buffer(m), "long_buffer": LONG_BUFFER, **switch_gaps(m),
    }  # fmt: skip


def speed_values(m: Measurements) -> dict:
    """The CPU times and the camera motion's accuracy."""
    errors = m.camera_errors
    median, worst = np.percentile(errors, [50, ERROR_PERCENTILE])
    return {
        "walkers": timing.WALKERS, "walk_runs": timing.WALK_RUNS,
        "walk_frames": timing.WALK_FRAMES, "tracking_ms": m.tracking_ms[False],
        "smoothing_ms": m.tracking_ms[True], "camera_ms": m.camera_ms,
        "thumb_width": camera_motion.WIDTH, "cell": camera_motion.CELL,
        "camera_steps": len(errors), "camera_median": median, "camera_worst": worst,
        "percentile": ERROR_PERCENTILE, "corner_off": scoring.CORNER_OFF,
        "camera_steps_off": int((errors > scoring.CORNER_OFF).sum()),
        "add_size": timing.ADD_SIZE, "add_us": m.add_us,
        "adds": 1000 * m.tracking_ms[True] / m.add_us,
    }  # fmt: skip


def smoothing_values(m: Measurements) -> dict:
    """The smoother's settings and what it does."""
    f = KeypointSmoother()
    return {
        "min_cutoff": f.min_cutoff, "beta": f.beta, "d_cutoff": f.d_cutoff,
        "jitter_raw": m.jitter[0], "jitter_smoothed": m.jitter[1],
        "jitter_cut": 100 * (1 - m.jitter[1] / m.jitter[0]),
        "lag_raw": m.lag[False], "lag_smoothed": m.lag[True], "ap_raw": m.ap[False],
        "ap_smoothed": m.ap[True], "raw_ap": m.raw_ap, "still": m.still_videos,
        "still_frames": synthesis.STILL_FRAMES, "confident": smoothing.CONFIDENT,
    }  # fmt: skip


def setting_values() -> dict:
    """The tracker's settings, those swept, and how the videos are made and scored."""
    s = DEFAULT
    return {
        "high": s.high, "low": s.low, "new_track": s.new_track, "buffer": s.buffer,
        "match": s.match, "keypoint_weight": s.keypoint_weight,
        "keypoint_scale": s.keypoint_scale, "duplicate": s.duplicate,
        "refind": 100 * s.refind, "low_refind": 100 * s.low_refind,
        "nms_iou": inspect.signature(PoseEstimator).parameters["iou"].default,
        "low_refinds": listed(sweep.LOW_REFINDS, "(off)"),
        "duplicates": listed(sweep.DUPLICATES, "(off)"),
        "keypoint_weights": listed(sweep.KEYPOINT_WEIGHTS),
        "keypoint_scales": listed(sweep.KEYPOINT_SCALES),
        "width": synthesis.WIDTH, "height": synthesis.HEIGHT, "fps": synthesis.FPS,
        "frames_min": synthesis.FRAMES[0], "frames_max": synthesis.FRAMES[1],
        "band_min": synthesis.BAND_WIDTHS[0], "band_max": synthesis.BAND_WIDTHS[1],
        "hidden_min": synthesis.HIDDEN_SECONDS[0], "hidden_max": synthesis.HIDDEN_SECONDS[1],
        "noise": synthesis.NOISE, "crf": synthesis.CRF, "min_height": synthesis.MIN_HEIGHT,
        "min_visible": synthesis.MIN_VISIBLE, "match_iou": scoring.MATCH_IOU,
        "inside": scoring.INSIDE, "pick_people": synthesis.PICK_PEOPLE,
        "pick_height": synthesis.PICK_HEIGHT, "pick_keypoints": synthesis.PICK_KEYPOINTS,
        "model": MODEL, "larger": LARGER,
    }  # fmt: skip


def template_values(m: Measurements, sequences: int, still: int, dev: int) -> dict:
    """Every value template.md names."""
    reference = "ultralytics" in m.rows["held-out"]
    return {
        "command": command(sequences, still, dev, reference), "libraries": m.libraries,
        "sequences": sequences, "target_table": target_table(targets(m)),
        **setting_values(), **detector_values(m), **bound_values(m), **tracking_values(m),
        **speed_values(m), **smoothing_values(m),
    }  # fmt: skip


def render(m: Measurements, sequences: int, still: int, dev: int) -> str:
    """docs/tracking.md for measurements made with these options."""
    return (HERE / "template.md").read_text().format_map(template_values(m, sequences, still, dev))
