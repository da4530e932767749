"""Backups on one node: `pykronctl snapshot save` writes a consistent copy of the state (0600,
with its header) after every acknowledged write, `snapshot inspect` counts what it holds without
showing a secret, a damaged file is refused, and the leader's scheduled backups keep the newest
backup_keep."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common import backup
from scripts.cluster import Cluster, wait_until

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")
SECRET = "hunter2-backups"


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=1, conf={"raft": {"backup_interval_ms": 1000, "backup_keep": 2}}) as c:
        client = c.client()
        for i in range(50):
            client.put_job({"name": f"job-{i:02d}", "schedule": "@manually", "executor": "shell",
                            "executor_config": {"command": "true"}})
        client.put_job({"name": "with-secret", "schedule": "@manually", "executor": "http",
                        "executor_config": {"url": "http://127.0.0.1:9/", "method": "GET", "password": SECRET}})
        client.run("job-00")
        wait_until(lambda: any(x["finished_at"] for x in client.executions("job-00")), what="a run recorded")
        yield c


def ctl(cluster, *args, code=0):
    done = subprocess.run([PYKRONCTL, *args], capture_output=True, text=True, timeout=60, env=cluster.ctl_env())
    assert done.returncode == code, done.stderr
    return done


def test_save_then_inspect(cluster, tmp_path):
    path = tmp_path / "state.snap"
    said = ctl(cluster, "snapshot", "save", str(path)).stderr
    assert "saved the state at index" in said
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, _ = backup.read_header(path)
    assert header["index"] > 51 and header["schema"] >= 1 and len(header["cluster"]) == 15
    doc = json.loads(ctl(cluster, "snapshot", "inspect", str(path), "--json").stdout)
    assert doc["counts"]["jobs"] == 51 and doc["counts"]["executions"] >= 1
    assert doc["index"] == header["index"] and doc["checksum"] == header["checksum"]
    table = ctl(cluster, "snapshot", "inspect", str(path)).stdout
    assert SECRET not in table and SECRET not in json.dumps(doc)


def test_a_damaged_snapshot_file_is_refused(cluster, tmp_path):
    path = tmp_path / "state.snap"
    ctl(cluster, "snapshot", "save", str(path))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "does not match the header's checksum" in ctl(cluster, "snapshot", "inspect", str(path), code=2).stderr
    (tmp_path / "other").write_text("{}")
    assert "not a pykron snapshot" in ctl(cluster, "snapshot", "inspect", str(tmp_path / "other"), code=2).stderr


def test_the_leader_writes_scheduled_backups_and_keeps_the_newest(cluster):
    folder = Path(cluster.nodes["s1"].conf.node.data_dir) / "backups"
    files = lambda: sorted(folder.glob("pykron-*.snap"))  # noqa: E731
    wait_until(lambda: len(files()) == 2, timeout=20, what="two scheduled backups")
    first = files()[0]
    wait_until(lambda: first not in files(), timeout=20, what="the oldest removed past backup_keep")
    assert len(files()) <= 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files())
    assert backup.inspect(files()[-1])["counts"]["jobs"] == 51
    assert not [p for p in os.listdir(folder) if p.startswith(".save-")]  # no copy left behind
