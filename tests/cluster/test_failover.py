"""Exactly-once ticks through failover, on real processes: 20 jobs `@every 1s` with
misfire_policy run_all and a 30 s catch-up window run for a minute on 3 servers and 2 agents
while the leader is killed (-9) twice and paused once. Every tick of the window must have run,
each exactly once."""

import time

from scripts.cluster import Cluster, wait_until
from ticks import put_tick_jobs, stop_and_settle, tick_problems

JOBS = 20
RUN_S = 60
FAULTS = ((12, "kill"), (30, "pause"), (46, "kill"))  # seconds into the run


def test_every_tick_runs_exactly_once_through_kills_and_a_pause():
    with Cluster(servers=3, agents=2) as cluster:
        client = cluster.client("s1")
        created = put_tick_jobs(client, JOBS)
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
        runs = stop_and_settle(client, created)
    problems, counts = tick_problems(created, runs, window_end)
    print(f"faults: {'; '.join(log)}; ticks expected {counts['expected']}, ran {counts['ran']}")
    assert not problems, "\n".join(problems)
