"""Raft with five servers (real processes): two may fail and the cluster still commits; with
three gone it stops taking writes, and it recovers every acknowledged write when they return."""

import pytest

from common import errors
from scripts.cluster import Cluster


def job(name):
    return {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}


def test_five_servers_tolerate_two_failures_and_stall_safely_at_three():
    with Cluster(servers=5) as cluster:
        leader = cluster.leader()
        down = [n for n in sorted(cluster.nodes) if n != leader][:2]
        for name in down:
            cluster.kill(name)
        up = [n for n in sorted(cluster.nodes) if n not in down]
        cluster.client(up[0]).put_job(job("two-down"))
        third = next(n for n in up if n != cluster.leader())
        cluster.kill(third)
        survivor = next(n for n in up if n != third)
        stalled = cluster.client(survivor)
        stalled.timeout_ms = 1500
        with pytest.raises(errors.Error):
            stalled.put_job(job("three-down"))  # no majority: refused or unanswered, never acknowledged
        for name in down + [third]:
            cluster.restart(name)
        for name in cluster.nodes:
            names = {j["name"] for j in cluster.client(name).jobs()}
            assert "two-down" in names, name
