"""A cluster of hosts: each node in a network namespace of its own with its own address on a
bridge (not loopback), started by `pykron node` from the README's example configuration of a
server or an agent (conf/examples/), bound to that address, secure (CURVE, sealed gossip, ACL). A job targeted by tags runs on the right
hosts; an agent whose link is taken down is marked failed and its running execution lost; with
its link back it rejoins, and its late result is recorded."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from scripts import netns
from scripts.cluster import Cluster, example_conf, wait_until

LEASE_MS = 3000


@pytest.fixture(scope="module")
def cluster():
    if netns.capable():
        pytest.fail(f"the hosts test needs {netns.capable()} (scripts/test installs iproute2)")
    with Cluster(servers=3, agents=2, secure=True, hosts=True,
                 conf={"dispatcher": {"lease_ms": LEASE_MS}, "executor": {"heartbeat_ms": 500}},
                 node_conf={"a1": {"node": {"tags": {"zone": "east"}}},
                            "a2": {"node": {"tags": {"zone": "west"}}}}) as c:
        yield c


# What differs per host, filled in by the launcher; every other key is the example's own.
PER_HOST = {("node", "name"), ("node", "bind"), ("node", "data_dir"), ("node", "run_dir"), ("node", "tags"),
            ("raft", "servers"), ("gossip", "retry_join"), ("security", "gossip_key"), ("executor", "run_as")}


def test_every_node_runs_the_example_of_its_role_with_only_its_host_filled_in(cluster):
    for node in cluster.nodes.values():
        example = example_conf(node.role)
        ran = tomllib.loads(Path(node.conf_path).read_text())
        kept = {(section, key): value for section, keys in example.items() for key, value in keys.items()
                if (section, key) not in PER_HOST}
        assert kept and all(ran[section][key] == value for (section, key), value in kept.items())
        assert {(s, k) for s, keys in example.items() for k in keys} <= {(s, k) for s, keys in ran.items() for k in keys}
        assert ran["node"]["role"] == node.role and ran["gossip"]["retry_join"] and "join" not in ran["gossip"]


def put(cluster, name, command, tags):
    cluster.client().put_job({"name": name, "schedule": "@manually", "executor": "shell",
                              "executor_config": {"command": command, "shell": "true"}, "tags": tags})


def runs(cluster, name):
    return cluster.client().executions(name)


def test_every_node_is_a_host_of_its_own(cluster):
    addresses = {name: node.conf.node.bind for name, node in cluster.nodes.items()}
    assert len(set(addresses.values())) == 5 and not any(a.startswith("127.") for a in addresses.values())
    members = {x["name"]: x["addr"] for x in cluster.client().members()}
    assert members == addresses


def test_a_job_targeted_by_tags_runs_on_the_right_hosts(cluster):
    put(cluster, "east-only", "hostname -I", {"zone": "east:1"})
    client = cluster.client()
    for _ in range(3):
        client.run("east-only")
    done = wait_until(lambda: [x for x in runs(cluster, "east-only") if x["finished_at"]] if len(
        [x for x in runs(cluster, "east-only") if x["finished_at"]]) >= 3 else None, timeout=30, what="three runs")
    assert {x["node"] for x in done} == {"a1"}
    assert all(x["status"] == "success" and cluster.nodes["a1"].conf.node.bind in x["output"] for x in done)


def test_an_agent_cut_off_is_failed_and_its_run_lost_then_it_rejoins_and_its_late_result_counts(cluster):
    put(cluster, "west-long", "sleep 8; echo done", {"zone": "west:1"})
    cluster.client().run("west-long")
    wait_until(lambda: any(x["status"] == "running" for x in runs(cluster, "west-long")), what="the run started")

    cluster.cut("a2")
    try:
        wait_until(lambda: next(x["status"] for x in cluster.client().members() if x["name"] == "a2") == "failed",
                   timeout=60, what="a2 marked failed")
        wait_until(lambda: any(x["status"] == "lost" for x in runs(cluster, "west-long")),
                   timeout=LEASE_MS / 1000 + 20, what="its run recorded lost")
    finally:
        cluster.reconnect("a2")
    wait_until(lambda: next(x["status"] for x in cluster.client().members() if x["name"] == "a2") == "alive",
               timeout=60, what="a2 alive again")
    record = wait_until(lambda: next((x for x in runs(cluster, "west-long") if x["status"] == "success"), None),
                        timeout=60, what="the late result recorded")
    assert "marked lost" in record["reason"] and record["output"] == "done\n"
