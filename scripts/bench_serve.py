"""Inference frames/s of `posecli serve` with no viewer and with 50 on loopback, and their ratio.

    python scripts/bench_serve.py [VIDEO] [--viewers 50] [--seconds 20] [-- SERVE OPTIONS]

The video is served with --loop --no-realtime (as fast as inference goes) on 127.0.0.1; the
frames/s are read from /status before and after each phase. The viewers read /stream.mjpg
through raw sockets into one buffer, so that they cost the machine little; the no-viewer phase
runs before and after the viewers', and its mean is the baseline. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "videos" / "pets-vtest.avi"
WARM_UP = 3.0


def start(video: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """The server and its URL."""
    command = [sys.executable, "-m", "posecli", "serve", video, "--loop", "--no-realtime",
               "--port", "0", "-q", *extra]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url:
        sys.exit(f"posecli serve did not start (exit {proc.wait()})")
    return proc, url


def frames(url: str) -> int:
    """Frames processed so far, from /status."""
    with urllib.request.urlopen(url + "status", timeout=10) as response:
        return json.load(response)["frames"]


async def rate(url: str, seconds: float) -> float:
    """Inference frames/s over `seconds`."""
    first, start = frames(url), time.monotonic()
    await asyncio.sleep(seconds)
    return (frames(url) - first) / (time.monotonic() - start)


async def viewer(host: str, port: int, stop: asyncio.Event) -> int:
    """Read /stream.mjpg until `stop`; the bytes received."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
    received = 0
    while not stop.is_set():
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    writer.close()
    return received


async def bench(url: str, viewers: int, seconds: float) -> tuple[float, float, int]:
    """Frames/s with no viewer (mean of before and after), with `viewers`, and the MB they got."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    await asyncio.sleep(WARM_UP)
    before = await rate(url, seconds)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(viewer(host, int(port), stop)) for _ in range(viewers)]
    await asyncio.sleep(1.0)
    watched = await rate(url, seconds)
    stop.set()
    received = sum(await asyncio.gather(*tasks))
    after = await rate(url, seconds)
    return (before + after) / 2, watched, received // 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(PETS))
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("serve_options", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    extra = [a for a in args.serve_options if a != "--"]
    proc, url = start(args.video, extra)
    try:
        alone, watched, megabytes = asyncio.run(bench(url, args.viewers, args.seconds))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    print(f"inference, {'no viewer:':<12} {alone:.1f} frames/s")
    viewers = f"{args.viewers} viewers:"
    print(f"inference, {viewers:<12} {watched:.1f} frames/s ({megabytes} MB sent)")
    print(f"ratio: {watched / alone:.3f}")


if __name__ == "__main__":
    main()
