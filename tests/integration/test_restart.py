"""Durability of one node: after kill -9 of every process of the node (supervisord included)
and a restart, jobs and executions are all still there and the schedule carries on."""

import os

from scripts.cluster import Cluster, pid_alive


def test_jobs_and_executions_survive_kill_9_of_the_whole_node(eventually):
    with Cluster(servers=1) as cluster:
        client = cluster.client()
        client.put_job({"name": "beat", "schedule": "@every 1s", "executor": "shell",
                        "executor_config": {"command": "echo beat"}})
        def three_successes():
            done = [x for x in client.executions("beat") if x["status"] == "success"]
            return done if len(done) >= 3 else None

        before = eventually(three_successes, what="three successful runs")
        killed = cluster.kill("s1")
        assert len(killed) >= 7  # supervisord, five services, gunicorn master and worker
        eventually(lambda: not any(pid_alive(p) for p in killed), timeout=10, what="every process gone")

        cluster.restart("s1")
        client = cluster.client()
        assert client.job("beat")["executor_config"] == {"command": "echo beat"}
        after = {x["id"]: x for x in client.executions("beat")}
        for execution in before:
            assert after[execution["id"]]["status"] == "success"
            assert after[execution["id"]]["output"] == "beat\n"
        newest = max(x["scheduled_at"] for x in before)
        eventually(lambda: any(x["scheduled_at"] > newest and x["status"] == "success"
                               for x in client.executions("beat")), what="a run after the restart")
        assert os.path.exists(os.path.join(cluster.nodes["s1"].conf.node.data_dir, "state.db"))
