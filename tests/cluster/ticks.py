"""The exactly-once check of the cluster tests: jobs `@every 1s` put at once, run through a
fault or an upgrade, then every tick of the window must have run once and succeeded."""

import collections

from scripts.cluster import wait_until


def put_tick_jobs(client, count):
    """count jobs `@every 1s`, pinned to one agent (servers are what faults and upgrades hit,
    runs must not be), catching up every missed tick of the last 30 s. → {name: created_at}."""
    for i in range(count):
        client.put_job({"name": f"tick-{i:02d}", "schedule": "@every 1s", "executor": "shell",
                        "executor_config": {"command": "true"}, "tags": {"server": "false:1"},
                        "misfire_policy": "run_all", "catchup_window": "30s", "history_limit": 500})
    return {j["name"]: j["created_at"] for j in client.jobs() if j["name"].startswith("tick-")}


def stop_and_settle(client, created):
    """Disable the jobs and wait until none of their runs is unfinished → {name: executions}."""
    for name in created:
        client.put_job({**client.job(name), "disabled": True})

    def all_settled():
        runs = {name: client.executions(name, limit=500) for name in created}
        return runs if not any(x["status"] in ("claimed", "running") for r in runs.values() for x in r) else None

    return wait_until(all_settled, timeout=30, what="every run finished")


def tick_problems(created, runs, window_end):
    """(problems, counts): each job's ticks up to window_end missing, run twice, or not a success."""
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
    return problems, counts
