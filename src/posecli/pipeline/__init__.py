"""The frame pipeline: every source to per-frame results in order, with worker threads."""
