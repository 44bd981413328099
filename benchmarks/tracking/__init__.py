"""Measures posecli's tracker and keypoint smoothing on videos with exact ground truth, and
writes docs/tracking.md (`python -m benchmarks.tracking`).

Each video films one annotated COCO photo (../shared/coco) with a virtual camera that pans and
zooms while an occluder sweeps across (synthesis); the model runs on every frame (clips, kept
by cache); the trackers' outputs are scored with CLEAR-MOT and IDF1 (scoring), smoothing by
jitter, lag and keypoint AP50 (smoothing), speed by CPU time (timing); measure runs it all and
report fills template.md with what was measured.
"""
