"""The bottom layer: errors, result containers, geometry, keypoint specs, file kinds and
file transactions."""
