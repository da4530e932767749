"""Linearizability of the job store under faults: five clients write and read jobs through
different servers of a real 3-server cluster while a nemesis kills (-9), pauses (SIGSTOP) and
partitions servers; the Wing & Gong checker (tests/linearizability.py) must find the history
linearizable, and must find it is not once a stale read is planted in it."""

import random
import threading
import time

from common import errors
from scripts.cluster import Cluster
from tests.linearizability import UNKNOWN, Op, check

KEYS = ("lin-a", "lin-b", "lin-c")
CLIENTS = 5
OPS_PER_CLIENT = 120   # 600 operations over 3 keys: 200 per key
NEMESIS_EVERY_S = 2.0


def job(key, value):
    return {"name": key, "schedule": "@manually", "executor": "shell", "executor_config": {"command": f"echo {value}"}}


def run_client(cluster, process, server, history, lock, stop):
    rng = random.Random(process)
    client = cluster.client(server)
    client.timeout_ms = 2000
    for i in range(OPS_PER_CLIENT):
        if stop.wait(rng.uniform(0.05, 0.25)):  # paced, so the run spans many faults
            return
        key = rng.choice(KEYS)
        start = time.monotonic()
        if rng.random() < 0.5:
            value = f"{process}-{i}"
            try:
                client.put_job(job(key, value))
                end = time.monotonic()
            except errors.BadRequest:
                continue  # refused before anything was proposed: it did not happen
            except errors.Error:
                end = UNKNOWN  # it may have been committed: it may take effect, or not
            op = Op(process, "write", key, value, start, end)
        else:
            try:
                found = client.job(key)["executor_config"]["command"].removeprefix("echo ")
            except errors.NotFound:
                found = None
            except errors.Error:
                continue  # a read that returned nothing constrains nothing
            op = Op(process, "read", key, found, start, time.monotonic())
        with lock:
            history.append(op)


def nemesis(cluster, stop, log):
    rng = random.Random(7)
    servers = sorted(cluster.nodes)
    while not stop.wait(NEMESIS_EVERY_S):
        fault = rng.choice(("kill", "pause", "partition"))
        victim = rng.choice(servers)
        log.append(f"{fault} {victim}")
        if fault == "kill":
            cluster.kill(victim)
            stop.wait(1.0)
            cluster.restart(victim)
        elif fault == "pause":
            cluster.pause(victim)
            stop.wait(1.5)
            cluster.resume(victim)
        else:
            cluster.partition([victim], [s for s in servers if s != victim])
            stop.wait(2.0)
            cluster.heal()


def test_job_store_is_linearizable_under_kills_pauses_and_partitions(partitions):
    with Cluster(servers=3) as cluster:
        history, lock, stop, faults = [], threading.Lock(), threading.Event(), []
        servers = sorted(cluster.nodes)
        workers = [threading.Thread(target=run_client, args=(cluster, p, servers[p % 3], history, lock, stop))
                   for p in range(CLIENTS)]
        chaos = threading.Thread(target=nemesis, args=(cluster, stop, faults))
        chaos.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        stop.set()
        chaos.join(timeout=60)
        cluster.heal()
    writes = [op for op in history if op.kind == "write"]
    reads = [op for op in history if op.kind == "read"]
    print(f"history: {len(writes)} writes ({sum(op.ret == UNKNOWN for op in writes)} of unknown outcome), "
          f"{len(reads)} reads; faults: {', '.join(faults)}")
    assert faults and len(reads) > 50 and len(writes) > 50
    assert check(history) == [], "the job store answered a history that no single order explains"

    # The checker can fail: a read, after everything, of a value overwritten by a later
    # acknowledged write is a stale read.
    last = max((op for op in writes if op.ret != UNKNOWN), key=lambda op: op.call)
    first = next(op for op in writes if op.key == last.key and op.ret != UNKNOWN and op.ret < last.call)
    end = max(op.ret for op in history if op.ret != UNKNOWN)
    planted = history + [Op(99, "read", last.key, first.value, end + 1, end + 2)]
    assert check(planted) == [last.key]
