"""The launcher leaves nothing behind: `scripts/cluster up`, `status` and `down` on a machine
without nftables (nft hidden from PATH) stop every process they started, and `status` lists
them while they run; an `up` that fails midway (a node's supervisord killed under it, its
services orphaned) stops everything it started, orphans included."""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scripts.cluster import Cluster, ClusterError, pid_alive, process_tree

ROOT = Path(__file__).resolve().parents[2]


def without_nft():
    """The environment with every PATH directory that holds nft left out."""
    nft = shutil.which("nft")
    assert nft, "nftables is needed to show that the launcher does without it (scripts/test installs it)"
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not os.path.exists(os.path.join(d, "nft"))]
    env = {**os.environ, "PATH": os.pathsep.join(path)}
    assert shutil.which("nft", path=env["PATH"]) is None
    return env


def cluster_cli(env, *args):
    done = subprocess.run([str(ROOT / "scripts" / "cluster"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_up_status_down_without_nftables_leave_no_process(tmp_path):
    env, where = without_nft(), str(tmp_path / "c")
    code, out = cluster_cli(env, "up", "--servers", "1", "--dir", where)
    try:
        assert code == 0, out
        code, out = cluster_cli(env, "status", "--dir", where)
        assert code == 0, out
        listed = [int(line.split()[0]) for line in out.splitlines() if line.startswith("  ")]
        assert "processes of this cluster running" in out and len(listed) >= 6, out  # supervisord and services
        assert all(pid_alive(pid) for pid in listed)
        code, out = cluster_cli(env, "down", "--dir", where)
        assert code == 0, out
        assert [pid for pid in listed if pid_alive(pid)] == []
    finally:
        if os.path.exists(os.path.join(where, "cluster.json")):  # the test failed half way: clean up
            Cluster.load(where).down()


def test_an_up_that_fails_midway_stops_what_it_started(tmp_path):
    cluster = Cluster(servers=2, dir=tmp_path / "c")

    def kill_s2_supervisord():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            node = cluster.nodes.get("s2")
            if node is not None and node.pid and len(process_tree(node.pid)) > 3:  # its services started
                os.kill(node.pid, signal.SIGKILL)  # only supervisord: its services are orphaned
                return
            time.sleep(0.02)

    saboteur = threading.Thread(target=kill_s2_supervisord)
    saboteur.start()
    with pytest.raises(ClusterError, match="s2: supervisord exited"):
        with cluster:
            pass
    saboteur.join()
    assert cluster.processes() == []
