"""`--engine ray` on a local Ray started once for the module (2 CPUs): the same bytes as
`--engine local`, an actor killed mid-run, Ctrl-C, Ray missing, and PoseBatch for Ray Data."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUS, COCO_IMAGES, ZIDANE, coco_files, jsonl_records, run_cli
from test_track_cli import PETS, cut_clip

# Ray on loopback (it takes the machine's address otherwise), here and in the CLI runs; it is
# read when Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
from posecli.run import ray_engine  # noqa: E402 - after the skip without Ray

PHOTOS = [BUS, ZIDANE, *coco_files(150)]


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (its children, theirs, and so on)."""
    found, todo = set(), [pid]
    while todo:
        children = ray_engine.child_pids(todo.pop())
        found.update(children)
        todo += children
    return found


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def titled(pids: set[int], title: str) -> set[int]:
    """The processes among `pids` whose command line starts with `title`."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                found.add(pid)
    return found


def lines_in(path: Path) -> int:
    """The complete lines written to `path` so far."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_ctrl_c_keeps_finished_records_and_leaves_no_ray_behind(tmp_path):
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "posecli", "infer", str(COCO_IMAGES), "--engine", "ray",
               "-o", str(out)]  # fmt: skip
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 60
        while lines_in(out) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        local_ray = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT
    assert 5 <= len(jsonl_records(out.read_bytes())) < 408
    assert len(local_ray) >= 3  # the GCS, the raylet, the actors...
    deadline = time.monotonic() + 20  # a loaded machine may take a while to end them
    while [pid for pid in local_ray if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in local_ray if alive(pid)]


def test_without_ray_one_line_exit_2(tmp_path):
    hide = "import sys; sys.modules['ray'] = None; from posecli.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", hide, "infer", str(BUS), "--engine", "ray",
                           "-o", str(tmp_path / "out.jsonl")], capture_output=True)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        "posecli: error: --engine ray needs Ray: pip install 'posecli[ray]'"
    ]
    assert not (tmp_path / "out.jsonl").exists()


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs, started once; the CLI runs join it by RAY_ADDRESS."""
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert context.address_info["address"].startswith("127.0.0.1:")
    yield {"RAY_ADDRESS": context.address_info["address"]}
    ray.shutdown()


@pytest.fixture(scope="module")
def local_photos(tmp_path_factory) -> bytes:
    """The photos through `posecli infer --engine local -o out.jsonl`."""
    out = tmp_path_factory.mktemp("local") / "out.jsonl"
    proc = run_cli("infer", *PHOTOS, "-o", out)
    assert proc.returncode == 0, proc.stderr.decode()
    return out.read_bytes()


def test_ray_writes_the_bytes_of_local(cluster, local_photos, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_cli("infer", *PHOTOS, "--engine", "ray", "-o", out, env=cluster)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes() == local_photos
    assert f"{len(PHOTOS)} images" in proc.stderr.decode()


def test_track_on_a_video_and_its_copy_as_local(cluster, tmp_path):
    clip = tmp_path / "pets-clip.mp4"
    cut_clip(PETS, clip, 520, 40)
    outputs = {}
    for engine in ("local", "ray"):
        out, saved = tmp_path / f"{engine}.jsonl", tmp_path / f"saved-{engine}"
        proc = run_cli("track", clip, BUS, "--engine", engine, "-o", out, "--save-dir", saved,
                       env=cluster)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        outputs[engine] = out.read_bytes(), {p.name: p.read_bytes() for p in saved.iterdir()}
    assert outputs["ray"] == outputs["local"]
    records = jsonl_records(outputs["ray"][0])
    assert len(records) == 41 and any(p.get("id") for r in records for p in r["poses"])


def test_infer_copies_as_local(cluster, tmp_path):
    copies = {}
    for engine in ("local", "ray"):
        saved = tmp_path / engine
        proc = run_cli("infer", *PHOTOS[:6], "--engine", engine, "-o", tmp_path / f"{engine}.jsonl",
                       "--save-dir", saved, env=cluster)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        copies[engine] = {p.name: p.read_bytes() for p in saved.iterdir()}
    assert len(copies["ray"]) == 6 and copies["ray"] == copies["local"]


def run_killing_an_actor(args: list, out: Path, env: dict, after: int) -> bytes:
    """Run `posecli ARGS --engine ray -o OUT`, SIGKILL one of its actors once `after` records
    are written, and return its standard error once it has exited 0."""
    command = [sys.executable, "-m", "posecli", *map(str, args), "--engine", "ray", "--workers",
               "2", "-o", str(out)]  # fmt: skip
    before = titled(descendants(os.getpid()), "ray::PoseWorker")  # actors of earlier runs
    with subprocess.Popen(command, env={**os.environ, **env}, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 60
        while lines_in(out) < after and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        busy = titled(descendants(os.getpid()), "ray::PoseWorker.") - before
        assert busy and proc.poll() is None, "the run ended before an actor was seen at work"
        os.kill(min(busy), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    return stderr


def test_an_actor_killed_mid_run_is_replaced(cluster, local_photos, tmp_path):
    out = tmp_path / "out.jsonl"
    run_killing_an_actor(["infer", *PHOTOS], out, cluster, after=10)
    assert out.read_bytes() == local_photos
    images = [r["image"] for r in jsonl_records(out.read_bytes())]
    assert sorted(images) == sorted(map(str, PHOTOS))


def test_a_video_whose_actor_is_killed_is_replayed(cluster, tmp_path):
    clip = tmp_path / "pets-clip.mp4"
    cut_clip(PETS, clip, 400, 160)
    local = run_cli("track", clip, "-o", tmp_path / "local.jsonl")
    assert local.returncode == 0, local.stderr.decode()
    stderr = run_killing_an_actor(["track", clip], tmp_path / "ray.jsonl", cluster, after=30)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert b"PoseWorker.video failed" in stderr  # it was killed at work, and run again


def test_a_node_removed_mid_run(local_photos, tmp_path):
    """Two nodes (cluster_utils), one removed mid-run: its actor comes back on the other."""
    out = tmp_path / "out.jsonl"
    script = Path(__file__).with_name("ray_two_nodes.py")
    proc = subprocess.run([sys.executable, script, out, "10", *map(str, PHOTOS)],
                          capture_output=True, timeout=300)  # fmt: skip
    report = proc.stdout.decode()
    assert report.startswith("exit 0, node removed mid-run: True"), report + proc.stderr.decode()
    assert out.read_bytes() == local_photos


def test_workers_without_ray_engine_is_a_usage_error():
    proc = run_cli("infer", BUS, "--workers", "2")
    assert proc.returncode == 2
    assert "--workers applies only with --engine ray" in proc.stderr.decode()


def test_pose_batch_in_ray_data_gives_the_cli_poses(cluster, local_photos):
    paths = [str(p) for p in PHOTOS[:6]]
    dataset = ray.data.read_binary_files(paths, include_paths=True)
    one = ray.data.ActorPoolStrategy(size=1)
    rows = dataset.map_batches(ray_engine.PoseBatch, batch_size=4, compute=one).take_all()
    by_path = {row["path"]: row for row in rows}
    for path, expected in zip(paths, jsonl_records(local_photos), strict=False):
        row = by_path[path]
        assert row["error"] is None
        assert json.loads(row["poses"]) == expected["poses"]
        assert (row["width"], row["height"]) == (expected["width"], expected["height"])


def test_pose_batch_on_read_images(cluster):
    dataset = ray.data.read_images([str(BUS), str(ZIDANE)], include_paths=True, mode="RGB")
    rows = dataset.map_batches(ray_engine.PoseBatch, fn_constructor_kwargs={"conf": 0.3},
                               compute=ray.data.ActorPoolStrategy(size=1)).take_all()  # fmt: skip
    sizes = {Path(r["path"]).name: (r["width"], r["height"], r["num_poses"]) for r in rows}
    assert sizes["bus.jpg"][:2] == (810, 1080) and sizes["bus.jpg"][2] >= 3
    assert sizes["zidane.jpg"][:2] == (1280, 720) and sizes["zidane.jpg"][2] >= 2
