"""An attacker outside the cluster, as a process of its own: one attempt per run, its outcome
printed as one JSON line. Keys: "fresh" (a new CURVE keypair, never accepted), "none" (no CURVE
at all), or the path of a key file (an accepted agent's key, where a server's is needed).

    python tests/security/probe.py request ENDPOINT SERVER_KEY KEYS TYPE FIELDS_JSON
    python tests/security/probe.py fake-server GOSSIP_HOST:PORT BIND_HOST PORTS_JSON MARKER SECONDS
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from common import keys, messages as m, wire  # noqa: E402

TYPES = {cls.TYPE: cls for cls in wire.message_types().values()}


def dial(sock, endpoint, server_key, who):
    if who == "none":
        sock.connect(endpoint)
        return
    pair = keys.read_keypair(who) if who not in ("fresh",) else keys.Keypair(*zmq.curve_keypair())
    sock.curve_secretkey, sock.curve_publickey = pair.secret, pair.public
    sock.curve_serverkey = server_key.encode()
    sock.connect(endpoint)


def request(endpoint, server_key, who, type_name, fields):
    """Send one message; report whether anything answered, and what."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    dial(sock, endpoint, server_key, who)
    sender = fields.pop("_sender", "probe")
    msg = TYPES[type_name](**_bytes(fields))
    sock.send_multipart(wire.encode(msg, sender, term=1 << 40))
    if not sock.poll(3000):
        return {"answered": False}
    env = wire.decode(sock.recv_multipart())
    return {"answered": True, "type": env.type, "code": getattr(env.msg, "code", ""),
            "message": getattr(env.msg, "message", "")}


def _bytes(value):
    """JSON cannot carry bytes: a string "b64:..." stands for them."""
    if isinstance(value, str) and value.startswith("b64:"):
        return base64.b64decode(value[4:])
    if isinstance(value, list):
        return [_bytes(x) for x in value]
    if isinstance(value, dict):
        return {k: _bytes(v) for k, v in value.items()}
    return value


def fake_server(gossip, bind, ports, marker, seconds):
    """Announce a member "evil" with role server whose run PUB is ours (plaintext gossip, and
    sealed with a key of our own), and publish a run.start that would touch `marker`."""
    host, port = gossip.rsplit(":", 1)
    meta = {"role": "server", "ports": ports, "executors": ["shell"], "tags": {}, "version": "0.1.0",
            "key": keys.Keypair(*zmq.curve_keypair()).public.decode()}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://{bind}:{ports['run']}")
    job = {"name": "evil", "executor": "shell", "executor_config": {"command": f"touch {marker}"},
           "timeout": "", "processors": {}}
    execution = {"id": "evil-1-all", "job": "evil", "group": 1, "attempt": 1, "node": "", "scheduled_at": 0,
                 "status": "claimed"}
    deadline, inc = time.monotonic() + seconds, 1000
    while time.monotonic() < deadline:
        alive = m.GossipBroadcast(updates=[["a", "evil", inc, bind, ports["gossip"], meta]])
        udp.sendto(wire.encode_datagram(alive, "evil"), (host, int(port)))
        for node in ("a1", "s1", "s2", "s3"):
            run = m.RunStart(executions=[{**execution, "node": node, "id": f"evil-1-{node}"}], job=job)
            pub.send_multipart([wire.topic("node", node), *wire.encode(run, "evil")])
        pub.send_multipart([wire.topic("all"), *wire.encode(m.DispatcherHeartbeat(node="evil", term=1 << 40), "evil")])
        inc += 1
        time.sleep(0.2)
    return {"answered": False, "marker": os.path.exists(marker)}


def main(argv):
    if argv[0] == "request":
        endpoint, server_key, who, type_name, fields = argv[1:6]
        print(json.dumps(request(endpoint, server_key, who, type_name, json.loads(fields))))
    elif argv[0] == "fake-server":
        gossip, bind, ports, marker, seconds = argv[1:6]
        print(json.dumps(fake_server(gossip, bind, json.loads(ports), marker, float(seconds))))
    else:
        raise SystemExit(f"unknown probe {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
