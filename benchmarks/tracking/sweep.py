"""`--sweep`: the scores of the settings the tracker's defaults were chosen among, printed as
table rows (camera motion on the tuning and dev videos; the other settings on the tuning
videos without camera motion, which came after them)."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.tracking.clips import Clip
from benchmarks.tracking.measure import BOX_ONLY
from benchmarks.tracking.scoring import evaluate
from benchmarks.tracking.tables import tracker_cells
from posecli.tracking.tracker import TrackerSettings

LOW_REFINDS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7)
DUPLICATES = (1.0, 0.6, 0.5, 0.4, 0.3, 0.2)
KEYPOINT_WEIGHTS = (0.3, 0.5, 0.7)
KEYPOINT_SCALES = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
BUFFERS = (30, 60)


def sweep(tune: list[Clip], dev: list[Clip]) -> None:
    """Print the row of every setting swept."""
    for name, settings, clips, camera in swept(tune, dev):
        print(tracker_cells(evaluate(name, settings, clips, camera)), flush=True)


def swept(tune: list[Clip], dev: list[Clip]):
    """(name, settings, clips, with camera motion) of every setting swept, in order."""
    sets = (("tuning", tune), ("dev", dev))
    for label, clips in sets:
        for camera in (True, False):
            yield f"{label}, camera motion {camera}", TrackerSettings(), clips, camera
    for low_refind in LOW_REFINDS:
        for label, clips in sets:
            yield (f"{label}, low refind {low_refind}", TrackerSettings(low_refind=low_refind),
                   clips, True)  # fmt: skip
    yield "box only", BOX_ONLY, tune, False
    yield "box only, buffer 60", replace(BOX_ONLY, buffer=60), tune, False
    for duplicate in DUPLICATES:
        yield f"duplicate {duplicate}", TrackerSettings(duplicate=duplicate), tune, False
    for weight in KEYPOINT_WEIGHTS:
        for scale in KEYPOINT_SCALES:
            for buffer in BUFFERS:
                settings = TrackerSettings(keypoint_weight=weight, keypoint_scale=scale,
                                           buffer=buffer)  # fmt: skip
                yield f"weight {weight}, scale {scale}, buffer {buffer}", settings, tune, False
