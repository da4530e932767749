"""Scheduling semantics on a real cluster of 3 servers and 2 agents: tags with counts, forbid
and replace, retries with backoff, chains, ephemeral jobs, runs lost with their node or their
executor (and a late result that replaces lost), and the per-node concurrency limit."""

import time

import pytest

from scripts.cluster import Cluster, wait_until

LEASE_MS = 3000
FINISHED = ("success", "failed", "lost", "killed", "interrupted", "skipped")


@pytest.fixture(scope="module")
def cluster(request):
    agents = {"pool": "batch"}
    with Cluster(servers=3, agents=2, conf={"dispatcher": {"lease_ms": LEASE_MS}, "executor": {"heartbeat_ms": 500}},
                 node_conf={"a1": {"node": {"tags": {**agents, "box": "one"}},
                                   "executor": {"max_concurrent_executions": 1, "queue_size": 1}},
                            "a2": {"node": {"tags": {**agents, "box": "two"}}}}) as c:
        yield c
        if request.session.testsfailed:
            c.print_logs(60)


def put(cluster, name, command, **fields):
    doc = {"name": name, "schedule": "@manually", "executor": "shell",
           "executor_config": {"command": command, "shell": "true"}, **fields}
    return cluster.client().put_job(doc)


def runs(cluster, name):
    return cluster.client().executions(name, limit=500)


def finished_runs(cluster, name, count):
    def enough():
        done = [x for x in runs(cluster, name) if x["status"] in FINISHED]
        return done if len(done) >= count else None
    return wait_until(enough, timeout=40, what=f"{count} finished runs of {name}")


def test_tags_with_counts_target_the_right_nodes(cluster):
    client = cluster.client()
    put(cluster, "one-of-pool", "true", tags={"pool": "batch:1"})
    put(cluster, "all-of-pool", "true", tags={"pool": "batch"})
    put(cluster, "two-servers", "true", tags={"server": "true:2"})
    for name in ("one-of-pool", "all-of-pool", "two-servers"):
        client.run(name)
    assert {x["node"] for x in finished_runs(cluster, "one-of-pool", 1)} <= {"a1", "a2"}
    assert len(finished_runs(cluster, "one-of-pool", 1)) == 1
    assert sorted(x["node"] for x in finished_runs(cluster, "all-of-pool", 2)) == ["a1", "a2"]
    servers = finished_runs(cluster, "two-servers", 2)
    assert len(servers) == 2 and {x["node"] for x in servers} <= {"s1", "s2", "s3"}


def test_forbid_never_overlaps_and_records_what_it_skipped(cluster):
    put(cluster, "slow-forbid", "sleep 2.5", schedule="@every 1s", concurrency="forbid", tags={"box": "two"})
    wait_until(lambda: len([x for x in runs(cluster, "slow-forbid") if x["status"] == "success"]) >= 2, timeout=30,
               what="two finished runs")
    put(cluster, "slow-forbid", "sleep 2.5", schedule="@every 1s", concurrency="forbid", tags={"box": "two"},
        disabled=True)
    done = wait_until(lambda: [x for x in runs(cluster, "slow-forbid")]
                      if not any(x["status"] in ("claimed", "running") for x in runs(cluster, "slow-forbid")) else None,
                      what="the last run to end")
    ran = sorted((x["started_at"], x["finished_at"]) for x in done if x["status"] == "success")
    for (_, end), (start, _) in zip(ran, ran[1:]):
        assert start >= end, f"runs overlap: {ran}"
    assert any(x["status"] == "skipped" and "forbid" in x["reason"] for x in done)


def test_replace_stops_the_running_one(cluster):
    put(cluster, "replaced", "sleep 30", concurrency="replace", tags={"box": "two"})
    client = cluster.client()
    client.run("replaced")
    wait_until(lambda: any(x["status"] == "running" for x in runs(cluster, "replaced")), what="the first run")
    client.run("replaced")
    first = wait_until(lambda: next((x for x in runs(cluster, "replaced") if x["status"] == "killed"), None),
                       what="the first run killed")
    assert "replace" in first["reason"]
    client.kill("replaced")


def test_retries_back_off_and_the_chain_runs_after_success(cluster, tmp_path):
    counter = tmp_path / "attempts"
    # Fails on the first two attempts, succeeds on the third.
    command = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; test $n -ge 2"
    put(cluster, "flaky", command, retries=3, retry_interval="1s", tags={"box": "two"})
    put(cluster, "after-flaky", "echo child", parent_job="flaky", tags={"box": "two"})
    cluster.client().run("flaky")
    attempts = sorted(finished_runs(cluster, "flaky", 3), key=lambda x: x["attempt"])
    assert [x["attempt"] for x in attempts] == [1, 2, 3]
    assert [x["success"] for x in attempts] == [False, False, True]
    assert len({x["group"] for x in attempts}) == 1
    gaps = [b["started_at"] - a["finished_at"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 1000 and gaps[1] >= 2000, gaps  # retry_interval, doubled
    child = finished_runs(cluster, "after-flaky", 1)[0]
    assert child["success"] and child["started_at"] >= attempts[-1]["finished_at"]
    assert cluster.client().job("flaky")["status"] == "success"


def test_an_ephemeral_job_vanishes_after_success(cluster):
    put(cluster, "once-only", "true", ephemeral=True, tags={"box": "two"})
    cluster.client().run("once-only")
    wait_until(lambda: "once-only" not in {j["name"] for j in cluster.client().jobs()}, timeout=20,
               what="the ephemeral job removed")


def test_a_run_whose_node_dies_ends_lost(cluster):
    put(cluster, "on-a1", "sleep 30", tags={"box": "one"})
    cluster.client().run("on-a1")
    wait_until(lambda: any(x["status"] == "running" for x in runs(cluster, "on-a1")), what="the run to start")
    cluster.kill("a1")
    try:
        lost = wait_until(lambda: next((x for x in runs(cluster, "on-a1") if x["status"] == "lost"), None),
                          timeout=LEASE_MS / 1000 + 15, what="the run recorded lost")
        assert "no heartbeat" in lost["reason"]
    finally:
        cluster.restart("a1")


def test_a_stopped_executor_loses_its_run_then_its_late_result_is_recorded(cluster):
    put(cluster, "late", "sleep 2; echo done", tags={"box": "two"})
    cluster.client().run("late")
    wait_until(lambda: any(x["status"] == "running" for x in runs(cluster, "late")), what="the run to start")
    cluster.pause("a2", "executor")
    try:
        wait_until(lambda: any(x["status"] == "lost" for x in runs(cluster, "late")),
                   timeout=LEASE_MS / 1000 + 15, what="the run recorded lost")
    finally:
        cluster.resume("a2", "executor")
    record = wait_until(lambda: next((x for x in runs(cluster, "late") if x["status"] == "success"), None),
                        timeout=20, what="the late result replacing lost")
    assert "marked lost" in record["reason"] and record["output"] == "done\n"


def test_max_concurrent_executions_holds_with_a_bounded_queue(cluster):
    put(cluster, "crowd", "sleep 1.5", tags={"box": "one"})
    client = cluster.client()
    for _ in range(3):
        client.run("crowd")
    done = finished_runs(cluster, "crowd", 3)
    ran = sorted((x["started_at"], x["finished_at"]) for x in done if x["status"] == "success")
    assert len(ran) == 2, done  # one running, one waiting, the third skipped
    assert ran[1][0] >= ran[0][1], f"ran at once beyond the limit: {ran}"
    skipped, = [x for x in done if x["status"] == "skipped"]
    assert "full" in skipped["reason"]
