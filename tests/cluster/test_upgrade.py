"""A rolling upgrade on real processes: 3 servers and an agent at this release's protocol
(wire.PROTOCOL) run 20 jobs `@every 1s` while each server in turn is restarted speaking the next
([wire] protocol_next), the leader last after `pykronctl raft transfer-leader`. On the way, the
next protocol's command is refused while any server speaks only this one and accepted once all
speak the next, members show each node's protocol, and a message of an unknown version is
refused and counted. Every tick of the window runs exactly once."""

import subprocess
import sys
import time
import urllib.request
import json
from pathlib import Path

import pytest
import zmq

from common import errors, messages as m, wire
from scripts.cluster import Cluster, wait_until
from ticks import put_tick_jobs, stop_and_settle, tick_problems

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")
NEXT = {"wire": {"protocol_next": True}}
P, NEXT_P = wire.PROTOCOL, wire.NEXT_PROTOCOL
JOBS = 20


def refused_note(client):
    with pytest.raises(errors.Unavailable) as err:
        client.put_note("too early")
    assert "cluster not yet upgraded" in str(err.value)
    return str(err.value)


def protocols(cluster, via):
    return {x["name"]: x["protocol"] for x in cluster.client(via).members()}


def send_raw(cluster, name, version):
    """A request whose header claims `version`, on a DEALER of our own: → the decoded reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        cluster.dial(sock, name, f"tcp://{cluster.nodes[name].server}")
        sock.send_multipart([wire.pack([version, "settings.get", "probe", b"p" * 16, b"", 0]), wire.pack({})])
        assert sock.poll(5000), "no reply to a message of an unknown version"
        return wire.decode(sock.recv_multipart())
    finally:
        sock.close()


def test_rolling_upgrade_to_the_next_protocol_keeps_every_tick_exactly_once():
    with Cluster(servers=3, agents=1) as cluster:
        client = cluster.client("s1")
        created = put_tick_jobs(client, JOBS)

        # A message of a protocol no node speaks: refused with the request's id, and counted.
        dropped = cluster.ctl("s1", "raft")["dropped"].get("version", 0)
        reply = send_raw(cluster, "s1", 99)
        assert reply.msg_id and isinstance(reply.msg, m.Error) and reply.msg.code == "unavailable"
        assert reply.re == b"p" * 16 and "protocol 99" in reply.msg.message
        assert cluster.ctl("s1", "raft")["dropped"]["version"] == dropped + 1

        leader = cluster.leader()
        order = [n for n in ("s1", "s2", "s3") if n != leader] + [leader]
        first, second = order[0], order[1]
        cluster.restart(first, conf=NEXT)
        # Two servers at this release's protocol, one at the next: the upgraded one refuses by the
        # gate, an old one by the wire.
        assert f"needs protocol {NEXT_P} on every server" in refused_note(cluster.client(first))
        assert f"note.put of protocol {NEXT_P}" in refused_note(cluster.client(second))
        wait_until(lambda: protocols(cluster, second)[first] == [1, NEXT_P], what=f"{first} announcing the next protocol")
        assert protocols(cluster, first) == {first: [1, NEXT_P], second: [1, P], leader: [1, P], "a1": [1, P]}
        with urllib.request.urlopen(f"{cluster.api(second)}/v1/members", timeout=10) as resp:
            shown = {x["Name"]: (x["ProtocolMin"], x["ProtocolMax"], x["ProtocolCur"]) for x in json.load(resp)}
        assert shown[first] == (1, NEXT_P, NEXT_P) and shown[second] == (1, P, P)
        peers = subprocess.run([PYKRONCTL, "--server", cluster.nodes[first].server, "members"],
                               capture_output=True, text=True, timeout=30, env=cluster.ctl_env(first))
        assert peers.returncode == 0 and any(first in line and f"1..{NEXT_P}" in line for line in peers.stdout.splitlines())

        cluster.restart(second, conf=NEXT)
        refused_note(cluster.client(second))  # the leader still speaks this release's protocol
        moved = subprocess.run([PYKRONCTL, "--server", cluster.nodes[leader].server, "raft", "transfer-leader"],
                               capture_output=True, text=True, timeout=30, env=cluster.ctl_env(leader))
        assert moved.returncode == 0, moved.stderr
        wait_until(lambda: cluster.leader(timeout=5) != leader, timeout=15, what="leadership moved")
        cluster.restart(leader, conf=NEXT)

        # Every server at the next, once each has registered it: the command goes through, everywhere.
        wait_until(lambda: cluster.client(first).put_note("upgraded"), timeout=30, what="note.put accepted")
        for name in order:
            wait_until(lambda: cluster.client(name).settings(stale=True).get("note") == "upgraded",
                       what=f"the note applied on {name}")
        time.sleep(6)  # ticks after the last restart, too
        window_end = int(time.time() * 1000) - 5000
        runs = stop_and_settle(client, created)
    problems, counts = tick_problems(created, runs, window_end)
    print(f"upgrade order {order}; ticks expected {counts['expected']}, ran {counts['ran']}")
    assert counts["expected"] > JOBS * 10 and not problems, "\n".join(problems)
