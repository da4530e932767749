"""`scripts/bench NAME`: speed and memory figures, each printed beside a baseline measured in
the same run on the same machine. Tests never assert on speed; these scripts are where speed
is measured.

  raft   3 servers on loopback, fsync on: commits/s and commit latency at 1, 16 and 128
         concurrent proposers, fsyncs per commit, leader changes, and failover time after
         kill -9 of the leader (to the next write through the client library, and to the next
         successful POST /v1/jobs through a surviving server's API); beside the same load with
         batching off (an fsync per entry).
         --secure: a secure cluster (CURVE, sealed gossip) beside the plain baseline
         ([wire] plain_tcp), 3 runs of each in turn, medians: the cost of CURVE.
  api    one node: POST /v1/jobs (10,000 creates) and GET /v1/jobs paged over them, req/s and
         p99; beside a fixed-body Falcon app under the same gunicorn settings (scripts/bench_api.py).
         --acl: the reads with the ACL on, by a management token and by a token scoped to 100
         of the jobs, beside the ACL off.
  hostile  3 secure servers: the leader's raft service under a flood of maximal frames from an
         accepted client key, its peak RSS beside idle, and an honest client's commits/s beside
         the same client without the flood (scripts/bench_hostile.py).
  restore  one node: Dkron's restore of N small jobs in Raft batches (job.put_batch) beside one
         job to an entry, through the client library, and the batched one over HTTP
         (scripts/bench_restore.py)."""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from docopt import docopt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import errors  # noqa: E402
from scripts.bench_common import percentile  # noqa: E402
from scripts.cluster import Cluster  # noqa: E402

USAGE = """Usage:
  bench raft [--seconds S] [--failovers N] [--secure]
  bench schedule [--quick] [--case C] [--config K] [--secure]
  bench api [--jobs N] [--seconds S] [--acl]
  bench hostile [--seconds S]
  bench restore [--jobs N]

Options:
  --seconds S     How long each load runs [default: 5].
  --failovers N   Leader kills to time [default: 10].
  --quick         Smaller and shorter (schedule: 2,000 jobs in case b).
  --case C        schedule: only case C (a, b or c).
  --config K      schedule: only configuration K (aps: APScheduler, 1n: one node, 3s2a: 3 servers and
                  2 agents); case c runs on 3s2a only.
  --jobs N        Jobs the api bench creates, then lists; restore: jobs per path [default: 10000].
  --acl           api: the reads with the ACL on (management and scoped tokens) beside it off.
  --secure        Secure (CURVE, sealed gossip) beside plain TCP, 3 runs each in turn, medians
                  (schedule: case a on 3 servers + 2 agents).
"""

PROPOSERS = (1, 16, 128)
UNBATCHED = {"raft": {"batching": False, "max_batch_entries": 1}}


def load(cluster, proposers, seconds):
    """proposers threads writing small jobs as fast as commits come back."""
    servers = sorted(cluster.nodes)
    leader = cluster.leader()
    before = cluster.ctl(leader, "raft")
    latencies, failures, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def propose(p):
        client = cluster.client(servers[p % len(servers)])
        i, mine = 0, []
        while time.monotonic() < stop:
            i += 1
            job = {"name": f"bench-{p}-{i}", "schedule": "@manually", "executor": "shell",
                   "executor_config": {"command": "true"}}
            start = time.perf_counter()
            try:
                client.put_job(job)
            except errors.Error:
                with lock:
                    failures[0] += 1
                continue
            mine.append(time.perf_counter() - start)
        client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=propose, args=(p,)) for p in range(proposers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    after = cluster.ctl(leader, "raft")
    commits = len(latencies)
    return {"commits_s": commits / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "fsyncs_per_commit": (after.get("fsyncs", 0) - before["fsyncs"]) / max(commits, 1),
            "leader_changes": after.get("term", before["term"]) - before["term"], "failed": failures[0]}


def failovers(cluster, count):
    """Seconds from kill -9 of the leader to the next write committed through a survivor."""
    times = []
    for i in range(count):
        leader = cluster.leader()
        survivor = next(n for n in sorted(cluster.nodes) if n != leader)
        client = cluster.client(survivor)
        client.timeout_ms = 250
        client.put_job({"name": "failover", "schedule": "@manually", "executor": "shell",
                        "executor_config": {"command": f"echo {i}"}})
        killed_at = time.monotonic()
        cluster.kill(leader)
        while True:
            try:
                client.put_job({"name": "failover", "schedule": "@manually", "executor": "shell",
                                "executor_config": {"command": f"echo {i}b"}})
                break
            except errors.Error:
                if time.monotonic() - killed_at > 30:
                    raise
        times.append(time.monotonic() - killed_at)
        client.close()
        cluster.restart(leader)
    return times


def api_failovers(cluster, count):
    """Seconds from kill -9 of the leader to the next successful POST /v1/jobs through a
    surviving server's API (an HTTP client's view: the request waits out the election), and
    how many requests were answered with an error on the way."""
    times, errors_seen = [], 0
    for i in range(count):
        leader = cluster.leader()
        survivor = next(n for n in sorted(cluster.nodes) if n != leader)
        post = lambda value: post_job(cluster.api(survivor), {  # noqa: E731
            "name": "failover-api", "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": f"echo {value}"}})
        if post(i) != 201:
            raise RuntimeError(f"POST /v1/jobs to {survivor} failed before the kill")
        killed_at = time.monotonic()
        cluster.kill(leader)
        while post(f"{i}b") != 201:
            errors_seen += 1
            if time.monotonic() - killed_at > 30:
                raise RuntimeError("no successful POST /v1/jobs within 30 s of the kill")
        times.append(time.monotonic() - killed_at)
        cluster.restart(leader)
    return times, errors_seen


def post_job(api, job):
    """POST /v1/jobs → its HTTP status (0: no answer within 30 s)."""
    req = urllib.request.Request(f"{api}/v1/jobs", data=json.dumps(job).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def bench_raft(seconds, kills):
    rows = {}
    for label, conf in (("batched", {}), ("unbatched", UNBATCHED)):
        with Cluster(servers=3, conf=conf) as cluster:
            for n in PROPOSERS:
                rows[(label, n)] = load(cluster, n, seconds)
                print(f"  {label:>9} {n:>3} proposers: {rows[(label, n)]['commits_s']:8.0f} commits/s", file=sys.stderr)
            if label == "batched":
                failover_times = failovers(cluster, kills)
                api_times, api_errors = api_failovers(cluster, kills)
    print(f"\nraft: 3 servers on loopback, fsync on, {seconds}s per load")
    print(f"{'proposers':>9} | {'commits/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'fsync/commit':>12} {'leader chg':>10} |"
          f" {'baseline commits/s':>18} {'p50 ms':>7} {'p99 ms':>7} {'fsync/commit':>12} | {'speedup':>7}")
    for n in PROPOSERS:
        b, u = rows[("batched", n)], rows[("unbatched", n)]
        print(f"{n:>9} | {b['commits_s']:>10.0f} {b['p50_ms']:>7.1f} {b['p99_ms']:>7.1f} {b['fsyncs_per_commit']:>12.2f}"
              f" {b['leader_changes']:>10} | {u['commits_s']:>18.0f} {u['p50_ms']:>7.1f} {u['p99_ms']:>7.1f}"
              f" {u['fsyncs_per_commit']:>12.2f} | {b['commits_s'] / max(u['commits_s'], 1e-9):>6.1f}x")
    print(f"failover (kill -9 of the leader → next committed write), {kills} runs: "
          f"median {statistics.median(failover_times):.2f}s, max {max(failover_times):.2f}s, "
          f"all {', '.join(f'{t:.2f}' for t in failover_times)}")
    print(f"failover through the API (kill -9 of the leader → next successful POST /v1/jobs to a survivor), "
          f"{kills} runs: median {statistics.median(api_times):.2f}s, max {max(api_times):.2f}s, "
          f"all {', '.join(f'{t:.2f}' for t in api_times)}; {api_errors} requests answered with an error")


def bench_raft_secure(seconds, rounds=3):
    """The cost of CURVE on Raft: secure and plain clusters in turn, each load's median."""
    rows = {}
    for i in range(rounds):
        for mode in ("secure", "plain"):
            with Cluster(servers=3, secure=mode == "secure", plain=mode == "plain") as cluster:
                for n in PROPOSERS:
                    row = load(cluster, n, seconds)
                    rows.setdefault((mode, n), []).append(row)
                    print(f"  round {i + 1} {mode:>6} {n:>3} proposers: {row['commits_s']:8.0f} commits/s", file=sys.stderr)
    print(f"\nraft, secure beside plain: 3 servers on loopback, {seconds}s per load, median of {rounds} runs each")
    print(f"{'proposers':>9} | {'secure commits/s':>16} {'p50 ms':>7} {'p99 ms':>7} | {'plain commits/s':>15} "
          f"{'p50 ms':>7} {'p99 ms':>7} | {'secure/plain':>12}")
    for n in PROPOSERS:
        s, p = ({k: statistics.median(r[k] for r in rows[(mode, n)]) for k in ("commits_s", "p50_ms", "p99_ms")}
                for mode in ("secure", "plain"))
        spread = [f"{r['commits_s']:.0f}" for r in rows[("secure", n)]], [f"{r['commits_s']:.0f}" for r in rows[("plain", n)]]
        print(f"{n:>9} | {s['commits_s']:>16.0f} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} | {p['commits_s']:>15.0f} "
              f"{p['p50_ms']:>7.1f} {p['p99_ms']:>7.1f} | {s['commits_s'] / max(p['commits_s'], 1e-9):>11.2f}x"
              f"   (runs: secure {'/'.join(spread[0])}, plain {'/'.join(spread[1])})")


def main(argv=None):
    args = docopt(USAGE, argv=argv)
    if args["raft"] and args["--secure"]:
        bench_raft_secure(int(args["--seconds"]))
    elif args["raft"]:
        bench_raft(int(args["--seconds"]), int(args["--failovers"]))
    if args["schedule"]:
        from scripts.bench_schedule import CASES, CONFIGS, bench_schedule
        if args["--case"] not in (None, *CASES) or args["--config"] not in (None, *CONFIGS):
            print(f"--case is one of {', '.join(CASES)}; --config one of {', '.join(CONFIGS)}", file=sys.stderr)
            return 2
        if args["--secure"]:
            from scripts.bench_schedule import bench_schedule_secure
            bench_schedule_secure(quick=args["--quick"])
        else:
            bench_schedule(quick=args["--quick"], case=args["--case"], config=args["--config"])
    if args["hostile"]:
        from scripts.bench_hostile import bench_hostile
        bench_hostile(int(args["--seconds"]) if args["--seconds"] != "5" else 30)
    if args["restore"]:
        from scripts.bench_restore import bench_restore
        bench_restore(int(args["--jobs"]))
    if args["api"]:
        from scripts.bench_api import bench_acl, bench_api
        (bench_acl if args["--acl"] else bench_api)(int(args["--jobs"]), int(args["--seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
