"""`scripts/bench restore`: Dkron's restore of N small jobs on one node in Raft batches
(job.put_batch, protocol 4) beside one job to an entry (the path of a cluster with a server of
protocol 3, and of every restore before), through the client library in one run; and over HTTP."""

from __future__ import annotations

import json
import time

import requests

from scripts.cluster import Cluster


def docs(prefix, n):
    return [{"name": f"{prefix}-{i:06d}", "schedule": "@manually", "executor": "shell",
             "executor_config": {"command": "true"}} for i in range(n)]


def timed(cluster, fn):
    """(seconds, Raft entries applied) of fn()."""
    applied = cluster.ctl("s1", "raft")["applied"]
    started = time.monotonic()
    fn()
    return time.monotonic() - started, cluster.ctl("s1", "raft")["applied"] - applied


def bench_restore(n):
    with Cluster(servers=1) as cluster:
        client = cluster.client("s1")
        rows = []
        each = docs("each", n)
        rows.append(("one job to an entry (client)", *timed(cluster, lambda: client._put_each(
            [d["name"] for d in each], {d["name"]: d for d in each}))))
        batched = docs("batch", n)
        rows.append(("job.put_batch (client)", *timed(cluster, lambda: client.restore(batched))))
        over_http = docs("http", n)

        def post():
            resp = requests.post(f"{cluster.api()}/v1/restore", timeout=3600,
                                 files={"file": ("jobs.json", json.dumps(over_http).encode(), "application/json")})
            assert resp.status_code == 200 and all(r.startswith("success") for r in resp.json()), resp.text[:300]

        rows.append(("job.put_batch (POST /v1/restore)", *timed(cluster, post)))
        total = cluster.client("s1").job_page(0, 1)[1]
        assert total == 3 * n, f"{total} jobs stored, not {3 * n}"
    print(f"\nrestore of {n:,} small jobs, one node (fsync on), in one run")
    print(f"{'path':<34} | {'seconds':>8} {'jobs/s':>9} {'entries':>8}")
    for what, seconds, entries in rows:
        print(f"{what:<34} | {seconds:>8.1f} {n / seconds:>9.0f} {entries:>8}")
    print(f"batched (client) beside one job to an entry: {rows[0][1] / rows[1][1]:.1f}x faster")
