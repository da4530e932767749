"""Raft on a real 3-server cluster (every service a real process under supervisord): kill -9
of the leader, a paused leader, a minority partition, acknowledged writes through kills of a
minority and of the whole cluster, a wiped server that comes back through a snapshot, and a
server that leaves through gossip, removed from the configuration and added again when it returns."""

import shutil

import requests

import pytest

from common import errors
from scripts.cluster import Cluster, wait_until

SNAPSHOT_ENTRIES = 40  # small, so the wiped server must be sent a snapshot


def job(name):
    return {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, conf={"raft": {"snapshot_entries": SNAPSHOT_ENTRIES}}) as c:
        yield c


def others(cluster, name):
    return [n for n in cluster.nodes if n != name]


def names_on(cluster, server, stale=False):
    return {j["name"] for j in cluster.client(server).jobs(stale=stale)}


def converged(cluster, servers):
    applied = {cluster.ctl(n, "raft").get("applied") for n in servers}
    return len(applied) == 1 and None not in applied


def test_kill_9_of_the_leader_elects_a_new_one_that_serves_writes(cluster):
    old = cluster.leader()
    cluster.client(old).put_job(job("before-kill"))
    cluster.kill(old)
    new = cluster.leader()
    assert new != old
    survivor = others(cluster, old)[0]
    cluster.client(survivor).put_job(job("after-kill"))
    assert {"before-kill", "after-kill"} <= names_on(cluster, survivor)
    cluster.restart(old)
    wait_until(lambda: {"before-kill", "after-kill"} <= names_on(cluster, old, stale=True),
               what="the restarted server catching up")


def test_a_paused_leader_is_deposed_and_steps_down_when_resumed(cluster):
    old = cluster.leader()
    old_term = cluster.ctl(old, "raft")["term"]
    cluster.pause(old)
    try:
        new = wait_until(lambda: next((n for n in others(cluster, old)
                                       if cluster.ctl(n, "raft", 300).get("role") == "leader"), None),
                         what="a new leader while the old one is stopped")
        cluster.client(new).put_job(job("while-paused"))
    finally:
        cluster.resume(old)
    wait_until(lambda: cluster.ctl(old, "raft").get("role") == "follower", what="the old leader stepping down")
    status = cluster.ctl(old, "raft")
    assert status["term"] > old_term and status["leader"] == new
    wait_until(lambda: "while-paused" in names_on(cluster, old, stale=True), what="the old leader catching up")
    wait_until(lambda: converged(cluster, cluster.nodes), what="every server applying the same index")


def test_a_minority_cannot_commit_and_the_majority_keeps_serving(cluster, partitions):
    leader = cluster.leader()
    majority = others(cluster, leader)
    cluster.partition([leader], majority)
    try:
        # CheckQuorum: cut off from a majority, the old leader steps down by itself.
        wait_until(lambda: cluster.ctl(leader, "raft").get("role") != "leader", what="the isolated leader stepping down")
        with pytest.raises(errors.Error):
            cluster.client(leader).put_job(job("in-the-minority"))
        new = wait_until(lambda: next((n for n in majority if cluster.ctl(n, "raft", 300).get("role") == "leader"), None),
                         what="a leader in the majority")
        cluster.client(new).put_job(job("in-the-majority"))
        assert "in-the-majority" in names_on(cluster, majority[0]) | names_on(cluster, majority[1])
    finally:
        cluster.heal()
    wait_until(lambda: "in-the-majority" in names_on(cluster, leader, stale=True), what="the healed server catching up")
    assert all("in-the-minority" not in names_on(cluster, n, stale=True) for n in cluster.nodes)


def test_acknowledged_writes_survive_kill_9_of_a_minority_and_of_the_whole_cluster(cluster):
    acked = []
    victim = others(cluster, cluster.leader())[0]
    for i in range(30):
        if i == 10:
            cluster.kill(victim)
        name = f"acked-{i}"
        cluster.client(others(cluster, victim)[0]).put_job(job(name))
        acked.append(name)
    cluster.restart(victim)
    for name in cluster.nodes:
        cluster.kill(name)
    for name in cluster.nodes:
        cluster.start(cluster.nodes[name])
    for name in cluster.nodes:
        cluster.wait_ready(cluster.nodes[name])
    cluster.leader()
    for name in cluster.nodes:
        assert set(acked) <= names_on(cluster, name), name


def test_a_wiped_server_rejoins_through_a_snapshot(cluster):
    client = cluster.client(cluster.leader())
    for i in range(SNAPSHOT_ENTRIES + 10):
        client.put_job(job(f"bulk-{i}"))
    leader = cluster.leader()
    wait_until(lambda: cluster.ctl(leader, "raft")["snapshot"] > 0, what="a snapshot on the leader")
    victim = others(cluster, leader)[0]
    cluster.kill(victim)
    shutil.rmtree(cluster.nodes[victim].conf.node.data_dir)
    cluster.start(cluster.nodes[victim])
    cluster.wait_ready(cluster.nodes[victim])
    def back():
        voters, status = cluster.ctl(cluster.leader(), "raft")["voters"], cluster.ctl(victim, "raft")
        print(f"voters={voters} victim snapshot={status.get('snapshot')} commit={status.get('commit')}")
        return victim in voters and status["snapshot"] > 0

    wait_until(back, timeout=30, what="the wiped server back as a voter, from a snapshot")
    assert "installing snapshot" in cluster.log(victim, "raft")
    wait_until(lambda: {f"bulk-{i}" for i in range(SNAPSHOT_ENTRIES + 10)} <= names_on(cluster, victim, stale=True),
               what="every job on the wiped server")


def test_a_leader_that_leaves_hands_over_is_removed_and_is_added_again_when_it_returns(cluster):
    left = cluster.leader()
    requests.post(f"{cluster.api(left)}/v1/leave", timeout=5).raise_for_status()
    rest = others(cluster, left)

    def removed():
        leader = cluster.leader()
        status = cluster.ctl(leader, "raft")
        print(f"leader={leader} voters={status.get('voters')} learners={status.get('learners')}")
        return leader != left and left not in status["voters"] + status.get("learners", [])

    wait_until(removed, timeout=30, what=f"{left} out of the configuration under a new leader")
    cluster.client(rest[0]).put_job(job("after-leave"))
    assert "after-leave" in names_on(cluster, rest[1])

    cluster.restart(left)  # back with its data: it does not knock, gossip shows it alive
    wait_until(lambda: left in cluster.ctl(cluster.leader(), "raft")["voters"], timeout=30,
               what=f"{left} a voter again")
    wait_until(lambda: "after-leave" in names_on(cluster, left, stale=True), what="the returned server caught up")
