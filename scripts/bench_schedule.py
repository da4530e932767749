"""`scripts/bench schedule`: how late runs start. On one node and on 3 servers with 2 agents:
(a) 1,000 jobs `@every 10s`, (b) 10,000 jobs once a minute with their seconds spread over the
minute, (c) a rising load until runs fall behind. Lateness is the executor's start minus the
scheduled time, the fork's own cost apart (a run claimed ahead is forked before its time and
started by releasing its held child: "forked ahead" counts those); beside it, APScheduler 3
firing the same schedules in one process (thread pool, misfire_grace_time=None,
coalesce=False) as the baseline. `--case a --config 3s2a` runs one case on one configuration
alone, so that one figure can be measured again and again."""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path

from common import errors
from scripts.bench_common import percentile, service_memory
from scripts.cluster import Cluster

JOB = {"schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}, "history_limit": 1000}
RISING = (25, 50, 100, 200, 300, 400)  # runs per second asked of the cluster in case (c)
# The configurations a case runs on: name → (label, servers, agents); servers 0 is APScheduler.
CONFIGS = {"aps": ("apscheduler", 0, 0), "1n": ("1 node", 1, 0), "3s2a": ("3 servers + 2 agents", 3, 2)}
CASES = ("a", "b", "c")


def every_10s(count):
    return [{"name": f"every10-{i:04d}", "schedule": "@every 10s"} for i in range(count)]


def each_minute(count):
    return [{"name": f"minute-{i:05d}", "schedule": f"{i * 60 // count} * * * * *"} for i in range(count)]


# -- pykron -----------------------------------------------------------------------------------


def run_pykron(cluster, jobs, seconds):
    """Create the jobs, let them run `seconds`, then read every execution from the leader's state."""
    client = cluster.client()
    threads, chunk = [], (len(jobs) + 7) // 8
    for part in range(8):
        def create(batch=jobs[part * chunk:(part + 1) * chunk]):
            own = cluster.client()
            for job in batch:
                own.put_job({**JOB, **job})
        threads.append(threading.Thread(target=create))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = int(time.time() * 1000)
    first = raft_index(cluster)
    time.sleep(seconds)
    entries = raft_index(cluster) - first  # Raft entries the window's runs cost (claims, records)
    for job in jobs:  # stop firing; what was scheduled finishes
        client.put_job({**JOB, **job, "disabled": True})
    time.sleep(3)
    # Only ticks inside the window: runs keep coming while the jobs are being disabled, and
    # counting those over `seconds` overstated runs/s (lateness was unaffected).
    return executions(cluster, started, started + seconds * 1000), started, entries


def raft_index(cluster):
    """The leader's commit index: how many entries the log holds so far."""
    return cluster.ctl(cluster.leader(), "raft").get("commit", 0)


def executions(cluster, since, until=float("inf")):
    leader = cluster.leader()
    path = Path(cluster.nodes[leader].conf.node.data_dir) / "state.db"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = [json.loads(b) for (b,) in db.execute("SELECT body FROM executionrow")]
    db.close()
    return [r for r in rows if r["scheduled_at"] and since <= r["scheduled_at"] < until and r["status"] != "skipped"]


def summarize(runs, seconds):
    late = [r["started_at"] - r["scheduled_at"] for r in runs if r.get("started_at")]
    spawn = [r.get("spawn_ms", 0) for r in runs if r.get("started_at")]
    return {"runs": len(late), "runs_s": len(late) / seconds, "p50": percentile(late, 0.5), "p99": percentile(late, 0.99),
            "max": max(late, default=0), "spawn_p50": percentile(spawn, 0.5), "spawn_p99": percentile(spawn, 0.99),
            "failed": sum(r["status"] not in ("success",) for r in runs),
            "ahead": sum(bool(r.get("forked_ahead")) for r in runs if r.get("started_at"))}


# -- APScheduler, the baseline ------------------------------------------------------------------


def run_apscheduler(jobs, seconds):
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    lateness, spawn, lock = [], [], threading.Lock()

    def run(anchor, period_ms):
        started = time.time() * 1000
        tick = anchor + (started - anchor) // period_ms * period_ms
        subprocess.run(["true"])  # the same work: fork a process
        with lock:
            lateness.append(started - tick)
            spawn.append(time.time() * 1000 - started)

    sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(50)},
                                job_defaults={"misfire_grace_time": None, "coalesce": False})
    anchor = (int(time.time()) + 2) * 1000
    for job in jobs:
        if job["schedule"].startswith("@every"):
            sched.add_job(run, IntervalTrigger(seconds=10, start_date=_dt(anchor - 10_000)), args=(anchor, 10_000))
        else:
            second = int(job["schedule"].split()[0])
            sched.add_job(run, CronTrigger(second=second), args=(anchor - anchor % 60_000 + second * 1000, 60_000))
    sched.start()
    time.sleep(seconds)
    sched.shutdown(wait=True)
    late = [x for x in lateness if x >= 0]
    return {"runs": len(late), "runs_s": len(late) / seconds, "p50": percentile(late, 0.5), "p99": percentile(late, 0.99),
            "max": max(late, default=0), "spawn_p50": percentile(spawn, 0.5), "spawn_p99": percentile(spawn, 0.99),
            "failed": 0, "ahead": 0}


def _dt(ms):
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# -- the cases ----------------------------------------------------------------------------------


def rising(cluster, seconds):
    """@every 1s jobs added in steps; the highest rate whose backlog does not grow."""
    rows, client, made = [], cluster.client(), 0
    client.timeout_ms = 15_000  # an overloaded cluster answers writes late; late is still an answer
    for rate in RISING:
        try:
            for i in range(made, rate):
                client.put_job({**JOB, "name": f"rise-{i:04d}", "schedule": "@every 1s"})
        except errors.Error as err:
            print(f"    rising {rate}/s: could not add jobs ({err}); stopping the climb", flush=True)
            break
        made = rate
        since = int(time.time() * 1000) + 1000
        time.sleep(seconds)
        runs = [r for r in executions(cluster, since) if r["job"].startswith("rise-")
                and r["scheduled_at"] <= since + (seconds - 2) * 1000]
        stats = summarize(runs, seconds - 2)
        stats["asked"] = rate
        stats["behind"] = sum(1 for r in runs if r["status"] in ("claimed",))
        rows.append(stats)
        print(f"    rising {rate}/s: {stats['runs_s']:.0f} runs/s, p99 {stats['p99']:.0f} ms, "
              f"not started {stats['behind']}", flush=True)
        if stats["p99"] > 5000:
            break
    return rows


def bench_schedule(quick=False, case=None, config=None):
    """Every case on every configuration, or only `case` (a, b or c) and only `config` (aps,
    1n or 3s2a: see CONFIGS), so that one figure can be measured alone and repeated."""
    seconds_a, count_b, seconds_b = (30, 2000, 65) if quick else (60, 10_000, 125)
    cases = {"a": every_10s(1000), "b": each_minute(count_b)}
    configs = [config] if config else list(CONFIGS)
    table = {}
    for label, jobs, seconds in (("a", cases["a"], seconds_a), ("b", cases["b"], seconds_b)):
        if case and case != label:
            continue
        for name in configs:
            shape, servers, agents = CONFIGS[name]
            if not servers:
                print(f"  case ({label}): APScheduler baseline ...", flush=True)
                table[(label, shape)] = run_apscheduler(jobs, seconds)
                continue
            print(f"  case ({label}): pykron {shape} ...", flush=True)
            with Cluster(servers=servers, agents=agents) as cluster:
                runs, _, entries = run_pykron(cluster, jobs, seconds)
                table[(label, shape)] = {**summarize(runs, seconds), "memory": service_memory(cluster),
                                         "entries": entries}
    if table:
        report(table, cases, seconds_a, seconds_b, count_b)
    if case in (None, "c") and config in (None, "3s2a"):
        print("  case (c): rising load on 3 servers + 2 agents ...", flush=True)
        with Cluster(servers=3, agents=2) as cluster:
            climb = rising(cluster, 15 if quick else 25)
        report_climb(climb)


def bench_schedule_secure(quick=False, rounds=3):
    """The cost of CURVE on scheduling: case (a) on 3 servers and 2 agents, a secure cluster and
    a plain one in turn, `rounds` of each; medians, and each run's p99."""
    seconds = 30 if quick else 60
    runs = {"secure": [], "plain": []}
    for i in range(rounds):
        for mode in runs:
            print(f"  round {i + 1}: case (a) on a {mode} cluster ...", flush=True)
            with Cluster(servers=3, agents=2, secure=mode == "secure", plain=mode == "plain") as cluster:
                done, _, _ = run_pykron(cluster, every_10s(1000), seconds)
                runs[mode].append(summarize(done, seconds))
    print(f"\nschedule, secure beside plain: case (a) on 3 servers + 2 agents, {seconds}s, median of {rounds} runs each")
    print(f"{'cluster':>7} | {'runs':>6} {'runs/s':>7} | {'late p50':>8} {'p99':>7} {'max':>7} ms | {'failed':>6} | p99 of each run")
    for mode, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("runs", "runs_s", "p50", "p99", "max", "failed")}
        print(f"{mode:>7} | {med['runs']:>6.0f} {med['runs_s']:>7.1f} | {med['p50']:>8.0f} {med['p99']:>7.0f} "
              f"{med['max']:>7.0f}    | {med['failed']:>6.0f} | {', '.join(str(round(r['p99'])) for r in rows)}")


def report(table, cases, seconds_a, seconds_b, count_b):
    print(f"\nschedule: (a) {len(cases['a'])} jobs @every 10s for {seconds_a}s; "
          f"(b) {count_b} jobs once a minute, seconds spread, for {seconds_b}s")
    print(f"{'case':>4} {'scheduler':>22} | {'runs':>6} {'runs/s':>7} | {'late p50':>8} {'p99':>7} {'max':>7} ms |"
          f" {'fork p50':>8} {'p99':>5} ms | {'forked ahead':>12} | {'failed':>6}")
    for (case, who), r in table.items():
        print(f"{case:>4} {who:>22} | {r['runs']:>6} {r['runs_s']:>7.1f} | {r['p50']:>8.0f} {r['p99']:>7.0f} "
              f"{r['max']:>7.0f}    | {r['spawn_p50']:>8.1f} {r['spawn_p99']:>5.1f}    | {r['ahead']:>12} | "
              f"{r['failed']:>6}")
    for (case, who), r in table.items():
        if "entries" in r:
            print(f"  raft entries ({case}, {who}): {r['entries']} in the window, "
                  f"{r['entries'] / max(r['runs'], 1):.2f} per run")
    for (case, who), r in table.items():
        if "memory" in r:
            print(f"  peak memory ({case}, {who}): " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in r["memory"].items()))


def report_climb(climb):
    print("(c) rising load, 3 servers + 2 agents:")
    for r in climb:
        print(f"  asked {r['asked']:>4}/s  ran {r['runs_s']:>6.1f}/s  late p50 {r['p50']:>6.0f} p99 {r['p99']:>6.0f} "
              f"max {r['max']:>6.0f} ms  not started {r['behind']}")
