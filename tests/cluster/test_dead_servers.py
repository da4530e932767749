"""Dead servers leave by themselves (Nomad's cleanup_dead_servers), on 3 servers whose timeout is
a few seconds: one killed for longer is removed from the voters, and joins again when it comes
back; with two of three killed, nothing is removed (the survivor alone is no quorum)."""

from __future__ import annotations

import time

import pytest

from scripts.cluster import Cluster, wait_until

TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, conf={"raft": {"dead_server_timeout_ms": TIMEOUT_MS}}) as c:
        yield c


def voters(cluster, name):
    return cluster.ctl(name, "raft").get("voters")


def test_a_server_dead_for_longer_than_the_timeout_is_removed_and_joins_again(cluster):
    leader = cluster.leader()
    dead = next(n for n in ("s1", "s2", "s3") if n != leader)
    cluster.kill(dead)
    killed_at = time.monotonic()
    wait_until(lambda: voters(cluster, leader) == sorted({"s1", "s2", "s3"} - {dead}), timeout=60,
               what=f"{dead} removed from the voters")
    assert time.monotonic() - killed_at >= TIMEOUT_MS / 1000  # not before the timeout
    assert f"server {dead} has been failed for" in cluster.log(leader, "raft")
    client = cluster.client(leader)
    client.put_job({"name": "after-removal", "schedule": "@manually", "executor": "shell",
                    "executor_config": {"command": "true"}})  # two voters of two: the cluster commits
    cluster.restart(dead)
    wait_until(lambda: voters(cluster, cluster.leader()) == ["s1", "s2", "s3"], timeout=90,
               what=f"{dead} a voter again")


def test_with_two_of_three_dead_nothing_is_removed(cluster):
    leader = cluster.leader()
    survivor = next(n for n in ("s1", "s2", "s3") if n != leader)
    dead = [n for n in ("s1", "s2", "s3") if n != survivor]
    for name in dead:
        cluster.kill(name)
    time.sleep(TIMEOUT_MS / 1000 + 12)  # failure detection, then the timeout, with room
    assert voters(cluster, survivor) == ["s1", "s2", "s3"]
    for name in dead:
        cluster.restart(name)
    wait_until(lambda: cluster.leader(timeout=60), timeout=90, what="a leader once they are back")
