"""Ultralytics' `yolo pose track` (ByteTrack, its defaults) on frames exported by the benchmark.

Runs in an environment with Ultralytics, not posecli's (it needs torch):

    python3 -m venv /tmp/ul && /tmp/ul/bin/pip install ultralytics ai-edge-litert lap
    .venv/bin/python -m benchmarks.tracking --export /tmp/frames
    /tmp/ul/bin/python scripts/ultralytics_track.py /tmp/frames /tmp/ultralytics \
        --model ../shared/models/yolov8n_256_quant_pc_uf_pose_coco-st.tflite
    .venv/bin/python -m benchmarks.tracking --reference /tmp/ultralytics

It writes one MOTChallenge file per video (`OUT/<video>.txt`, frame 1-based) and
`OUT/version.txt`, which names the NMS that ran (torchvision's, or Ultralytics' TorchNMS where
torchvision does not import; with quantized, often equal scores the two can keep different
boxes). Two shims make ST's file run as Ultralytics runs its own exports: the
file gets the metadata Ultralytics embeds (task, names, keypoint shape), and its uint8 input
is fed by rounding Ultralytics' 0..1 floats to 0..255 (Ultralytics quantizes only int8 and
int16 inputs itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import ultralytics
from ai_edge_litert.interpreter import Interpreter
from ultralytics import YOLO


def with_metadata(model: Path, directory: Path) -> tuple[Path, tuple[int, int]]:
    """A copy of the model carrying Ultralytics' metadata, and its input size (rows, columns)."""
    interpreter = Interpreter(model_path=str(model))
    rows, cols = (int(v) for v in interpreter.get_input_details()[0]["shape"][1:3])
    keypoints = (int(interpreter.get_output_details()[0]["shape"][1]) - 5) // 3
    copy = directory / model.name
    shutil.copyfile(model, copy)
    metadata = {"task": "pose", "names": {0: "person"}, "kpt_shape": [keypoints, 3],
                "stride": 32, "imgsz": [rows, cols], "batch": 1, "channels": 3}  # fmt: skip
    with zipfile.ZipFile(copy, "a") as z:
        z.writestr("metadata.json", json.dumps(metadata))
    return copy, (rows, cols)


def nms_in_use() -> str:
    """Which NMS Ultralytics runs: torchvision's, or, when torchvision does not import (PyPI's
    wheel is a CUDA build that cannot load beside torch's CPU wheel), Ultralytics' own TorchNMS
    put in its place."""
    try:
        import torchvision

        return f"torchvision {torchvision.__version__} NMS"
    except (ImportError, RuntimeError) as error:
        from ultralytics.utils.nms import TorchNMS

        sys.modules["torchvision"] = SimpleNamespace(ops=SimpleNamespace(nms=TorchNMS.nms))  # type: ignore[assignment]
        return f"Ultralytics' TorchNMS, as torchvision did not import ({type(error).__name__})"


def feed_uint8_inputs() -> None:
    """Let Interpreter.set_tensor take 0..1 floats for a uint8 input (scale 1/255)."""
    original = Interpreter.set_tensor

    def set_tensor(self: Interpreter, index: int, value: np.ndarray) -> None:
        wants = {d["index"]: d["dtype"] for d in self.get_input_details()}
        if wants.get(index) == np.uint8 and value.dtype != np.uint8:
            value = np.clip(np.rint(value * 255), 0, 255).astype(np.uint8)
        original(self, index, value)

    Interpreter.set_tensor = set_tensor  # type: ignore[method-assign]


def track_video(model: Path, imgsz: tuple[int, int], frames: list[Path]) -> list[str]:
    """MOTChallenge lines of one video, tracked from its first frame with a fresh tracker."""
    yolo = YOLO(str(model), task="pose")
    lines = []
    for number, path in enumerate(frames, 1):
        result = yolo.track(cv2.imread(str(path)), persist=True, tracker="bytetrack.yaml",
                            imgsz=list(imgsz), verbose=False)[0]  # fmt: skip
        boxes = result.boxes
        if boxes.id is None:
            continue
        for (x1, y1, x2, y2), score, track in zip(
            boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.id.numpy(), strict=True
        ):
            lines.append(f"{number},{int(track)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                         f"{score:.5f},-1,-1,-1")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=Path, help="folder of one PNG folder per video")
    parser.add_argument("output", type=Path, help="folder for the MOTChallenge files")
    parser.add_argument("--model", type=Path, required=True, help="the .tflite file")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    feed_uint8_inputs()
    nms = nms_in_use()
    with tempfile.TemporaryDirectory() as tmp:
        model, imgsz = with_metadata(args.model, Path(tmp))
        for video in sorted(p for p in args.frames.iterdir() if p.is_dir()):
            lines = track_video(model, imgsz, sorted(video.glob("*.png")))
            (args.output / f"{video.name}.txt").write_text("".join(f"{x}\n" for x in lines))
            print(f"{video.name}: {len(lines)} boxes", flush=True)
    version = f"ultralytics {ultralytics.__version__}, {nms}, model {args.model.name}\n"
    (args.output / "version.txt").write_text(version)


if __name__ == "__main__":
    main()
