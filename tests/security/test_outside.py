"""A secure cluster (3 servers and an agent: gossip sealed, every key accepted by the launcher)
against an attacker outside it: each probe is a process of its own (tests/security/probe.py),
with fresh keys or none, or an accepted agent's key where a server's is needed. Every probe is
refused or ignored, the replicated state is the same after as before, and nothing runs. Then
the bytes on the loopback interface, outside the API's port, while a job on the agent prints a
secret: the secret never crosses in the clear."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from common import keys
from scripts.cluster import Cluster, free_ports, wait_until

PROBE = [sys.executable, str(Path(__file__).resolve().parent / "probe.py")]
SECRET = "pykron-secret-7f3a9c"


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, agents=1, secure=True) as c:
        yield c


def probe(*args):
    done = subprocess.run([*PROBE, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def state(cluster):
    """What the probes must not change, read back through an accepted client."""
    client = cluster.client("s1")
    return {"jobs": sorted(j["name"] for j in client.jobs()),
            "peers": sorted((p["id"], p["role"]) for p in client.raft_peers()["peers"]),
            "keys": sorted((k["name"], k["key"], k["status"]) for k in client.keys_list()),
            "members": sorted((x["name"], x["status"]) for x in client.members()),
            "servers": client.node_info(refresh=True)["keys"], "settings": client.settings()}


def refused(outcome):
    return not outcome["answered"] or outcome.get("type") == "error"


def test_nothing_outside_the_cluster_can_command_it(cluster, tmp_path):
    marker = tmp_path / "ran"
    before = state(cluster)
    leader = cluster.leader()
    s1, agent_key = cluster.nodes["s1"], str(Path(cluster.nodes["a1"].conf.node.data_dir) / "keys" / keys.NODE_KEY)
    info = cluster.client("s1").node_info()
    addrs, lead = info["addrs"], cluster.nodes[leader]
    job = {"name": "owned", "schedule": "@every 1s", "executor": "shell",
           "executor_config": {"command": f"touch {marker}"}}
    attempts = [
        ("raft client", f"tcp://{s1.server}", s1.key, "job.put", {"job": job}),
        ("raft client", f"tcp://{s1.server}", s1.key, "raft.add_peer", {"name": "evil", "addrs": {"peer": "tcp://127.0.0.99:1"}}),
        ("raft client", f"tcp://{s1.server}", s1.key, "server.register",
         {"name": "s1", "addrs": {"raft": "tcp://127.0.0.99:1"}, "store": "x"}),
        ("raft peer", addrs["peer"], s1.key, "raft.append",
         {"prev_index": 0, "prev_term": 0, "entries": [[1, 1 << 40, "b64:" + base64.b64encode(b"x").decode()]],
          "commit": 0, "ctx": 0, "_sender": "s2"}),
        ("raft peer", addrs["peer"], s1.key, "raft.join", {"store": "x", "addrs": {"peer": "tcp://127.0.0.99:1"}}),
        ("gossip query", addrs["gossip"], s1.key, "keyring.list", {}),
        ("gossip query", addrs["gossip"], s1.key, "keyring.install",
         {"key": base64.b64encode(os.urandom(32)).decode()}),
        ("dispatcher", f"tcp://{lead.conf.node.advertise}:{lead.conf.dispatcher.result_port}",
         lead.key, "exec.result", {"execution": {"id": "x-1-s2", "job": "x", "node": "s2", "status": "success"}}),
    ]
    outcomes = []
    for port, endpoint, key, type_name, fields in attempts:
        for who in ("fresh", "none"):
            outcomes.append((port, type_name, who, probe("request", endpoint, key, who, type_name, json.dumps(fields))))
    # An accepted agent's key where a server's, or the execution's own node's, is needed.
    for port, endpoint, key, type_name, fields in attempts:
        if port in ("raft peer", "dispatcher"):
            outcomes.append((port, type_name, "agent", probe("request", endpoint, key, agent_key, type_name,
                                                             json.dumps(fields))))
    wrong = [(p, t, w, o) for p, t, w, o in outcomes if not refused(o)]
    assert not wrong, wrong
    agent_result = next(o for p, t, w, o in outcomes if w == "agent" and t == "exec.result")
    assert agent_result["code"] == "bad_request" and "not the node" in agent_result["message"]

    # A forged gossip member posing as a server, publishing runs from a PUB of its own.
    ports = dict(zip(("gossip", "run", "dispatcher", "state", "raft"), free_ports(5)))
    for target in ("s1", "a1"):
        conf = cluster.nodes[target].conf
        assert not probe("fake-server", f"{conf.node.advertise}:{conf.gossip.port}", "127.0.0.1",
                         json.dumps(ports), marker, 3)["marker"]

    # A page of another site posting to the API of a default node.
    api = cluster.api("s1")
    body = json.dumps(job)
    assert requests.post(f"{api}/v1/jobs", data=body, headers={"Content-Type": "text/plain"}, timeout=10).status_code == 415
    assert requests.post(f"{api}/v1/jobs", data=body, timeout=10,
                         headers={"Content-Type": "text/plain", "Origin": "https://evil.example"}).status_code in (403, 415)

    time.sleep(2)  # anything a probe got in would have run by now
    assert state(cluster) == before
    assert not marker.exists()
    refusals = sum(cluster.ctl(n, svc).get("keys_refused", 0) for n in ("s1", leader) for svc in ("raft", "gossip"))
    assert refusals > 0  # the gate saw the fresh keys, and turned them away at the handshake


def test_a_secret_never_crosses_the_loopback_in_the_clear(cluster):
    """Replication, run.start, output and the result of a job placed on the agent all cross TCP;
    only the API's HTTP port is left out (it is plain HTTP unless [api] certfile is set)."""
    if os.geteuid() != 0:
        pytest.fail("the captured-traffic test needs root for a raw AF_PACKET socket")
    api_ports = {node.conf.api.port for node in cluster.nodes.values()}
    capture = Capture(api_ports)
    capture.start()
    try:
        plain = _plain_echo(SECRET + "-control")  # proves the capture sees clear text when there is some
        client = cluster.client("s1")
        client.put_job({"name": "secretive", "schedule": "@manually", "executor": "shell", "tags": {"server": "false:1"},
                        "executor_config": {"command": f"echo {SECRET}; echo {SECRET} >&2"}})
        client.run("secretive")
        done = wait_until(lambda: [x for x in client.executions("secretive") if x["finished_at"]], timeout=30,
                          what="the secret job finished")
        assert done[0]["node"] == "a1" and SECRET in done[0]["output"], {k: done[0][k] for k in ("status", "reason", "exit_code", "output")}
        time.sleep(1)
    finally:
        capture.stop()
    assert plain in capture.clear_text(), "the capture saw no clear text at all: it does not work"
    flows = capture.flows()
    assert sum(len(b) for b in flows.values()) > 10_000, "too little traffic captured to say anything"
    leaks = [flow for flow, data in flows.items() if SECRET.encode() in data and SECRET.encode() + b"-control" not in data]
    assert not leaks, f"the secret crossed in the clear on {leaks}"


def _plain_echo(text):
    """Send text over a plain TCP connection on loopback: the capture must see it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    sender = socket.create_connection(server.getsockname(), timeout=5)
    peer, _ = server.accept()
    sender.sendall(text.encode())
    peer.recv(1024)
    for sock in (sender, peer, server):
        sock.close()
    return text.encode()


class Capture:
    """Every IPv4 TCP and UDP payload on the loopback interface, by flow, from a raw socket."""

    def __init__(self, skip_ports):
        self.skip = skip_ports
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.data, self.running = {}, True
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()

    def run(self):
        while self.running:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # loopback shows each packet twice: keep the incoming copy
            self.take(frame[14:])

    def take(self, ip):
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return
        header, proto = (ip[0] & 0x0F) * 4, ip[9]
        body = ip[header:]
        if proto == 6 and len(body) >= 20:
            sport, dport = struct.unpack("!HH", body[:4])
            payload = body[(body[12] >> 4) * 4:]
        elif proto == 17 and len(body) >= 8:
            sport, dport = struct.unpack("!HH", body[:4])
            payload = body[8:]
        else:
            return
        if sport in self.skip or dport in self.skip or not payload:
            return
        key = (socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport)
        self.data.setdefault(key, bytearray()).extend(payload)

    def flows(self):
        return {k: bytes(v) for k, v in self.data.items()}

    def clear_text(self):
        return b"".join(self.flows().values())
