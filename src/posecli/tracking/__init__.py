"""Tracking: the Kalman filter, the tracker, keypoint smoothing, camera motion, and the
pipeline stage that tracks events."""
