"""Markdown tables of measured rows."""

from __future__ import annotations

import numpy as np

from benchmarks.tracking.scoring import HEIGHT_BINS, Row

TRACKER_HEADER = (
    "| tracker | MOTA | IDF1 | ID switches | switches per 10 people | FP | FN | "
    "IDF1, detected people | ID switches, detected people | tracking ms/frame |"
)


def rule(columns: int) -> str:
    """The line under a Markdown table's header."""
    return "|---" * columns + "|"


def tracker_cells(row: Row) -> str:
    """One tracker's scores as a row of TRACKER_HEADER's table."""
    c, d = row.counts, row.detected
    ms = "n/a" if row.seconds is None else f"{1000 * row.seconds / row.frames:.2f}"
    return (
        f"| {row.name} | {100 * c.mota:.1f} | {100 * c.idf1:.1f} | {c.switches} | "
        f"{row.switches_per_10:.2f} | {c.false_positives} | {c.misses} | "
        f"{100 * d.idf1:.1f} | {d.switches} | {ms} |"
    )


def tracker_table(rows: list[Row]) -> str:
    """The trackers' scores."""
    return "\n".join([TRACKER_HEADER, rule(10), *map(tracker_cells, rows)])


def height_bands() -> list[str]:
    """The HEIGHT_BINS bands as text: "40-60", ..., "200 or more"."""
    edges = [*HEIGHT_BINS[1:], None]
    return [f"{lo}-{hi}" if hi else f"{lo} or more" for lo, hi in zip(HEIGHT_BINS, edges,
                                                                      strict=True)]  # fmt: skip


def height_table(by_height: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """The share of scored people each model finds, by the height of their box."""
    models = list(by_height)
    boxes = by_height[models[0]][0]
    lines = [
        "| person height (px) | scored boxes | "
        + " | ".join(f"found by {m}" for m in models)
        + " |",
        rule(2 + len(models)),
    ]
    for i, band in enumerate(height_bands()):
        shares = " | ".join(f"{100 * by_height[m][1][i]:.0f} %" for m in models)
        lines.append(f"| {band} | {boxes[i]} | {shares} |")
    return "\n".join(lines)


def target_table(targets: list[tuple[str, str, bool, str]]) -> str:
    """The targets: name, measured value, whether met, the best possible."""
    lines = ["| target | measured (held-out set) | met | best possible |", rule(4)]
    lines += [f"| {name} | {value} | {'yes' if met else 'no'} | {best} |"
              for name, value, met, best in targets]  # fmt: skip
    return "\n".join(lines)
