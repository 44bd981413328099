#!/usr/bin/env python3
"""Runs `posecli eval` for every model on ../shared/coco and writes docs/accuracy.md.

Each model is scored with letterbox and with stretch resizing (conf 0.001, iou 0.7,
max-det 100), and once more with ST's model-card settings (stretch, NMS IoU 0.1), next to
the model card's AP50. Re-running gives the same numbers: inference is deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from posecli.models import load_manifest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # column label: extra `posecli eval` options
    "letterbox": ["--resize", "letterbox"],
    "letterbox, full decode": ["--resize", "letterbox", "--full-decode"],
    "stretch": ["--resize", "stretch"],
    "stretch, NMS 0.1": ["--resize", "stretch", "--iou", "0.1"],
}

EXPLANATION = """\
## Why these numbers differ from the model card

The card's AP0.5 and the figures above measure different things, so they are close but not
equal:

- **Metric.** ST computed the card with its own TensorFlow OKS-based metric; posecli uses the
  reference pycocotools `COCOeval`, which matches detections greedily per image, scores
  keypoints only against people with labelled keypoints (at most 20 detections per image) and
  averages precision over the standard 101 recall points.
- **Subset.** The card covers the COCO val2017 person images; this table covers the
  {images} images in `../shared/coco` (all their person annotations, including {empty}
  images without people, which can only add false positives). A few hundred images give
  figures that move by a point or two from subset to subset.
- **NMS threshold.** The card used NMS IoU 0.1 with score threshold 0.001. posecli defaults
  to IoU 0.7, which keeps overlapping people apart; 0.1 removes the lower-scored one of any two
  people whose boxes overlap by more than 10 %, which loses crowded people but also duplicates.
- **Resize.** ST stretches every image to the square input (`--resize stretch`); posecli
  defaults to letterbox, which keeps the aspect ratio and pads with grey. Here letterbox
  scores the higher keypoint AP50 for {letterbox_wins} of the {models} models.

Reduced-resolution JPEG decoding (posecli's default, see the README) is on in every column
but "full decode"; the keypoint AP50 it gains or loses against full decoding is
{decode_deltas}. These COCO photos (640 pixels wide at most) are too small for a reduced
decode, which needs a JPEG at least 4 times the model input (1024 pixels at 256), so they are
decoded in full either way; [reduced-decode.md](reduced-decode.md) measures the effect on
enlarged copies of them.
"""


def run_eval(annotations: Path, images: Path, model: str, extra: list[str]) -> dict:
    """One `posecli eval --json` run."""
    command = [sys.executable, "-m", "posecli", "eval", "--annotations", str(annotations),
               "--images", str(images), "-m", model, "--conf", "0.001", "--json", "--quiet",
               *extra]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, check=True)
    return json.loads(proc.stdout)


def table(rows: list[tuple[str, float | None, dict[str, dict]]], kind: str) -> list[str]:
    """Markdown table of AP50 and AP (in %) of one kind; keypoints also show the card's AP50."""
    card_head = "card AP50 | " if kind == "keypoints" else ""
    head = " | ".join(f"{c} AP50 | {c} AP" for c in CONFIGS)
    columns = 1 + bool(card_head) + 2 * len(CONFIGS)
    lines = [f"| model | {card_head}{head} |", "|---" * columns + "|"]
    for model, card, results in rows:
        card_cell = f"{card if card else '-'} | " if card_head else ""
        cells = " | ".join(
            f"{results[c][kind]['AP50']:.1f} | {results[c][kind]['AP']:.1f}" for c in CONFIGS
        )
        lines.append(f"| {model} | {card_cell}{cells} |")
    return lines


def ap50(results: dict[str, dict], config: str) -> float:
    """Keypoint AP50 of one configuration."""
    return results[config]["keypoints"]["AP50"]


def script_args(description: str, out: Path) -> argparse.Namespace:
    """--shared and --out options; POSECLI_MODELS defaults to the shared models."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args()
    os.environ.setdefault("POSECLI_MODELS", str(args.shared / "models"))
    return args


def main() -> None:
    """Evaluate every model and write the markdown page."""
    args = script_args(__doc__.splitlines()[0], ROOT / "docs" / "accuracy.md")
    annotations = args.shared / "coco" / "person_keypoints_val2017_dev.json"
    images = args.shared / "coco" / "val2017"
    data = json.loads(annotations.read_text())
    with_people = {a["image_id"] for a in data["annotations"]}
    empty = sum(1 for i in data["images"] if i["id"] not in with_people)
    rows = []
    for name, spec in load_manifest()[1].items():
        results = {label: run_eval(annotations, images, name, extra)
                   for label, extra in CONFIGS.items()}  # fmt: skip
        rows.append((name, spec.card_ap50, results))
        print(name, {k: v["keypoints"]["AP50"] for k, v in results.items()}, flush=True)
    count = rows[0][2]["letterbox"]["images"]
    page = [
        "# Accuracy on ../shared/coco",
        "",
        f"Generated by `scripts/accuracy_table.py`: `posecli eval` (pycocotools COCOeval) on "
        f"{count} COCO val2017 images with their official person annotations, conf 0.001, "
        "max-det 100, NMS IoU 0.7 unless the column says otherwise. All figures in %.",
        "",
        "## Keypoints (OKS)",
        "",
        *table(rows, "keypoints"),
        "",
        "## Person boxes",
        "",
        *table(rows, "bbox"),
        "",
        EXPLANATION.format(
            images=count,
            empty=empty,
            models=len(rows),
            letterbox_wins=sum(ap50(r, "letterbox") > ap50(r, "stretch") for _, _, r in rows),
            decode_deltas=", ".join(
                f"{ap50(r, 'letterbox') - ap50(r, 'letterbox, full decode'):+.2f} ({name})"
                for name, _, r in rows
            ),
        ),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(page))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
