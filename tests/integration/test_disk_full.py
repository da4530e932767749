"""A full disk, on one node whose data dir is a tmpfs mounted with size= (root mounts it): once
the free space falls below [node] min_free_bytes, writes are refused with 507 (pykronctl exits
4), reads are served, no service restarts, and writes are taken again once space is freed,
with every write acknowledged before still there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.cluster import Cluster, wait_until

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")
RESERVE = 8 << 20
SERVICES = ("gossip", "raft", "scheduler", "dispatcher", "executor", "api")


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs: it needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def job(name):
    return {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}


def test_writes_are_refused_on_a_full_disk_and_taken_again_once_space_returns(small_disk):
    data = small_disk / "data"
    with Cluster(servers=1, conf={"node": {"min_free_bytes": RESERVE}},
                 node_conf={"s1": {"node": {"data_dir": str(data)}}}) as cluster:
        api = cluster.api()
        for i in range(20):
            assert requests.post(f"{api}/v1/jobs", json=job(f"before-{i:02d}"), timeout=10).status_code == 201
        beat = {**job("beat"), "schedule": "@every 1s"}
        assert requests.post(f"{api}/v1/jobs", json=beat, timeout=10).status_code == 201
        pids = {s: cluster.service_pid("s1", s) for s in SERVICES}

        st = os.statvfs(small_disk)
        ballast = small_disk / "ballast"
        with open(ballast, "wb") as fh:  # leave half the reserve: every other writer still finds room
            left = st.f_bavail * st.f_frsize - RESERVE // 2
            while left > 0:
                fh.write(b"\0" * min(left, 1 << 20))
                left -= 1 << 20
        full_at = int(time.time() * 1000) + 500
        time.sleep(0.5)

        refused = requests.post(f"{api}/v1/jobs", json=job("while-full"), timeout=30)
        assert refused.status_code == 507, refused.text
        assert "disk full" in refused.text and str(data) in refused.text
        listed = requests.get(f"{api}/v1/jobs", timeout=10)
        assert listed.status_code == 200 and len(listed.json()) == 21
        done = subprocess.run([PYKRONCTL, "delete", "before-00"], capture_output=True, text=True, timeout=60,
                              env=cluster.ctl_env())
        assert done.returncode == 4 and "disk full" in done.stderr, done.stderr
        assert cluster.ctl("s1", "raft")["disk"]["low"] is True
        assert cluster.ctl("s1", "executor")["disk"]["low"] is True  # the executor says so, and runs on:
        wait_until(lambda: any(x["status"] == "success" and x["scheduled_at"] > full_at
                               for x in cluster.client().executions("beat")), timeout=20, what="a run while full")

        ballast.unlink()
        wait_until(lambda: requests.post(f"{api}/v1/jobs", json=job("after"), timeout=10).status_code == 201,
                   timeout=20, what="writes taken again once space returned")
        names = sorted(j["name"] for j in requests.get(f"{api}/v1/jobs", timeout=10).json())
        assert names == sorted([f"before-{i:02d}" for i in range(20)] + ["after", "beat"])
        assert {s: cluster.service_pid("s1", s) for s in SERVICES} == pids  # nothing restarted
