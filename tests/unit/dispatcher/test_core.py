"""services/dispatcher/core.py: target selection by tags, and each run's walk from claimed to
finished, re-published until acked, then failed with its reason."""

import random

import pytest

from common import models
from services.dispatcher.core import DISPATCHED, RUNNING, Dispatcher, select_targets

NOW = 1_767_225_600_000
ACK_MS = 2000


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


def dispatcher(members=MEMBERS, attempts=3):
    d = Dispatcher("srv1", rng=random.Random(3), ack_timeout_ms=ACK_MS, run_attempts=attempts)
    d.members = list(members)
    return d


def drain(d):
    rd = d.ready()
    d.advance(rd)
    return rd


def test_plan_makes_one_claimed_execution_per_target():
    d = dispatcher()
    executions = d.plan(job(role="web", dc="eu"), NOW, NOW + 3)
    group = NOW * 1_000_000
    assert [e["id"] for e in executions] == [f"{group}-web1", f"{group}-web2"]
    assert all(e["status"] == "claimed" and e["scheduled_at"] == NOW and e["group"] == group
               and e["attempt"] == 1 and not e["manual"] for e in executions)


def test_plan_is_the_same_for_the_same_tick():
    # Ids derive from the tick, so a new leader re-planning a tick gets the same execution ids.
    first = dispatcher().plan(job(role="web"), NOW, NOW)
    again = dispatcher().plan(job(role="web"), NOW, NOW + 5000)
    assert [e["id"] for e in first] == [e["id"] for e in again]


def test_manual_runs_get_distinct_groups():
    d = dispatcher()
    one = d.plan(job(role="web", dc="us"), NOW, NOW, manual=True)
    two = d.plan(job(role="web", dc="us"), NOW, NOW, manual=True)
    assert one[0]["manual"] and one[0]["group"] != two[0]["group"]


def test_plan_with_no_fitting_node_is_empty():
    assert dispatcher().plan(job(role="cache"), NOW, NOW) == []


def claimed_run(d, node="web3"):
    [execution] = d.plan(job(role="web", dc="us"), NOW, NOW)
    assert execution["node"] == node
    d.claimed(job(role="web", dc="us"), [execution], NOW)
    return execution


def test_claimed_runs_are_published_to_their_node_and_wait_for_an_ack():
    d = dispatcher()
    execution = claimed_run(d)
    rd = drain(d)
    assert rd.publish == [("web3", execution, job(role="web", dc="us"))]
    assert rd.record == []
    assert d.runs[execution["id"]].state == DISPATCHED
    assert d.deadline() == NOW + ACK_MS


def test_ack_records_the_running_execution_once():
    d = dispatcher()
    execution = claimed_run(d)
    drain(d)
    d.acked(execution["id"], NOW + 40)
    d.acked(execution["id"], NOW + 90)  # a re-sent ack
    rd = drain(d)
    assert [(op, e["status"], e["started_at"]) for op, e in rd.record] == [("exec.ack", "running", NOW + 40)]
    assert d.runs[execution["id"]].state == RUNNING
    assert d.deadline() is None  # a running execution is no longer waited on


def test_ack_of_an_unknown_execution_is_ignored():
    d = dispatcher()
    d.acked("nope", NOW)
    assert d.ready().empty()


def test_finished_records_the_result_and_forgets_the_run():
    d = dispatcher()
    execution = claimed_run(d)
    d.acked(execution["id"], NOW + 40)
    drain(d)
    result = dict(execution, status="success", success=True, finished_at=NOW + 900)
    d.finished(result)
    rd = drain(d)
    assert rd.record == [("exec.finish", result)]
    assert d.runs == {} and d.busy() == []


def test_busy_lists_running_executions_with_their_last_output():
    d = dispatcher()
    execution = claimed_run(d)
    d.acked(execution["id"], NOW + 40)
    d.output(execution["id"], b"line 1\n")
    d.output(execution["id"], b"line 2\n")
    d.output("unknown", b"ignored")
    [busy] = d.busy()
    assert (busy["id"], busy["status"], busy["output"]) == (execution["id"], "running", "line 2\n")


def test_tick_before_the_ack_timeout_does_nothing():
    d = dispatcher()
    claimed_run(d)
    drain(d)
    d.tick(NOW + ACK_MS - 1)
    assert d.ready().empty()


def test_unacked_run_is_published_again_then_failed():
    d = dispatcher(attempts=3)
    execution = claimed_run(d)
    assert len(drain(d).publish) == 1
    d.tick(NOW + ACK_MS)
    rd = drain(d)
    assert rd.publish == [("web3", execution, job(role="web", dc="us"))] and rd.record == []
    assert d.deadline() == NOW + 2 * ACK_MS
    d.tick(NOW + 2 * ACK_MS)
    assert len(drain(d).publish) == 1  # the third and last publication
    d.tick(NOW + 3 * ACK_MS)
    rd = drain(d)
    assert rd.publish == []
    [(op, failed)] = rd.record
    assert op == "exec.finish"
    assert (failed["id"], failed["status"], failed["success"], failed["finished_at"]) == (
        execution["id"], "failed", False, NOW + 3 * ACK_MS)
    assert "web3" in failed["reason"] and "3 publications" in failed["reason"]
    assert d.runs == {} and d.deadline() is None


def test_acked_run_is_not_published_again():
    d = dispatcher()
    execution = claimed_run(d)
    d.acked(execution["id"], NOW + 10)
    drain(d)
    d.tick(NOW + 10 * ACK_MS)
    assert d.ready().empty()


def test_advance_keeps_what_came_after_ready():
    d = dispatcher()
    execution = claimed_run(d)
    rd = d.ready()
    d.acked(execution["id"], NOW + 1)
    d.advance(rd)
    later = d.ready()
    assert later.publish == [] and [op for op, _ in later.record] == ["exec.ack"]


def test_new_execution_ids_name_group_and_node():
    assert models.new_execution("j", "web1", group=5, scheduled_at=NOW)["id"] == "5-web1"
