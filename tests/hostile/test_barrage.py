"""Nothing a client sends stops the cluster: a secure cluster of real processes (3 servers and an
agent, a management token on the API) takes a barrage from the launcher's accepted client key:
the poison pills that crash-looped it before, every message type with hostile fields, garbage
frames and a frame of 4 MiB of empty arrays, to every TCP ROUTER of every server (raft client,
dispatcher results, gossip queries, executor output), then the API's hostile requests. After it:
no service restarted (each pid under each supervisord is the one before), every request with an
id got a clear answer (but the raft client port's 4 MiB frame, over what that port takes from
another host: its connection is cut before it is read, and it is answered nothing), the cluster still commits, and a job scheduled before still runs at each
tick. Seeded: PYKRON_HOSTILE_SEED=N repeats a run (the seed is printed on failure)."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
import zmq

from common import config, errors, launch
from scripts.cluster import Cluster, wait_until
from tests.hostile import barrage

TOKEN = "hostile-test-token"
SEED = int(os.environ.get("PYKRON_HOSTILE_SEED", "17"))
ROUTERS = ("raft", "dispatcher", "gossip", "executor")  # config.addrs keys of the TCP ROUTERs
HEARTBEAT = {"name": "heartbeat", "schedule": "@every 1s", "executor": "shell", "executor_config": {"command": "true"}}


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, agents=1, secure=True, conf={"security": {"token": TOKEN}}) as c:
        yield c


def pids(cluster):
    return {(name, service.name): cluster.service_pid(name, service.name)
            for name, node in cluster.nodes.items() for service in launch.SERVICES
            if node.role == "server" or not service.servers_only}


def poison(leader_term):
    """The reproduced crashes of issue 17 on the ZeroMQ faces, and their like: (type, body)."""
    ex = {"id": "heartbeat-1-a1", "job": "heartbeat", "group": barrage.UINT64_MAX, "attempt": 1, "node": "a1",
          "status": "success", "success": True, "output": ""}
    return [
        ("job.list", {"offset": 1 << 63, "limit": 10}),
        ("job.list", {"offset": barrage.INT64_MAX, "limit": barrage.INT64_MAX}),
        ("exec.list", {"job": "heartbeat", "limit": barrage.UINT64_MAX}),
        ("tick.skip", {"job": "heartbeat", "ticks": [1 << 63], "reason": "x"}),
        ("run.skip", {"job": "heartbeat", "ticks": [barrage.INT64_MAX], "reason": "x"}),
        ("run.claim", {"job": "heartbeat", "scheduled_at": 1, "group": barrage.INT64_MAX, "term": leader_term,
                       "executions": [{"id": ["x"], "job": "heartbeat", "group": barrage.INT64_MAX}]}),
        ("run.record", {"acks": [{"job": "heartbeat", "id": ["x"], "started_at": 1}],
                        "finishes": [dict(ex, group=barrage.INT64_MAX, output=barrage.nested(28))]}),
        ("run.record", {"acks": [], "finishes": [dict(ex, group=barrage.INT64_MAX, scheduled_at=barrage.INT64_MAX,
                                                      finished_at=barrage.INT64_MAX, started_at=-barrage.INT64_MAX)]}),
        ("exec.result", {"execution": ex}),
        ("job.put", {"job": {**HEARTBEAT, "name": "bad", "timeout": "9" * 400 + "h"}}),
        ("job.put", {"job": {**HEARTBEAT, "name": "bad", "timezone": "x" * 5000}}),
        ("job.put", {"job": {**HEARTBEAT, "name": "bad", "schedule": "@every 99999999999999999999h"}}),
        ("job.put", {"job": {**HEARTBEAT, "name": "bad", "starts_at": "9999-12-31T23:59:59-14:00"}}),
        ("job.put", {"job": {**HEARTBEAT, "name": "bad", "metadata": {"k": "x" * 400_000}}}),
        ("job.put", {"job": barrage.nested(990)}),
        ("settings.put", {"key": "default_timezone", "value": "Nope/X"}),
        ("settings.put", {"key": "default_timezone", "value": "x" * 5000}),
        ("output.get", {"id": "x" * 100_000, "offset": barrage.INT64_MAX}),
    ]


@pytest.mark.timeout(400)
def test_a_barrage_stops_nothing(cluster):
    client = cluster.client("s1")
    client.put_job(HEARTBEAT)
    wait_until(lambda: len(client.executions("heartbeat")) >= 2, timeout=30, what="the heartbeat job running")
    before = pids(cluster)
    leader = cluster.leader()
    term = cluster.ctl(leader, "raft")["term"]
    rng = barrage.seeded(SEED)
    ctx = zmq.Context()
    senders, unanswered, unclear, cut = [], [], [], []
    try:
        for name, node in cluster.nodes.items():
            if node.role != "server":
                continue
            addrs = config.addrs(node.conf)
            for role in ROUTERS:
                sender = barrage.Sender(cluster, name, addrs[role], ctx)
                senders.append((name, role, sender))
                for type_name, body in poison(term):
                    sender.send(barrage.frame(type_name, body, rng.randbytes(16)), f"poison {type_name}")
                for type_name in sorted(barrage.types()):
                    for _ in range(3):
                        sender.send(barrage.frame(type_name, barrage.mutated(type_name, rng), rng.randbytes(16)),
                                    f"mutated {type_name}")
                for _ in range(30):
                    sender.send(barrage.random_frames(rng), "garbage")
                if role == "raft":
                    # From another host the raft client port takes frames of a job's size (or a
                    # batch's); ZeroMQ cuts the connection of a larger one before decrypting it,
                    # answered nothing. A frame under that cut is refused by its type, answered.
                    sender.send([barrage.header("job.list", rng.randbytes(16)), barrage.empty_arrays(1 << 20)],
                                "1 MiB of empty arrays")
                    cut_id = rng.randbytes(16)
                    sender.sock.send_multipart([barrage.header("job.list", cut_id), barrage.empty_arrays(4 << 20)])
                    cut.append((name, sender, cut_id))
                else:
                    sender.send([barrage.header("job.list", rng.randbytes(16)), barrage.empty_arrays(4 << 20)],
                                "4 MiB of empty arrays")
        barrage.collect([sender for _, _, sender in senders], timeout_s=90, quiet_s=20)
        for name, role, sender in senders:
            replies = sender.replies
            for msg_id, what in sender.sent.items():
                env = replies.get(msg_id)
                if env is None:
                    unanswered.append((name, role, what))
                elif env.type == "error" and (env.msg.code not in errors.CODES or not env.msg.message):
                    unclear.append((name, role, what, env.msg.code, env.msg.message))
    finally:
        for _, _, sender in senders:
            sender.close()
        ctx.term()
    api_answers = api_barrage(cluster)

    failures = {"unanswered": unanswered[:20], "unclear": unclear[:20],
                "answered past the transport's cut": [name for name, sender, msg_id in cut if msg_id in sender.replies],
                "api": [a for a in api_answers if not a[1]],
                "restarted": {k: (v, now) for k, v in before.items() if (now := safe_pid(cluster, *k)) != v}}
    assert not any(failures.values()), f"seed {SEED} (PYKRON_HOSTILE_SEED={SEED} to repeat): {failures}"

    # The cluster still commits, and the job scheduled before runs at each tick.
    client.put_job({**HEARTBEAT, "name": "after", "schedule": "@manually"})
    assert client.job("after")["name"] == "after"
    since = int(time.time() * 1000)
    wait_until(lambda: len(ticks_since(client, since)) >= 6, timeout=30, what="six more heartbeat ticks")
    ticks = sorted(ticks_since(client, since))
    assert all(b - a == 1000 for a, b in zip(ticks, ticks[1:])), f"seed {SEED}: ticks missed {ticks}"
    assert pids(cluster) == before, f"seed {SEED}: a service restarted"


def safe_pid(cluster, name, service):
    try:
        return cluster.service_pid(name, service)
    except Exception as exc:  # a service that does not answer has as good as restarted
        return repr(exc)


def ticks_since(client, since):
    return {x["scheduled_at"] for x in client.executions("heartbeat", limit=100)
            if x["scheduled_at"] and x["scheduled_at"] >= since and x["status"] == "success"}


def api_barrage(cluster):
    """(what, answered clearly): each hostile HTTP request gets a 4xx with an error, never a 5xx
    or a dropped connection; and the listing still answers after all of them."""
    api, auth = cluster.api("s1"), {"X-Dkron-Token": TOKEN}
    job = dict(HEARTBEAT, name="bad")
    bodies = [
        {**job, "timeout": "9" * 400 + "h"}, {**job, "timezone": "x" * 5000}, {**job, "timezone": "Nope/X"},
        {**job, "schedule": "@every 99999999999999999999h"}, {**job, "starts_at": "9999-12-31T23:59:59-14:00"},
        {**job, "retries": barrage.INT64_MAX}, {**job, "metadata": {"k": "x" * 300_000}},
        {**job, "executor_config": {"command": "true", "timeout": "1e999h"}}, {**job, "name": "a" * 5000},
    ]
    answers = []

    def check(what, resp, ok=(400, 404, 413, 415)):
        clear = resp.status_code in ok and (resp.status_code < 300 or bool(resp.text.strip()))
        answers.append((what, clear, resp.status_code, resp.text[:200]))

    for body in bodies:
        check(f"POST job {json.dumps(body)[:80]}", requests.post(f"{api}/v1/jobs", json=body, headers=auth, timeout=30))
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"name": ' * 40 + b"1" + b"}" * 40, b'{"retries": 1' + b"0" * 30 + b"}"):
        check(f"POST raw {raw[:30]!r}", requests.post(f"{api}/v1/jobs", data=raw, timeout=30,
                                                      headers={**auth, "Content-Type": "application/json"}))
    for query in ("_start=9223372036854775808&_end=9223372036854775809", "_start=0&_end=" + "9" * 400,
                  "_start=-1&_end=5"):
        check(f"GET jobs?{query[:40]}", requests.get(f"{api}/v1/jobs?{query}", headers=auth, timeout=30))
    for value in ("Nope/X", "x" * 5000):
        check(f"PUT default_timezone {value[:20]}", requests.put(f"{api}/v1/settings", json={"default_timezone": value},
                                                                 headers=auth, timeout=30))
    check("GET jobs", requests.get(f"{api}/v1/jobs", headers=auth, timeout=30), ok=(200,))
    check("GET executions", requests.get(f"{api}/v1/jobs/heartbeat/executions?_start=0&_end=" + "9" * 30,
                                         headers=auth, timeout=30), ok=(200, 400))  # Dkron lists them whole
    return answers


@pytest.mark.timeout(120)
def test_a_key_that_floods_is_cut_off_for_a_while_and_the_others_are_served(cluster):
    """Frames each refused by its type (1 MiB job.list bodies, under the transport's cut) from one
    key over four connections: past 16 MiB of refusals in all, the key is refused for 5 s, at the
    handshake and per message, and each of its connections shut down; a client of another key
    commits meanwhile; then the key is served again."""
    leader = cluster.leader()
    node = cluster.nodes[leader]
    cut_before = cluster.ctl(leader, "raft")["floods_cut"]
    ctx = zmq.Context()
    flooders = [barrage.Sender(cluster, leader, config.addrs(node.conf)["raft"], ctx) for _ in range(4)]
    rng = barrage.seeded(SEED)
    try:
        arrays, live = barrage.empty_arrays(1 << 20), list(flooders)
        for i in range(160):
            if not live:
                break
            flooder = live[i % len(live)]
            msg_id = rng.randbytes(16)
            try:  # once cut off, and refused at the handshake, its socket has no peer to send to
                flooder.sock.send_multipart([barrage.header("job.list", msg_id), arrays], zmq.NOBLOCK)
            except zmq.Again:
                live.remove(flooder)
                continue
            flooder.sent[msg_id] = f"flood {i}"
            barrage.collect([flooder], timeout_s=1, quiet_s=1)
        answered = sum(1 for f in flooders for msg_id in f.sent if msg_id in f.replies)
        # 16 MiB for the key in all: a budget per connection would have answered some 64.
        assert 0 < answered < 32, f"{answered} refused frames answered: the key was not cut off as one"
        assert not live, "a connection of the flooding key was left open"
        assert cluster.ctl(leader, "raft")["floods_cut"] == cut_before + 1
        # Another key (the management token's) is served while the flooder's is kept out.
        client = cluster.client(leader)
        client.put_job({**HEARTBEAT, "name": "during-flood", "schedule": "@manually"})
        # The flooder's key again, each try on a new connection (ZeroMQ does not dial again after
        # a refused handshake): refused until its time is out, then served.
        tries, served = 0, False
        deadline = time.monotonic() + 30
        while not served and time.monotonic() < deadline:
            tries += 1
            probe = barrage.Sender(cluster, leader, config.addrs(node.conf)["raft"], ctx)
            try:
                msg_id = rng.randbytes(16)
                try:
                    probe.sock.send_multipart(barrage.frame("settings.get", {}, msg_id), zmq.NOBLOCK)
                    probe.sent[msg_id] = "probe"
                except zmq.Again:  # not connected: the handshake is refused
                    time.sleep(1)
                    continue
                barrage.collect([probe], timeout_s=1, quiet_s=1)
                served = msg_id in probe.replies
            finally:
                probe.close()
        assert served, "the flooder's key was never served again"
        assert tries > 1, "the flooder's key was served again at once"
    finally:
        for flooder in flooders:
            flooder.close()
        ctx.term()
