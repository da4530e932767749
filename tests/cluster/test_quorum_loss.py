"""Recovery after quorum loss, on 3 servers: two killed -9 (one with its data deleted, one with
its data kept aside), `pykron recover` on the survivor, whose node was stopped: it leads alone
with every job and claimed tick; the old server returning with its old data is refused; wiped,
the two join again as new servers; and no tick of the jobs ran twice."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.cluster import Cluster, wait_until

PYKRON = str(Path(sys.executable).parent / "pykron")


def test_a_survivor_recovers_the_cluster_and_a_returning_old_server_is_refused(tmp_path):
    with Cluster(servers=3, node_conf={"s1": {"node": {"tags": {"box": "one"}}}}) as cluster:
        client = cluster.client("s1")
        for i in range(3):
            client.put_job({"name": f"tick-{i}", "schedule": "@every 1s", "executor": "shell",
                            "executor_config": {"command": "true"}, "tags": {"box": "one:1"},
                            "misfire_policy": "run_all", "catchup_window": "30s", "history_limit": 500})
        for i in range(20):
            client.put_job({"name": f"plain-{i:02d}", "schedule": "@manually", "executor": "shell",
                            "executor_config": {"command": "true"}})
        wait_until(lambda: all(len(client.executions(f"tick-{i}")) >= 3 for i in range(3)), timeout=30,
                   what="ticks running")
        jobs_before = sorted(j["name"] for j in client.jobs())

        for name in ("s2", "s3"):
            cluster.kill(name)
        old_s3 = tmp_path / "old-s3"
        shutil.copytree(cluster.nodes["s3"].conf.node.data_dir, old_s3)
        shutil.rmtree(cluster.nodes["s2"].conf.node.data_dir)
        cluster.kill("s1")  # the survivor's node stopped for the recovery
        s1 = cluster.nodes["s1"]
        peer = f"s1@{s1.conf.node.bind}:{s1.conf.raft.peer_port}"
        done = subprocess.run([PYKRON, "recover", "-c", s1.conf_path, "--peers", peer], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "new configuration at index" in done.stdout and "retired s2" in done.stdout, done.stdout

        cluster.start(s1)
        cluster.wait_ready(s1)
        wait_until(lambda: cluster.ctl("s1", "raft").get("role") == "leader", timeout=30, what="s1 leading alone")
        client = cluster.client("s1")
        assert sorted(j["name"] for j in client.jobs()) == jobs_before

        shutil.rmtree(cluster.nodes["s3"].conf.node.data_dir)
        shutil.copytree(old_s3, cluster.nodes["s3"].conf.node.data_dir)
        cluster.start(cluster.nodes["s3"])  # the old s3, with its old data
        wait_until(lambda: "refusing server s3" in cluster.log("s1", "raft"), timeout=60, what="old s3 refused")
        time.sleep(3)
        assert cluster.ctl("s1", "raft")["voters"] == ["s1"] and not cluster.ctl("s1", "raft")["learners"]
        cluster.kill("s3")

        shutil.rmtree(cluster.nodes["s3"].conf.node.data_dir)
        for name in ("s2", "s3"):  # wiped: new servers
            cluster.start(cluster.nodes[name])
        wait_until(lambda: cluster.ctl("s1", "raft").get("voters") == ["s1", "s2", "s3"], timeout=90,
                   what="the two new servers voters")
        time.sleep(2)
        for i in range(3):
            runs = cluster.client("s1").executions(f"tick-{i}", limit=500)
            twice = [t for t, n in collections.Counter(x["scheduled_at"] for x in runs).items() if n > 1]
            assert not twice, (f"tick-{i}", twice)
            assert any(x["scheduled_at"] > 0 and x["status"] == "success" for x in runs)
