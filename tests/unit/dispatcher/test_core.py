"""services/dispatcher/core.py: target selection by tags, and each run's walk from claimed to
finished, re-published until acked, then failed with its reason."""

import random

import pytest

from common import models
from services.dispatcher.core import ACK_RECORD_DELAY_MS, DISPATCHED, RUNNING, Dispatcher, select_targets

NOW = 1_767_225_600_000
ACK_MS = 2000
LEASE_MS = 10_000


def member(name, status="alive", executors=("shell",), **tags):
    return {"name": name, "status": status, "tags": tags, "executors": list(executors)}


MEMBERS = [
    member("web1", role="web", dc="eu"), member("web2", role="web", dc="eu"),
    member("web3", role="web", dc="us"), member("db1", role="db", dc="eu"),
]


def job(name="backup", executor="shell", **tags):
    return {"name": name, "executor": executor, "tags": tags}


def targets(job_, members=MEMBERS, seed=1):
    return select_targets(job_, members, random.Random(seed))


def test_tag_selects_every_matching_node():
    assert targets(job(role="web")) == ["web1", "web2", "web3"]


def test_all_tags_must_match():
    assert targets(job(role="web", dc="eu")) == ["web1", "web2"]


@pytest.mark.parametrize("seed", range(5))
def test_tag_count_caps_the_number_of_nodes(seed):
    chosen = targets(job(role="web:2"), seed=seed)
    assert len(chosen) == 2 and set(chosen) <= {"web1", "web2", "web3"} and chosen == sorted(chosen)


def test_smallest_count_wins():
    assert len(targets(job(role="web:2", dc="eu:1"))) == 1


def test_count_larger_than_the_candidates_selects_them_all():
    assert targets(job(role="web:9")) == ["web1", "web2", "web3"]


@pytest.mark.parametrize("value", ["web:notanumber", "web:-1", "web:"])
def test_count_that_is_not_a_number_selects_none(value):
    assert targets(job(role=value)) == []


def test_no_tags_selects_one_node():
    chosen = targets(job())
    assert len(chosen) == 1 and chosen[0] in {"web1", "web2", "web3", "db1"}


def test_executor_not_offered_selects_none():
    assert targets(job(executor="http")) == []
    assert targets(job(executor="http", role="web")) == []


def test_node_offering_the_executor_is_chosen():
    members = MEMBERS + [member("api1", executors=("shell", "http"), role="web")]
    assert targets(job(executor="http", role="web"), members) == ["api1"]


@pytest.mark.parametrize("status", ["failed", "left", "leaving", "suspect"])
def test_members_that_are_not_alive_are_excluded(status):
    members = [member("web1", role="web"), member("web2", status=status, role="web")]
    assert targets(job(role="web"), members) == ["web1"]
    assert targets(job(), [member("x", status=status)]) == []


def test_unmatched_tag_selects_none():
    assert targets(job(role="cache")) == []


def dispatcher(seed=1, members=MEMBERS, untagged="one"):
    d = Dispatcher("s1", rng=random.Random(seed), ack_timeout_ms=ACK_MS, run_attempts=3, lease_ms=LEASE_MS)
    d.members = members
    d.untagged = untagged
    return d


def shell_job(name="backup", **fields):
    return {**models.validate_job({"name": name, "schedule": "@every 10s", "executor": "shell",
                                   "executor_config": {"command": "true"}, **fields}, now=NOW)}


def drain(d):
    rd = d.ready()
    d.advance(rd)
    return rd


def test_plan_makes_one_claimed_execution_per_target():
    d = dispatcher()
    executions = d.plan(shell_job(tags={"role": "web"}), NOW, NOW)
    assert [e["node"] for e in executions] == ["web1", "web2", "web3"]
    assert all(e["status"] == "claimed" and e["group"] == NOW * 1_000_000 for e in executions)
    assert executions[0]["id"] == f"backup-{NOW * 1_000_000}-web1"


def test_plan_is_the_same_for_the_same_tick_and_manual_runs_get_distinct_groups():
    d = dispatcher()
    db = shell_job(tags={"role": "db"})
    assert d.plan(db, NOW, NOW)[0]["id"] == d.plan(db, NOW, NOW + 5)[0]["id"]
    first, second = d.plan(shell_job(), NOW, NOW, manual=True), d.plan(shell_job(), NOW, NOW, manual=True)
    assert first[0]["group"] != second[0]["group"]


def test_untagged_jobs_run_on_one_node_unless_the_setting_says_all():
    assert len(dispatcher().plan(shell_job(), NOW, NOW)) == 1
    assert len(dispatcher(untagged="all").plan(shell_job(), NOW, NOW)) == len(MEMBERS)


def test_jitter_is_recorded_and_the_run_goes_out_at_once_with_it():
    d = dispatcher(seed=3)
    job = shell_job(jitter="5s")
    executions = d.plan(job, NOW, NOW)
    delay = executions[0]["jitter_ms"]
    assert 0 < delay < 5000
    d.claimed(job, executions, NOW)
    (published, _, _), = drain(d).publish  # the executor waits out the jitter on its own clock
    assert [e["id"] for e in published] == [executions[0]["id"]] and published[0]["jitter_ms"] == delay
    d.tick(NOW + delay + ACK_MS - 1)
    assert drain(d).publish == []  # the ack timeout counts from the start time, not the publication
    d.tick(NOW + delay + ACK_MS)
    assert len(drain(d).publish) == 1


def test_a_run_claimed_ahead_goes_out_at_the_claim_and_again_only_after_its_time_plus_the_ack_timeout():
    d = dispatcher()
    job = shell_job(tags={"role": "web"})
    executions = d.plan(job, NOW + 1000, NOW)
    d.claimed(job, executions, NOW)
    assert [([r["id"] for r in runs], topic) for runs, _, topic in drain(d).publish] == [
        ([e["id"] for e in executions], ("tag", "role=web"))]
    assert d.busy(NOW + 999) == []  # published, but not due to have started yet
    d.tick(NOW + 1000 + ACK_MS - 1)
    assert drain(d).empty()
    assert len(d.busy(NOW + 1000)) == 3
    d.tick(NOW + 1000 + ACK_MS)
    assert [[r["id"] for r in runs] for runs, _, _ in drain(d).publish] == [[e["id"] for e in executions]]


def test_claimed_runs_are_published_to_their_node_and_published_again_until_acked_then_failed():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    executions = d.plan(job, NOW, NOW)
    d.claimed(job, executions, NOW)
    published = drain(d).publish
    assert published == [(executions, job, ("node", "db1"))]
    assert d.runs[executions[0]["id"]].state == DISPATCHED
    for attempt in (1, 2):
        d.tick(NOW + attempt * ACK_MS)
        assert len(drain(d).publish) == 1
    d.tick(NOW + 3 * ACK_MS)
    rd = drain(d)
    assert rd.publish == []
    kind, record = rd.record[0]
    assert kind == "exec.finish" and record["status"] == "failed" and "did not acknowledge" in record["reason"]


def test_a_job_on_every_node_with_one_tag_goes_out_once_on_the_tag_topic():
    d = dispatcher()
    job = shell_job(tags={"role": "web"})
    d.claimed(job, d.plan(job, NOW, NOW), NOW)
    (executions, _, topic), = drain(d).publish
    assert topic == ("tag", "role=web") and len(executions) == 3


def acked_run(d):
    """A run claimed and published at NOW, acked 10 ms later; its execution."""
    job = shell_job(tags={"role": "db"})
    execution, = d.plan(job, NOW, NOW)
    d.claimed(job, [execution], NOW)
    drain(d)
    d.acked(execution["id"], NOW + 10, NOW + 10)
    return execution


def test_ack_records_the_running_execution_once_and_heartbeats_renew_the_lease():
    d = dispatcher()
    execution = acked_run(d)
    d.acked(execution["id"], NOW + 10, NOW + 20)
    assert drain(d).record == [] and d.runs[execution["id"]].state == RUNNING
    assert d.deadline() == NOW + 10 + ACK_RECORD_DELAY_MS
    d.tick(NOW + 10 + ACK_RECORD_DELAY_MS)
    assert [kind for kind, _ in drain(d).record] == ["exec.ack"]
    d.tick(NOW + 20 + ACK_RECORD_DELAY_MS)
    assert drain(d).record == []
    d.heard([execution["id"]], NOW + LEASE_MS)
    d.tick(NOW + LEASE_MS + 10)
    assert drain(d).record == []  # the heartbeat moved the lease
    d.tick(NOW + 2 * LEASE_MS + 10)
    (kind, record), = drain(d).record
    assert record["status"] == "lost" and "no heartbeat" in record["reason"]


def test_a_run_whose_result_comes_before_its_ack_is_recorded_goes_to_raft_once_by_its_result():
    d = dispatcher()
    execution = acked_run(d)
    d.finished(dict(execution, status="success", success=True, started_at=NOW + 10, finished_at=NOW + 30), NOW + 30)
    d.tick(NOW + 10 + ACK_RECORD_DELAY_MS)
    (kind, record), = drain(d).record
    assert kind == "exec.finish" and record["started_at"] == NOW + 10


def test_a_failed_run_with_retries_left_is_retried_with_a_doubling_delay():
    d = dispatcher()
    job = shell_job(tags={"role": "db"}, retries=2, retry_interval="2s")
    execution, = d.plan(job, NOW, NOW)
    d.claimed(job, [execution], NOW)
    drain(d)
    d.finished(dict(execution, status="failed", success=False), NOW + 100)
    rd = drain(d)
    (kind, record), = rd.record
    assert record["retrying"] is True
    (_, nxt), = rd.retry
    assert nxt["attempt"] == 2 and nxt["group"] == execution["group"] and nxt["retry_at"] == NOW + 100 + 2000
    d.claimed(job, [nxt], NOW + 2100)
    drain(d)
    d.finished(dict(nxt, status="failed", success=False), NOW + 3000)
    (_, third), = drain(d).retry
    assert third["attempt"] == 3 and third["retry_at"] == NOW + 3000 + 4000
    d.claimed(job, [third], NOW + 7000)
    drain(d)
    d.finished(dict(third, status="failed", success=False), NOW + 8000)
    rd = drain(d)
    assert rd.retry == [] and "retrying" not in rd.record[0][1]  # no attempts left


def test_adopting_unfinished_runs_after_a_failover():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    claimed, = d.plan(job, NOW, NOW)
    running = dict(claimed, id="other", status="running")
    d.adopt(claimed, job, NOW + 5000)
    d.adopt(running, job, NOW + 5000)
    published = drain(d).publish
    assert [e["id"] for e in published[0][0]] == [claimed["id"]]  # the same id: the executor starts nothing twice
    assert d.runs["other"].state == RUNNING and d.runs["other"].due_at == NOW + 5000 + LEASE_MS


def test_kill_asks_the_node_and_busy_lists_what_runs():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    execution, = d.plan(job, NOW, NOW)
    d.claimed(job, [execution], NOW)
    d.acked(execution["id"], NOW, NOW)
    d.output(execution["id"], b"half way")
    assert d.busy(NOW)[0]["output"] == "half way"
    assert d.kill(execution["id"], "killed on request") and not d.kill("nope", "x")
    assert drain(d).kill == [(d.runs[execution["id"]].execution, "killed on request")]


def test_new_execution_ids_name_group_and_node():
    ex = models.new_execution("backup", "web1", group=5, scheduled_at=NOW)
    assert ex["id"] == "backup-5-web1" and ex["attempt"] == 1
    assert models.new_execution("backup", "web1", group=5, scheduled_at=NOW, attempt=2)["id"] == "backup-5-web1-2"
