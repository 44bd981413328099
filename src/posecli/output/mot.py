"""MOTChallenge text rows for tracked poses."""

from __future__ import annotations

from posecli.core.results import People


def mot_rows(frame_index: int, poses: People) -> list[str]:
    """MOTChallenge lines `frame,id,x,y,w,h,score,-1,-1,-1` of one frame (0-based index given;
    the file's frames count from 1). An untracked pose gets id -1, as in MOTChallenge det files.
    A box given corners last first is written as the same box."""
    rows = []
    for p in poses:
        x1, x2 = sorted((float(p.box[0]), float(p.box[2])))
        y1, y2 = sorted((float(p.box[1]), float(p.box[3])))
        track = -1 if p.track_id is None else int(p.track_id)
        rows.append(
            f"{frame_index + 1},{track},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
            f"{float(p.score):.5f},-1,-1,-1"
        )
    return rows
