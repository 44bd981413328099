"""Shared fixtures: the real models, photos and COCO data in ../shared, and a CLI runner."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSECLI_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
COCO = SHARED / "coco"
COCO_IMAGES = COCO / "val2017"
COCO_ANNOTATIONS = COCO / "person_keypoints_val2017_dev.json"
BUS, ZIDANE = IMAGES / "bus.jpg", IMAGES / "zidane.jpg"
DEFAULT_MODEL = MODELS / "yolov8n_256_quant_pc_uf_pose_coco-st.tflite"

if not DEFAULT_MODEL.is_file():
    raise pytest.UsageError(f"the shared models are missing: {MODELS} (set POSECLI_SHARED)")
os.environ["POSECLI_MODELS"] = str(MODELS)


def coco_files(n: int | None = None) -> list[Path]:
    """The first n COCO val2017 images by name."""
    return sorted(COCO_IMAGES.glob("*.jpg"))[:n]


def run_cli(*args, stdin: bytes | None = None, env: dict | None = None, cwd=None):
    """Run `python -m posecli ARGS` and return the completed process (bytes output)."""
    return subprocess.run(
        [sys.executable, "-m", "posecli", *map(str, args)],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


def jsonl_records(stdout: bytes) -> list[dict]:
    """Parse JSONL output into records."""
    return [json.loads(line) for line in stdout.decode().splitlines()]


def ok_records(stdout: bytes) -> list[dict]:
    """The JSONL records of images and frames, without the error records of failed inputs."""
    return [r for r in jsonl_records(stdout) if "error" not in r]


@pytest.fixture(scope="session")
def estimator():
    """The default model with default settings."""
    from posecli import PoseEstimator

    return PoseEstimator()


def mjpeg_part(jpeg: bytes) -> bytes:
    """One JPEG as a part of a multipart MJPEG stream (boundary "frame")."""
    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
    return head + jpeg + b"\r\n"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A request handler that logs nothing and can send an MJPEG stream."""

    def log_message(self, *args) -> None:
        pass

    def send_mjpeg(self, jpegs, interval: float) -> None:
        """An MJPEG reply of the `jpegs` (an iterable), `interval` s apart, until they end or
        the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        with contextlib.suppress(OSError):
            for jpeg in jpegs:
                self.wfile.write(mjpeg_part(jpeg))
                time.sleep(interval)


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port, at `url`) in a thread of its own."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
