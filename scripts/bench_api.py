"""`scripts/bench api`: POST /v1/jobs (10,000 creates) and GET /v1/jobs paged over them on one
node, beside a fixed-body Falcon app under the same gunicorn settings (the stack's ceiling here),
both measured by one load generator (processes × keep-alive connections) on this machine.
`--acl`: the same reads with the ACL on (a management token, and a token scoped to the first
100 jobs, whose lists are filtered), beside the ACL off, on the same machine in the same run."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_common import percentile  # noqa: E402
from scripts.cluster import Cluster, free_ports, http_ok, to_toml  # noqa: E402

PROCESSES, CONNECTIONS = 2, 8   # load: processes × keep-alive connections each
API = {"workers": 2, "threads": 8}  # node.toml's defaults, for the api and the baseline alike
FIXED = b'{"status": "ok"}'


def fixed_app():
    """The baseline: Falcon under the same gunicorn config, one route, a fixed body."""
    import falcon

    class Fixed:
        def on_get(self, req, resp):
            resp.content_type = falcon.MEDIA_JSON
            resp.data = FIXED

    app = falcon.App()
    app.add_route("/fixed", Fixed())
    return app


def _worker(job):
    """One load process: CONNECTIONS threads, each on its own keep-alive connection, sending
    each (method, path, body) item once, or cycling through them for `seconds`."""
    base, items, seconds = job
    parts = urlsplit(base)
    lock, latencies, failures = threading.Lock(), [], [0]
    stop = time.monotonic() + seconds if seconds else None
    queue, sent = list(items), [0]

    def next_item():
        with lock:
            if stop is not None:
                sent[0] += 1
                return items[sent[0] % len(items)] if time.monotonic() < stop else None
            return queue.pop() if queue else None

    def run():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        mine, bad = [], 0
        while (item := next_item()) is not None:
            method, path, body, *token = item
            started = time.perf_counter()
            headers = {"Content-Type": "application/json"} if body else {}
            if token:
                headers["X-Dkron-Token"] = token[0]
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 300
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                ok = False
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=run) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures[0]


def load(base, items, *, seconds=None):
    """Spread the items over the processes (each sent once), or cycle them for `seconds`."""
    shares = [items[i::PROCESSES] for i in range(PROCESSES)] if seconds is None else [items] * PROCESSES
    started = time.monotonic()
    with ProcessPoolExecutor(PROCESSES) as pool:
        results = list(pool.map(_worker, [(base, share, seconds) for share in shares]))
    elapsed = time.monotonic() - started
    latencies = [x for lat, _ in results for x in lat]
    return {"rps": len(latencies) / elapsed, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "ok": len(latencies), "errors": sum(e for _, e in results)}


def gets(*paths, token=None):
    return [("GET", p, None, *([token] if token else [])) for p in paths]


def baseline(seconds):
    """The fixed-body app under conf/gunicorn.conf.py with the api's worker settings."""
    run_dir = tempfile.mkdtemp(prefix="pk-bench-")
    port = free_ports(1)[0]
    conf = Path(run_dir) / "node.toml"
    conf.write_text(to_toml({"node": {"name": "baseline", "bind": "127.0.0.1", "run_dir": run_dir,
                                      "data_dir": run_dir}, "api": {"port": port, **API}, "log": {"level": "warning"}}))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                             "scripts.bench_api:fixed_app()"], cwd=ROOT, env={**os.environ, "PYKRON_CONF": str(conf)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"{base}/fixed"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the baseline app did not start")
            time.sleep(0.1)
        return load(base, gets("/fixed"), seconds=seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_api(jobs, seconds):
    rows = {}
    with Cluster(servers=1, conf={"api": API, "log": {"level": "warning"}}) as cluster:
        base = cluster.api()
        creates = [("POST", "/v1/jobs", json.dumps({"name": f"bench-{i:05d}", "schedule": "@manually",
                                                    "executor": "shell", "executor_config": {"command": "true"}}))
                   for i in range(jobs)]
        print(f"  creating {jobs} jobs over HTTP...", file=sys.stderr)
        rows["create"] = load(base, creates)
        pages = [f"/v1/jobs?_start={s}&_end={s + 100}" for s in range(0, jobs, 100)]
        print("  listing (linearizable reads)...", file=sys.stderr)
        rows["list"] = load(base, gets(*pages), seconds=seconds)
        print("  listing (?stale)...", file=sys.stderr)
        rows["stale"] = load(base, gets(*[p + "&stale" for p in pages]), seconds=seconds)
        rows["one"] = load(base, gets("/v1/jobs/bench-00042"), seconds=seconds)
    print("  baseline: fixed body...", file=sys.stderr)
    rows["fixed"] = baseline(seconds)
    print(f"\napi: one node on loopback, gunicorn gthread {API['workers']} workers x {API['threads']} threads; "
          f"load {PROCESSES} processes x {CONNECTIONS} keep-alive connections; {seconds}s per read load")
    print(f"{'':44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>7} {'errors':>6}")
    labels = {"create": f"POST /v1/jobs ({jobs} creates)", "list": f"GET /v1/jobs, {jobs} jobs, pages of 100",
              "stale": "  same with ?stale (local copy)", "one": "GET /v1/jobs/{name}",
              "fixed": "baseline: Falcon, fixed body (ceiling)"}
    for key, label in labels.items():
        r = rows[key]
        print(f"{label:44} {r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['ok']:>7} {r['errors']:>6}")


def bench_acl(jobs, seconds):
    """GET /v1/jobs (a page of 100, and the whole list) and one job, ACL off against ACL on with
    a management token and with a token that may read 100 of the jobs (bench-000*)."""
    rows = {}
    for secure in (False, True):
        with Cluster(servers=1, secure=secure, conf={"api": API, "log": {"level": "warning"}}) as cluster:
            base, mgmt = cluster.api(), cluster.management_token or None
            creates = [("POST", "/v1/jobs", json.dumps({"name": f"bench-{i:05d}", "schedule": "@manually",
                                                        "executor": "shell", "executor_config": {"command": "true"}}),
                        *([mgmt] if mgmt else [])) for i in range(jobs)]
            print(f"  creating {jobs} jobs (acl {'on' if secure else 'off'})...", file=sys.stderr)
            load(base, creates)
            callers = [("off", None)]
            if secure:
                client = cluster.client()
                client.policy_put("hundred", json.dumps({"path": {"/v1/jobs": {"capabilities": ["list"]},
                                                                  "/v1/jobs/bench-000*": {"capabilities": ["read"]}}}))
                callers = [("management", mgmt), ("scoped", client.token_create(policies=["hundred"])[1])]
            for who, token in callers:
                rows[(who, "page")] = load(base, gets("/v1/jobs?_start=0&_end=100", token=token), seconds=seconds)
                rows[(who, "all")] = load(base, gets("/v1/jobs", token=token), seconds=seconds)
                rows[(who, "one")] = load(base, gets("/v1/jobs/bench-00000", token=token), seconds=seconds)
    print(f"\napi with the ACL: one node, {jobs} jobs, gunicorn gthread {API['workers']} x {API['threads']}; "
          f"load {PROCESSES} x {CONNECTIONS}; {seconds}s per load; baseline: the ACL off")
    print(f"{'':52} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>7} {'errors':>6}")
    labels = {"page": "GET /v1/jobs?_start=0&_end=100", "all": f"GET /v1/jobs (all {jobs})", "one": "GET /v1/jobs/{name}"}
    for what, label in labels.items():
        for who in ("off", "management", "scoped"):
            r = rows[(who, what)]
            print(f"{label + ' [' + who + ']':52} {r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                  f"{r['ok']:>7} {r['errors']:>6}")
