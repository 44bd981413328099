"""Output: result formats, annotated drawing and video, YOLO data sets, MOT rows."""
