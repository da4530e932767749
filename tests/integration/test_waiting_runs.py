"""Runs published before their start time wait on their executor. Here ticks are claimed
8 s ahead ([scheduler] lead_ms), so an @at run waits about 8 s on the node: a kill records it
killed without running it; an executor stopped by TERM records it interrupted; an executor
killed -9 forgets it when it comes back, and it starts once, when the dispatcher sends it again
after its start time."""

import os
import signal
import time
from datetime import datetime, timezone

import pytest

from scripts.cluster import Cluster, wait_until

LEAD_MS = 8000
AHEAD_S = 11  # the @at tick, from now: claimed and published about 3 s from now


@pytest.fixture(scope="module")
def node():
    with Cluster(servers=1, conf={"scheduler": {"lead_ms": LEAD_MS}}) as cluster:
        yield cluster


def at_job(node, name):
    """An @at job AHEAD_S seconds from now; returns its tick (ms) once its run waits on the executor."""
    tick = (int(time.time()) + AHEAD_S) * 1000
    when = datetime.fromtimestamp(tick / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    node.client().put_job({"name": name, "schedule": f"@at {when}", "executor": "shell",
                           "executor_config": {"command": f"echo {name} ran"}})
    wait_until(lambda: node.ctl("s1", "executor")["waiting"] >= 1, timeout=AHEAD_S, what=f"{name}'s run waiting")
    assert time.time() * 1000 < tick  # it waits: the tick has not come
    return tick


def finished(node, name):
    runs = node.client().executions(name)
    return runs if runs and all(x["status"] not in ("claimed", "running") for x in runs) else None


def test_a_waiting_run_that_is_killed_is_recorded_killed_and_never_runs(node):
    tick = at_job(node, "killed-early")
    assert node.client().kill("killed-early")["killed"]
    run, = wait_until(lambda: finished(node, "killed-early"), what="the killed record")
    assert run["status"] == "killed" and run["reason"] == "killed on request" and "ran" not in run["output"]
    time.sleep(max(0, tick / 1000 - time.time()) + 3)  # past its tick and a re-publication
    assert [x["status"] for x in node.client().executions("killed-early")] == ["killed"]


def test_a_waiting_run_of_a_stopped_executor_is_recorded_interrupted(node):
    tick = at_job(node, "stopped-early")
    os.kill(node.service_pid("s1", "executor"), signal.SIGTERM)  # supervisord starts it again
    run, = wait_until(lambda: finished(node, "stopped-early"), what="the interrupted record")
    assert run["status"] == "interrupted" and "before the run's start time" in run["reason"]
    time.sleep(max(0, tick / 1000 - time.time()) + 3)
    assert [x["status"] for x in node.client().executions("stopped-early")] == ["interrupted"]


def test_a_waiting_run_of_a_killed_executor_starts_once_when_sent_again(node):
    tick = at_job(node, "crashed-early")
    node.kill("s1", "executor")  # supervisord starts it again; it forgets the run it stored
    run, = wait_until(lambda: finished(node, "crashed-early"), timeout=AHEAD_S + 15, what="the run")
    assert run["status"] == "success" and run["output"] == "crashed-early ran\n"
    assert run["started_at"] >= tick  # never before its time
    time.sleep(2)
    assert len(node.client().executions("crashed-early")) == 1
