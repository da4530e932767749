"""Storage that heals or says why, on 3 servers whose logs compact every 40 entries: a state.db
deleted is rebuilt from the snapshot and the log; a snapshot install killed -9 at each of its
steps (the test hook, once per step) restarts whole; a damaged page stops the raft service with
one line and no restart loop, and `pykron recover-replica` brings it back from its peers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import recovery
from services.raft.snapshots import CRASH_ENV, INSTALL_STEPS
from scripts.cluster import Cluster, wait_until

PYKRON = str(Path(sys.executable).parent / "pykron")


@pytest.fixture(scope="module")
def cluster():
    crash_everywhere = ",".join(f"install:{step}" for step in INSTALL_STEPS)
    with Cluster(servers=3, conf={"raft": {"snapshot_entries": 40}}, env={CRASH_ENV: crash_everywhere}) as c:
        yield c


def follower(cluster, other_than=()):
    leader = cluster.leader()
    return next(n for n in ("s1", "s2", "s3") if n != leader and n not in other_than)


def put_jobs(cluster, prefix, count):
    client = cluster.client(cluster.leader())
    for i in range(count):
        client.put_job({"name": f"{prefix}-{i:03d}", "schedule": "@manually", "executor": "shell",
                        "executor_config": {"command": "true"}})


def raft(cluster, name, verb):
    code, said = recovery.supervisorctl(cluster.nodes[name].conf, verb, "pykron:raft")
    return said


def same_jobs(cluster, name):
    """The server's own (stale) view of the jobs equals the leader's."""
    def names(n):
        try:
            return sorted(j["name"] for j in cluster.client(n).jobs(stale=True))
        except Exception:  # noqa: BLE001 -- a server still starting answers nothing yet
            return None
    mine = names(name)
    return mine is not None and mine == names(cluster.leader())


def data(cluster, name):
    return Path(cluster.nodes[name].conf.node.data_dir)


def test_a_deleted_state_db_is_rebuilt_from_the_snapshot_and_the_log(cluster):
    put_jobs(cluster, "before", 100)  # every server's log compacts: the entries before are gone
    name = follower(cluster)
    wait_until(lambda: same_jobs(cluster, name), timeout=60, what=f"{name} caught up")
    assert cluster.ctl(name, "raft")["snapshot"] > 0
    raft(cluster, name, "stop")
    for suffix in ("", "-wal", "-shm"):
        (data(cluster, name) / f"state.db{suffix}").unlink(missing_ok=True)
    raft(cluster, name, "start")
    wait_until(lambda: same_jobs(cluster, name), timeout=60, what=f"{name} rebuilt")
    assert "rebuilding state.db from the snapshot" in cluster.log(name, "raft")


def test_a_snapshot_install_killed_at_each_step_restarts_whole(cluster):
    name = follower(cluster)
    raft(cluster, name, "stop")
    put_jobs(cluster, "while-away", 100)  # the leader compacts past what the follower holds
    raft(cluster, name, "start")
    # Each start receives the snapshot again and is killed at the next step, once per step.
    wait_until(lambda: all((data(cluster, name) / f"crashed-at-{s}").exists() for s in INSTALL_STEPS),
               timeout=120, what=f"{name} killed at every step of an install")
    wait_until(lambda: same_jobs(cluster, name), timeout=90, what=f"{name} whole after the crashes")
    assert "damaged" not in cluster.log(name, "raft")


def test_a_damaged_page_stops_the_service_with_one_line_and_recover_replica_repairs_it(cluster):
    name = follower(cluster)
    raft(cluster, name, "stop")
    state = data(cluster, name) / "state.db"
    assert not Path(f"{state}-wal").exists() or Path(f"{state}-wal").stat().st_size == 0
    page = int.from_bytes(state.read_bytes()[16:18], "big") or 65536
    with open(state, "r+b") as fh:
        for number in (2, 3, 4):
            fh.seek(page * (number - 1))
            fh.write(os.urandom(page))
    raft(cluster, name, "start")
    wait_until(lambda: "EXITED" in raft(cluster, name, "status"), timeout=30, what="the raft service stopped for good")
    time.sleep(3)  # no restart loop: still stopped, one line
    assert "EXITED" in raft(cluster, name, "status")
    lines = [x for x in cluster.log(name, "raft").splitlines() if "damaged" in x]
    assert len(lines) == 1 and str(state) in lines[0] and "pykron recover-replica -c" in lines[0], lines
    assert "Traceback" not in cluster.log(name, "raft").split(lines[0])[-1]

    done = subprocess.run([PYKRON, "recover-replica", "-c", cluster.nodes[name].conf_path], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "set aside in" in done.stderr
    wait_until(lambda: same_jobs(cluster, name), timeout=90, what=f"{name} rebuilt from its peers")
    peers = {p["id"]: p["role"] for p in cluster.client(cluster.leader()).raft_peers()["peers"]}
    wait_until(lambda: {p["id"]: p["role"] for p in cluster.client(cluster.leader()).raft_peers()["peers"]}.get(name)
               == "voter", timeout=60, what=f"{name} a voter again (was {peers.get(name)})")


def test_replicas_compare_their_states_and_a_divergence_is_reported_loudly(cluster):
    """Every server hashes its state at each snapshot point and the hashes agree; a state.db
    changed behind Raft's back on one server is found different at the next point: logged on
    every server, counted, and shown by `pykronctl status`."""
    leader = cluster.leader()
    put_jobs(cluster, "checked", 45)
    def newest(name):
        checks = cluster.ctl(name, "raft").get("state_checks") or []
        return checks[0] if checks and len(checks[0]["reports"]) == 3 else None
    point = wait_until(lambda: newest(leader), timeout=60, what="three servers' hashes at a snapshot point")
    assert point["agree"], point

    odd = follower(cluster)
    raft(cluster, odd, "stop")
    import sqlite3
    db = sqlite3.connect(data(cluster, odd) / "state.db")
    db.execute("UPDATE jobrow SET body = json_set(body, '$.owner', 'mallory') WHERE name = 'checked-000'")
    db.commit()
    db.close()
    raft(cluster, odd, "start")
    put_jobs(cluster, "after-tamper", 45)
    wait_until(lambda: any(not c["agree"] for c in cluster.ctl(leader, "raft").get("state_checks", [])),
               timeout=60, what="the divergence found")
    for name in ("s1", "s2", "s3"):
        wait_until(lambda: "replica states differ at index=" in cluster.log(name, "raft"), timeout=30,
                   what=f"{name} logs the divergence")
    family = next(f for f in cluster.ctl(leader, "raft")["metrics"] if f["name"] == "pykron_raft_state_diverged_total")
    assert family["samples"] and family["samples"][0][1] >= 1, family  # counted
    done = subprocess.run([str(Path(sys.executable).parent / "pykronctl"), "status"], capture_output=True,
                          text=True, timeout=60, env=cluster.ctl_env(leader))
    assert "DIFFER at index" in done.stdout, done.stdout


def test_recover_replica_is_refused_when_the_cluster_would_lose_its_quorum(cluster):
    """Last here: one of the other two servers is down, so rebuilding this one would leave the
    three voters with one."""
    name = follower(cluster)
    down = follower(cluster, other_than=(name,))
    cluster.kill(down)
    try:
        wait_until(lambda: next(x["status"] for x in cluster.client(name).members() if x["name"] == down) != "alive",
                   timeout=60, what=f"{name} sees {down} gone")
        done = subprocess.run([PYKRON, "recover-replica", "-c", cluster.nodes[name].conf_path], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 4, done.stderr
        assert "no quorum" in done.stderr, done.stderr
        assert (data(cluster, name) / "raft-log.db").exists() and "RUNNING" in raft(cluster, name, "status")
    finally:
        cluster.restart(down)
