"""services/dispatcher/followups.py through the dispatcher core, with a virtual clock: follow-ups
the state machine reports (after a result, or to a new leader) carried out. A dependent run is
claimed under its effect; each notification of a notice is sent, again with backoff, then given
up; the ephemeral delete waits for the rest of its firing; done-marks ride in the next record."""

import dataclasses

from common import config, errors, messages as m
from services.dispatcher.followups import DONE_RECORD_DELAY_MS, NOTIFY_BACKOFF_MS, SWEEP_MS
from tests.unit.dispatcher.test_core import NOW, acked_run, dispatcher, drain, records, shell_job

NOTIFY = dataclasses.replace(config.load(env={}).notify, attempts=3)
HOOK = {"type": "webhook", "rule": "always", "url": "http://hooks/x", "body": "", "headers": {}}


def leader(**raft):
    return dispatcher(notify=NOTIFY, **raft)


def notice(job, group=7, event="success"):
    record = {"id": f"{job['name']}-{group}-db1", "job": job["name"], "group": group, "attempt": 1, "node": "db1",
              "scheduled_at": NOW, "status": "success", "success": True, "output": "", "reason": ""}
    return {"id": f"notify:{job['name']}:{group}:{record['id']}", "kind": "notify", "job": job["name"], "group": group,
            "target": None, "body": {"event": event, "status": "success", "count": 1, "record": record, "job": job}}


def effect(kind, job, group=7, target=None):
    return {"id": f"{kind}:{job['name']}:{group}", "kind": kind, "job": job["name"], "group": group, "target": target,
            "body": {}}


def sent(d, rd, error=None, now=NOW):
    for delivery in rd.sends:
        d.sent(delivery.id, error, now)


def test_a_dependent_run_is_claimed_under_its_effect_and_needs_no_done_mark():
    d = leader()
    parent, child = shell_job("parent"), shell_job("child", tags={"role": "db"})
    d.take_effects([effect("child", parent, target=child)])
    (claim,) = [c.msg for c in drain(d).calls if isinstance(c.msg, m.RunClaim)]
    assert (claim.job, claim.kind, claim.key) == ("child", "child", "child:parent:7")
    assert len(drain(d).publish) == 1 and d.effects == {}
    d.tick(NOW + DONE_RECORD_DELAY_MS)
    assert d.done == [] and records(drain(d, NOW + DONE_RECORD_DELAY_MS)) == ([], [])


def test_a_dependent_run_refused_for_want_of_a_leader_is_claimed_again_and_a_taken_one_is_dropped():
    d = leader()
    child = shell_job("child", tags={"role": "db"})
    d.raft.claim = errors.Unavailable("cluster not yet upgraded")
    d.take_effects([effect("child", shell_job("parent"), target=child)])
    drain(d)
    assert d.retry_heap == [(NOW + 1000, "child:parent:7")] and d.claims == {}
    d.raft.claim = errors.Conflict("dependent run already claimed")
    d.tick(NOW + 1000)
    assert [c.msg.key for c in drain(d, NOW + 1000).calls] == ["child:parent:7"]  # claimed again
    assert d.effects == {} and d.claims == {}


def test_a_notice_is_sent_with_one_id_again_with_backoff_and_marked_once_delivered():
    d = leader()
    job = shell_job(notifications=[HOOK])
    d.take_effects([notice(job)])
    d.tick(NOW)
    rd = drain(d)
    (first,) = rd.sends
    assert first.payload["headers"]["X-Pykron-Delivery"] == first.id and first.attempts == 1
    sent(d, rd, "exit 1")
    d.tick(NOW + NOTIFY_BACKOFF_MS - 1)
    assert drain(d).sends == []
    d.tick(NOW + NOTIFY_BACKOFF_MS)
    rd = drain(d)
    (second,) = rd.sends
    assert second.id == first.id and second.attempts == 2
    sent(d, rd, None, NOW + NOTIFY_BACKOFF_MS)
    assert d.done == [{"id": notice(job)["id"], "deliveries": [
        {"id": first.id, "kind": "webhook", "outcome": "delivered", "attempts": 2, "error": ""}]}]
    # The done-mark rides in the next record, with the round's results.
    execution = acked_run(d)
    d.step(m.ExecResult(execution=dict(execution, status="success", success=True)), NOW + 1100)
    (call,) = [c.msg for c in drain(d, NOW + 1100).calls if isinstance(c.msg, m.RunRecord)]
    assert len(call.finishes) == 1 and [x["id"] for x in call.done] == [notice(job)["id"]] and d.done == []


def test_a_notice_is_given_up_after_its_attempts_and_the_give_up_recorded():
    d = leader()
    d.take_effects([notice(shell_job(notifications=[HOOK]))])
    now = NOW
    for attempt in range(3):
        d.tick(now)
        rd = drain(d, now)
        assert len(rd.sends) == 1
        sent(d, rd, "exit 1", now)
        now += NOTIFY_BACKOFF_MS << attempt
    (mark,) = d.done
    assert mark["deliveries"][0]["outcome"] == "gave_up" and mark["deliveries"][0]["attempts"] == 3
    d.tick(now + 60_000)
    assert drain(d, now + 60_000).sends == []


def test_done_marks_alone_wait_for_a_record_then_go_in_one_of_their_own():
    d = leader()
    d.take_effects([notice(shell_job(notifications=[HOOK]))])
    d.tick(NOW)
    sent(d, drain(d), None)
    assert records(drain(d)) == ([], []) and not [c for c in drain(d).calls if isinstance(c.msg, m.RunRecord)]
    d.tick(NOW + DONE_RECORD_DELAY_MS)
    (call,) = [c.msg for c in drain(d, NOW + DONE_RECORD_DELAY_MS).calls if isinstance(c.msg, m.RunRecord)]
    assert call.acks == [] and call.finishes == [] and len(call.done) == 1
    assert d.raft.done == call.done


def test_the_ephemeral_delete_waits_for_its_firings_notice():
    d = leader()
    job = shell_job(ephemeral=True, notifications=[HOOK])
    d.take_effects([effect("delete", job, group=7), notice(job, group=7)])
    assert d.done == []  # its notice is still to be sent
    d.tick(NOW)
    sent(d, drain(d), None)
    assert [x["id"] for x in d.done] == [notice(job)["id"], "delete:backup:7"]


def test_a_new_leader_takes_over_pending_retries_and_effects():
    job = shell_job(notifications=[HOOK], tags={"role": "db"})
    retry = {"key": "backup-1-db1", "due_at": NOW + 500, "job": job,
             "execution": {"id": "backup-1-db1-2", "job": "backup", "group": 1, "attempt": 2, "node": "db1",
                           "scheduled_at": NOW, "manual": False, "status": "claimed", "jitter_ms": 0}}
    d = leader()
    d.step(m.RaftLeader(node="s1", leader="s2", term=4, ready=False, applied=9), NOW)
    reply = m.UnfinishedRuns(runs=[], retries=[retry], effects=[notice(job)])
    d.step(m.RaftLeader(node="s1", leader="s1", term=5, ready=True, applied=9), NOW)
    (take_over,) = [c for c in drain(d).calls if isinstance(c.msg, m.ExecUnfinished)]
    d.answered(take_over, reply, None, NOW)
    d.tick(NOW + 500)
    rd = drain(d, NOW + 500)
    assert [c.msg.key for c in rd.calls if isinstance(c.msg, m.RunClaim)] == ["backup-1-db1"] and len(rd.sends) == 1


def test_what_a_leader_had_pending_is_forgotten_when_it_steps_down_and_a_late_outcome_ignored():
    d = leader()
    d.take_effects([notice(shell_job(notifications=[HOOK]))])
    d.tick(NOW)
    rd = drain(d)
    d.step(m.RaftLeader(node="s1", leader="s2", term=4, ready=False, applied=9), NOW)
    sent(d, rd, None)
    assert d.effects == {} and d.deliveries == {} and d.done == []


def test_done_marks_of_a_record_that_failed_ride_in_the_next():
    d = leader()
    d.take_effects([notice(shell_job(notifications=[HOOK]))])
    d.tick(NOW)
    sent(d, drain(d), None)
    d.tick(NOW + DONE_RECORD_DELAY_MS)
    rd = d.ready()
    d.advance(rd)
    (call,) = [c for c in rd.calls if isinstance(c.msg, m.RunRecord)]
    d.answered(call, None, errors.Timeout("no quorum"), NOW + DONE_RECORD_DELAY_MS)
    assert d.done == call.msg.done


def test_a_result_for_a_job_deleted_meanwhile_is_confirmed_with_nothing_recorded():
    d = leader()
    execution = acked_run(d)
    d.raft.outcomes[execution["id"]] = {"error": "not_found", "message": "job 'backup' not found"}
    d.step(m.ExecResult(execution=dict(execution, status="success", success=True)), NOW + 30, reply="executor")
    drain(d, NOW + 30)
    rd = drain(d, NOW + 30)
    assert rd.replies == [("executor", m.ResultRecorded(id=execution["id"]))] and rd.results == []


def test_a_sweep_takes_up_follow_ups_whose_report_was_lost_and_not_those_just_settled():
    job = shell_job(notifications=[HOOK], tags={"role": "db"})
    d = leader()
    d.take_effects([notice(job, group=1)])
    d.tick(NOW)
    sent(d, drain(d), None)  # delivered, marked: settled here
    retry = {"key": "backup-2-db1", "due_at": NOW + 6000, "job": job,
             "execution": {"id": "backup-2-db1-2", "job": "backup", "group": 2, "attempt": 2, "node": "db1",
                           "scheduled_at": NOW, "manual": False, "status": "claimed", "jitter_ms": 0}}
    d.tick(NOW + SWEEP_MS)  # the sweep after the take-over at NOW
    (sweep,) = [c for c in drain(d, NOW + SWEEP_MS).calls if isinstance(c.msg, m.ExecUnfinished)]
    assert sweep.msg.followups_only
    d.answered(sweep, m.UnfinishedRuns(runs=[], retries=[retry], effects=[notice(job, group=1)]), None, NOW + SWEEP_MS)
    assert list(d.retries) == ["backup-2-db1"] and d.effects == {} and d.deliveries == {}
    assert d.sweep_at == NOW + 2 * SWEEP_MS


def test_a_sweep_answered_after_the_leader_stepped_down_wakes_nothing():
    d = leader()
    d.tick(NOW + SWEEP_MS)
    (sweep,) = [c for c in drain(d, NOW + SWEEP_MS).calls if isinstance(c.msg, m.ExecUnfinished)]
    d.step(m.RaftLeader(node="s1", leader="s2", term=4, ready=False, applied=9), NOW + SWEEP_MS)
    d.answered(sweep, m.UnfinishedRuns(runs=[]), None, NOW + 3 * SWEEP_MS)
    assert d.sweep_at is None and d.followups_deadline() is None
