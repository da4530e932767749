"""A service meeting a store written by a newer pykron stops at start with one line naming the
file and what to do (exit 65, no traceback) and leaves the file as it was; a node whose stores
are of the first, unversioned schema migrates them and carries on. Real processes."""

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scripts.cluster import ROOT, Cluster, to_toml, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "schema0"
EXIT_HALT = 65


def node_conf(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run = tempfile.mkdtemp(prefix="pk-", dir="/tmp")  # short: ipc paths are limited
    path = tmp_path / "node.toml"
    path.write_text(to_toml({"node": {"name": "s1", "data_dir": str(data), "run_dir": run},
                             "raft": {"peer_port": 1, "client_port": 2, "state_port": 3},
                             "executor": {"output_port": 4}}))
    return path, data, run


def start(service, conf):
    return subprocess.Popen([sys.executable, "-m", f"services.{service}", "-c", str(conf)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("service, name", [("raft", "state.db"), ("raft", "raft-log.db"), ("executor", "executor.db")])
def test_a_store_of_a_newer_schema_stops_its_service_with_one_line(tmp_path, service, name):
    conf, data, run = node_conf(tmp_path)
    try:
        shutil.copyfile(FIXTURES / name, data / name)
        db = sqlite3.connect(data / name)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
        before = (data / name).read_bytes()
        proc = start(service, conf)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == EXIT_HALT, out
        assert "Traceback" not in out
        lines = [x for x in out.splitlines() if "newer than this pykron" in x]
        assert len(lines) == 1 and str(data / name) in lines[0] and "schema version 99" in lines[0], out
        assert (data / name).read_bytes() == before
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_a_node_on_stores_of_the_first_schema_migrates_them_and_carries_on(tmp_path):
    data = tmp_path / "cluster" / "s1" / "data"
    data.mkdir(parents=True)
    for name in ("state.db", "raft-log.db", "executor.db"):
        shutil.copyfile(FIXTURES / name, data / name)
    with Cluster(servers=1, dir=tmp_path / "cluster") as cluster:
        client = cluster.client()
        assert sorted(j["name"] for j in client.jobs()) == ["child", "failing", "parent"]
        before = {x["id"] for x in client.executions("parent", limit=100)}
        assert len(before) > 5
        client.put_job({**client.job("parent"), "disabled": False})
        wait_until(lambda: any(x["id"] not in before and x["status"] == "success"
                               for x in client.executions("parent", limit=100)), what="a new run of parent")
        assert client.settings()["default_timezone"] == "UTC"
    for name in ("state.db", "raft-log.db", "executor.db"):
        db = sqlite3.connect(data / name)
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1, name
        db.close()
