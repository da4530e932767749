"""Keys as an operator meets them, on a secure cluster of one server and one agent whose key
the launcher leaves pending: the agent runs nothing until `pykronctl keys accept`; a rejected
key is cut off within a second, connections already open included; a node whose secret key
others may read does not start; a malformed gossip meta is counted and changes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from common import keys, messages as m, wire
from scripts.cluster import Cluster, wait_until

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")
ON_THE_AGENT = {"schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"},
                "tags": {"server": "false:1"}}


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=1, agents=1, secure=True, accept_agents=False) as c:
        yield c


def pykronctl(cluster, *args):
    done = subprocess.run([PYKRONCTL, *args], capture_output=True, text=True, timeout=60, env=cluster.ctl_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_on_agent(client, name):
    client.put_job({**ON_THE_AGENT, "name": name})
    client.run(name)
    return wait_until(lambda: next((x for x in client.executions(name) if x["finished_at"]), None), timeout=30,
                      what=f"{name} finished")


def test_an_agent_runs_nothing_until_its_key_is_accepted(cluster):
    client = cluster.client()
    pending = {k["name"]: k["status"] for k in client.keys_list()}
    assert pending["a1"] == "pending" and pending["s1"] == "accepted"
    assert "pending" in pykronctl(cluster, "keys", "list")
    assert cluster.ctl("a1", "executor").get("dispatcher") == ""  # its key is refused: it hears no dispatcher
    refused = run_on_agent(client, "before-accept")
    assert refused["status"] == "failed" and "did not acknowledge" in refused["reason"]
    pykronctl(cluster, "keys", "accept", "a1")
    pykronctl(cluster, "keys", "accept", "a1")  # asked again (a retry whose first reply was lost): the same answer
    wait_until(lambda: cluster.ctl("a1", "executor").get("dispatcher") == "s1", what="a1 following s1 once accepted")
    assert run_on_agent(client, "after-accept")["status"] == "success"


def test_a_rejected_key_is_cut_off_within_a_second_even_on_open_connections(cluster):
    """A client key accepted, two connections opened with it and used; rejected: within a
    second, neither answers any more."""
    client, probe = cluster.client(), keys.Keypair(*zmq.curve_keypair())
    client.key_accept("probe", probe.public.decode(), "client")
    s1 = cluster.nodes["s1"]
    endpoints = {"raft": f"tcp://{s1.server}",
                 "dispatcher": f"tcp://{s1.conf.node.advertise}:{s1.conf.dispatcher.result_port}"}

    def dealer(role):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = probe.secret, probe.public, s1.key.encode()
        sock.connect(endpoints[role])
        return sock

    def answered(sock, role):
        msg = m.SettingsGet(stale=True) if role == "raft" else m.BusyList()
        try:  # a connection refused at its handshake has no pipe: a blocking send would wait for ever
            sock.send_multipart(wire.encode(msg, "probe"), flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        # Any answer counts (with the ACL on, a key without a token's rights is answered forbidden):
        # what is cut off gets none.
        return bool(sock.poll(2000)) and wire.decode(sock.recv_multipart()).type in ("ok", "error")

    def answered_fresh(role):
        sock = dealer(role)
        try:
            return answered(sock, role)
        finally:
            sock.close(0)

    # each gate reloads its book on its own time: a connection tried before would be refused
    wait_until(lambda: all(answered_fresh(r) for r in endpoints), what="the probe key let in")
    socks = {role: dealer(role) for role in endpoints}
    try:
        wait_until(lambda: all(answered(s, r) for r, s in socks.items()), what="both connections open and used")
        client.key_reject("probe")
        time.sleep(1)
        assert not any(answered(s, r) for r, s in socks.items())
        assert client.key_reject("probe")["status"] == "rejected"  # asked again: answered as the first time
    finally:
        for sock in socks.values():
            sock.close(0)


def test_a_node_whose_secret_key_others_may_read_does_not_start(cluster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    keys.node_keypair(str(data))
    os.chmod(data / "keys" / keys.NODE_KEY, 0o644)
    conf = tmp_path / "node.toml"
    conf.write_text(f'[node]\nname = "leaky"\ndata_dir = "{data}"\nrun_dir = "{tmp_path}/run"\n'
                    f'[raft]\npeer_port = 1\nclient_port = 2\nstate_port = 3\n')
    done = subprocess.run([sys.executable, "-m", "services.raft", "-c", str(conf)], capture_output=True, text=True,
                          timeout=30, cwd=str(Path(__file__).resolve().parent.parent.parent))
    assert done.returncode == 65 and "Traceback" not in done.stderr
    assert "others may read the key file" in done.stderr and "chmod 600" in done.stderr


def test_a_malformed_gossip_meta_is_counted_and_changes_nothing(cluster):
    """Sealed with the cluster's own key (an insider's mistake, not an outsider), a member whose
    meta lacks the ports every service reads: refused, counted, and no service falls over."""
    from services.gossip.keyring import Keyring, decode_key
    conf = cluster.nodes["s1"].conf
    before = cluster.ctl("s1", "gossip")["dropped"].get("field", 0)
    ring = Keyring([decode_key(cluster.gossip_key)])
    alive = m.GossipBroadcast(updates=[["a", "broken", 1, "127.0.0.99", 1, {"role": "server", "ports": {"raft": 1},
                                                                             "executors": [], "tags": {}, "version": "x"}]])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(3):
        udp.sendto(ring.seal(wire.encode_datagram(alive, f"x{i}", msg_id=os.urandom(16))),
                   (conf.node.advertise, conf.gossip.port))
    wait_until(lambda: cluster.ctl("s1", "gossip")["dropped"].get("field", 0) >= before + 3, what="the meta refused")
    assert "broken" not in {x["name"] for x in cluster.client().members()}
    for service in ("gossip", "raft", "dispatcher", "executor"):
        assert cluster.ctl("s1", service)["ready"], service
