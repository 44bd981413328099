"""Run by tests/test_ray.py: `posecli infer PHOTOS --engine ray --workers 2 -o OUT` on a Ray of
two nodes (cluster_utils: a head of 2 CPUs, a node of 1), the node removed once `after` records
are written. Prints the exit status and the standard error of the run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray on loopback, read on import
import ray
from ray.cluster_utils import Cluster


def main(out: Path, after: int, photos: list[str]) -> None:
    """Start the cluster, run posecli, remove the node mid-run, report."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    node = cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        command = [sys.executable, "-m", "posecli", "infer", *photos, "--engine", "ray",
                   "--workers", "2", "-o", str(out)]  # fmt: skip
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as proc:
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and proc.poll() is None
                and (not out.exists() or out.read_bytes().count(b"\n") < after)
            ):
                time.sleep(0.05)
            removed = proc.poll() is None
            cluster.remove_node(node)
            _, stderr = proc.communicate(timeout=120)
        print(f"exit {proc.returncode}, node removed mid-run: {removed}")
        print(stderr.decode())
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
