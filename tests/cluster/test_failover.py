"""Exactly-once ticks through failover, on real processes: 20 jobs `@every 1s` with
misfire_policy run_all and a 30 s catch-up window run for a minute on 3 servers and 2 agents
while the leader is killed (-9) twice and paused once. Every tick of the window must have run,
each exactly once."""

import collections
import time

from scripts.cluster import Cluster, wait_until

JOBS = 20
RUN_S = 60
FAULTS = ((12, "kill"), (30, "pause"), (46, "kill"))  # seconds into the run


def test_every_tick_runs_exactly_once_through_kills_and_a_pause():
    with Cluster(servers=3, agents=2) as cluster:
        client = cluster.client("s1")
        for i in range(JOBS):
            # Pinned to one agent: servers are what the faults hit, runs must not be.
            client.put_job({"name": f"tick-{i:02d}", "schedule": "@every 1s", "executor": "shell",
                            "executor_config": {"command": "true"}, "tags": {"server": "false:1"},
                            "misfire_policy": "run_all", "catchup_window": "30s", "history_limit": 500})
        created = {j["name"]: j["created_at"] for j in client.jobs()}
        start, faults = time.monotonic(), list(FAULTS)
        log = []
        while time.monotonic() - start < RUN_S:
            if faults and time.monotonic() - start >= faults[0][0]:
                _, fault = faults.pop(0)
                leader = cluster.leader()
                log.append(f"{time.monotonic() - start:.0f}s {fault} {leader}")
                if fault == "kill":
                    cluster.kill(leader)
                    cluster.leader()
                    cluster.restart(leader)
                else:
                    cluster.pause(leader)
                    wait_until(lambda: cluster.leader(timeout=10) != leader, timeout=15, what="a new leader")
                    time.sleep(2)
                    cluster.resume(leader)
            time.sleep(0.2)
        window_end = int(time.time() * 1000) - 5000  # ticks this old had time to be claimed and run
        for i in range(JOBS):
            client.put_job({**client.job(f"tick-{i:02d}"), "disabled": True})

        def all_settled():
            runs = {name: client.executions(name, limit=500) for name in created}
            return runs if not any(x["status"] in ("claimed", "running") for r in runs.values() for x in r) else None

        runs = wait_until(all_settled, timeout=30, what="every run finished")
    problems, counts = [], collections.Counter()
    for name, anchor in sorted(created.items()):
        expected = set(range(anchor + 1000, window_end + 1, 1000))
        seen = collections.Counter(x["scheduled_at"] for x in runs[name] if x["status"] == "success"
                                   and x["scheduled_at"] <= window_end)
        other = [x for x in runs[name] if x["status"] != "success" and x["scheduled_at"] <= window_end]
        twice = sorted(t for t, n in seen.items() if n > 1)
        missing = sorted(expected - set(seen))
        counts.update(ran=sum(seen.values()), expected=len(expected))
        if twice or missing or other or set(seen) - expected:
            problems.append(f"{name}: missing={missing[:5]} twice={twice[:5]} "
                            f"not-success={[(x['scheduled_at'], x['status'], x['reason']) for x in other][:3]}")
    print(f"faults: {'; '.join(log)}; ticks expected {counts['expected']}, ran {counts['ran']}")
    assert not problems, "\n".join(problems)
