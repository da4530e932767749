"""services/dispatcher/core.py with a virtual clock: target selection by tags (targets.py), the
per-job claim queue (claims.py), and each run's walk from claimed to finished, re-published
until acked, then failed with its reason; Raft's replies come from a fake answering as the
state machine would."""

import random

import pytest

from common import errors, messages as m, models
from services.dispatcher.core import (ACK_RECORD_DELAY_MS, BUSY_OUTPUT_BYTES, DISPATCHED, RUNNING, Call, Dispatcher, Ready, Skips,
                                      carry_out)
from services.dispatcher.targets import select_targets

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


class Raft:
    """Answers a dispatcher's calls as the local Raft and gossip would: claims accepted (or what
    a test sets in `claim`), records applied, the jobs and members it holds."""

    def __init__(self, members, untagged="one", jobs=(), unfinished=()):
        self.members, self.untagged, self.unfinished = members, untagged, list(unfinished)
        self.jobs = {j["name"]: j for j in jobs}
        self.claim = None  # a ClaimReply or errors.Error to answer claims with, instead of taking them
        self.outcomes = {}  # execution id → what its record's outcome adds (a retry, effects)
        self.done = []      # done-marks recorded
        self.seen = []

    def answer(self, call):
        msg = call.msg
        self.seen.append(msg)
        if isinstance(msg, m.MemberList):
            return m.Members(members=self.members), None
        if isinstance(msg, m.SettingsGet):
            return m.SettingsReply(settings={"untagged_jobs": self.untagged}), None
        if isinstance(msg, m.ExecUnfinished):
            return m.UnfinishedRuns(runs=self.unfinished), None
        if isinstance(msg, m.RunClaim):
            if isinstance(self.claim, errors.Error):
                return None, self.claim
            return self.claim or m.ClaimReply(executions=msg.executions), None
        if isinstance(msg, m.RunRecord):
            self.done += msg.done
            return m.RecordReply(acks=[{"execution": a} for a in msg.acks],
                                 finishes=[{"execution": x, **self.outcomes.pop(x["id"], {})} for x in msg.finishes]), None
        if isinstance(msg, m.RunSkip):
            return m.ClaimReply(executions=[{"scheduled_at": t, "reason": msg.reason} for t in msg.ticks]), None
        if isinstance(msg, m.JobGet):
            found = self.jobs.get(msg.name)
            return (m.JobReply(job=found), None) if found else (None, errors.NotFound(msg.name))
        raise AssertionError(f"unexpected call {msg}")


def dispatcher(seed=1, members=MEMBERS, untagged="one", notify=None, **raft):
    """An active dispatcher of term 3 at NOW, its members and settings read."""
    d = Dispatcher("s1", rng=random.Random(seed), ack_timeout_ms=ACK_MS, run_attempts=3, lease_ms=LEASE_MS,
                   notify=notify, now=NOW)
    d.raft = Raft(members, untagged, **raft)
    d.step(m.RaftLeader(node="s1", leader="s1", term=3, ready=True, applied=9), NOW)
    d.tick(NOW)
    drain(d)
    return d


def drain(d, now=NOW):
    """One Ready, its Raft calls answered at `now` (their effects wait for the next Ready)."""
    rd = d.ready()
    d.advance(rd)
    for call in rd.calls:
        d.answered(call, *d.raft.answer(call), now)
    return rd


def shell_job(name="backup", **fields):
    return {**models.validate_job({"name": name, "schedule": "@every 10s", "executor": "shell",
                                   "executor_config": {"command": "true"}, **fields}, now=NOW)}


def fire(d, job, scheduled_at=NOW, now=NOW):
    """A tick from the scheduler, claimed: (the Ready with the claim, the one with its publication)."""
    d.step(m.TickFire(job=job, scheduled_at=scheduled_at), now, reply="scheduler")
    return drain(d, now), drain(d, now)


def test_new_executions_are_one_claimed_execution_per_target():
    d = dispatcher()
    executions = d.new_executions(shell_job(tags={"role": "web"}), NOW)
    assert [e["node"] for e in executions] == ["web1", "web2", "web3"]
    assert all(e["status"] == "claimed" and e["group"] == NOW * 1_000_000 for e in executions)
    assert executions[0]["id"] == f"backup-{NOW * 1_000_000}-web1"


def test_new_executions_are_the_same_for_the_same_tick_and_manual_runs_get_distinct_groups():
    d = dispatcher()
    db = shell_job(tags={"role": "db"})
    assert d.new_executions(db, NOW)[0]["id"] == d.new_executions(db, NOW)[0]["id"]
    first, second = d.new_executions(shell_job(), NOW, manual=True), d.new_executions(shell_job(), NOW, manual=True)
    assert first[0]["group"] != second[0]["group"]


def test_untagged_jobs_run_on_one_node_unless_the_setting_says_all():
    assert len(dispatcher().new_executions(shell_job(), NOW)) == 1
    assert len(dispatcher(untagged="all").new_executions(shell_job(), NOW)) == len(MEMBERS)


def test_a_tick_is_claimed_then_published_and_its_scheduler_answered_once_the_claim_is_committed():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    claiming, published = fire(d, job)
    (claim,) = [c.msg for c in claiming.calls]
    assert isinstance(claim, m.RunClaim) and claim.term == 3 and claim.scheduled_at == NOW and claim.kind == "tick"
    assert claiming.publish == [] and claiming.replies == []  # nothing goes out before the claim commits
    assert published.publish == [(claim.executions, job, ("node", "db1"))]
    assert published.replies == [("scheduler", m.Executions(executions=claim.executions))]


def test_claims_of_one_job_wait_their_turn_and_other_jobs_do_not_wait_for_them():
    d = dispatcher()
    job, other = shell_job(tags={"role": "db"}), shell_job("other", tags={"role": "db"})
    d.step(m.TickFire(job=job, scheduled_at=NOW), NOW, reply="t1")
    d.step(m.TickFire(job=job, scheduled_at=NOW + 10_000), NOW, reply="t2")
    d.step(m.TickFire(job=other, scheduled_at=NOW), NOW, reply="o1")
    rd = d.ready()
    assert [(c.msg.job, c.msg.scheduled_at) for c in rd.calls] == [("backup", NOW), ("other", NOW)]
    d.advance(rd)
    d.answered(rd.calls[0], m.ClaimReply(executions=rd.calls[0].msg.executions), None, NOW)
    rd = d.ready()
    assert [(c.msg.job, c.msg.scheduled_at) for c in rd.calls] == [("backup", NOW + 10_000)]
    assert [asked for asked, _ in rd.replies] == ["t1"]


def test_a_claim_answered_after_leadership_was_lost_is_stale_and_changes_nothing():
    d = dispatcher()
    d.step(m.TickFire(job=shell_job(tags={"role": "db"}), scheduled_at=NOW), NOW, reply="t1")
    rd = d.ready()
    d.advance(rd)
    d.step(m.RaftLeader(node="s1", leader="s2", term=4, ready=False, applied=9), NOW)
    d.answered(rd.calls[0], m.ClaimReply(executions=rd.calls[0].msg.executions), None, NOW)
    assert d.ready().empty() and d.runs == {} and d.claims == {}
    with pytest.raises(errors.NotLeader):
        d.step(m.TickFire(job=shell_job(), scheduled_at=NOW), NOW, reply="t2")


def test_a_refused_claim_is_answered_with_its_error_and_a_skipped_one_is_counted_and_told():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    d.raft.claim = errors.NotLeader("claim of term 3 in an entry of term 4: stale leader")
    _, answered = fire(d, job)
    assert answered.publish == [] and answered.replies == [("scheduler", d.raft.claim)]
    rows = [{"id": "x", "reason": "concurrency forbid: y still running"}]
    d.raft.claim = m.ClaimReply(executions=rows, skipped="concurrency forbid: y still running")
    _, answered = fire(d, job, NOW + 10_000)
    assert answered.publish == [] and answered.replies == [("scheduler", m.Executions(executions=rows,
                                                                                        skipped=rows[0]["reason"]))]
    (skips,) = answered.skips
    assert (skips.job, skips.rows) == ("backup", rows)


def test_a_tick_with_no_target_is_recorded_skipped_and_a_manual_run_refused():
    d = dispatcher()
    job = shell_job(tags={"role": "cache"})
    skipping, answered = fire(d, job)
    (skip,) = [c.msg for c in skipping.calls]
    assert isinstance(skip, m.RunSkip) and skip.ticks == [NOW] and "no alive node offers executor" in skip.reason
    assert [asked for asked, _ in answered.replies] == ["scheduler"] and len(answered.skips) == 1
    d.raft.jobs["backup"] = job
    d.step(m.JobRun(name="backup", request="r1"), NOW, reply="client")
    drain(d)
    (asked, refusal), = drain(d).replies
    assert asked == "client" and isinstance(refusal, errors.Conflict)


def test_a_run_now_reads_the_job_once_and_claims_under_its_request():
    d = dispatcher()
    d.raft.jobs["backup"] = shell_job(tags={"role": "db"})
    d.step(m.JobRun(name="backup", request="c1/7"), NOW, reply="client")
    assert [type(c.msg) for c in drain(d).calls] == [m.JobGet]
    (claim,) = [c.msg for c in drain(d).calls]
    assert (claim.kind, claim.key) == ("manual", "c1/7") and claim.executions[0]["manual"]
    rd = drain(d)
    (asked, first), = rd.replies
    assert asked == "client" and first == m.RunStarted(executions=claim.executions, job=d.raft.jobs["backup"])
    assert len(rd.publish) == 1


def test_a_request_the_state_machine_knows_is_answered_and_runs_nothing_more():
    d = dispatcher()
    d.raft.jobs["backup"] = shell_job(tags={"role": "db"})
    first = d.new_executions(d.raft.jobs["backup"], NOW, manual=True)
    d.raft.claim = m.ClaimReply(executions=first, duplicate=True)
    d.step(m.JobRun(name="backup", request="c1/7"), NOW, reply="again")
    drain(d)
    drain(d)
    rd = drain(d)
    assert rd.publish == [] and d.runs == {}
    assert rd.replies == [("again", m.RunStarted(executions=first, job=d.raft.jobs["backup"]))]


def test_jitter_is_recorded_and_the_run_goes_out_at_once_with_it():
    d = dispatcher(seed=3)
    job = shell_job(jitter="5s", tags={"role": "db"})
    _, published = fire(d, job)
    (executions, _, _), = published.publish  # the executor waits out the jitter on its own clock
    delay = executions[0]["jitter_ms"]
    assert 0 < delay < 5000
    d.tick(NOW + delay + ACK_MS - 1)
    assert drain(d).publish == []  # the ack timeout counts from the start time, not the publication
    d.tick(NOW + delay + ACK_MS)
    assert len(drain(d).publish) == 1


def test_a_run_claimed_ahead_goes_out_at_the_claim_and_again_only_after_its_time_plus_the_ack_timeout():
    d = dispatcher()
    job = shell_job(tags={"role": "web"})
    _, published = fire(d, job, scheduled_at=NOW + 1000)
    (executions, _, topic), = published.publish
    assert topic == ("tag", "role=web") and len(executions) == 3
    assert d.busy(NOW + 999) == []  # published, but not due to have started yet
    d.tick(NOW + 1000 + ACK_MS - 1)
    assert drain(d).publish == []
    assert len(d.busy(NOW + 1000)) == 3
    d.tick(NOW + 1000 + ACK_MS)
    assert [[r["id"] for r in runs] for runs, _, _ in drain(d).publish] == [[e["id"] for e in executions]]


def test_claimed_runs_are_published_to_their_node_and_published_again_until_acked_then_failed():
    d = dispatcher()
    job = shell_job(tags={"role": "db"})
    _, published = fire(d, job)
    (executions, _, topic), = published.publish
    assert topic == ("node", "db1") and d.runs[executions[0]["id"]].state == DISPATCHED
    for attempt in (1, 2):
        d.tick(NOW + attempt * ACK_MS)
        assert len(drain(d).publish) == 1
    d.tick(NOW + 3 * ACK_MS)
    rd = drain(d)
    assert rd.publish == []
    (record,) = [c.msg for c in rd.calls if isinstance(c.msg, m.RunRecord)][0].finishes
    assert record["status"] == "failed" and "did not acknowledge" in record["reason"]


def acked_run(d, **fields):
    """A run claimed and published at NOW, acked 10 ms later; its execution."""
    _, published = fire(d, shell_job(tags={"role": "db"}, **fields))
    (execution,), _, _ = published.publish[0]
    d.step(m.RunAck(id=execution["id"], job="backup", node="db1", started_at=NOW + 10), NOW + 10)
    return execution


def records(rd):
    """The acks and final records of a Ready's run.record, if it has one."""
    found = [c.msg for c in rd.calls if isinstance(c.msg, m.RunRecord)]
    return (found[0].acks, found[0].finishes) if found else ([], [])


def test_ack_records_the_running_execution_once_and_heartbeats_renew_the_lease():
    d = dispatcher()
    execution = acked_run(d)
    assert drain(d).lateness == [10]  # the scheduled run started 10 ms late
    d.step(m.RunAck(id=execution["id"], job="backup", node="db1", started_at=NOW + 10), NOW + 20)
    assert records(drain(d)) == ([], []) and d.runs[execution["id"]].state == RUNNING
    assert d.runs[execution["id"]].ack_record_at == NOW + 10 + ACK_RECORD_DELAY_MS
    d.tick(NOW + 10 + ACK_RECORD_DELAY_MS)
    assert records(drain(d)) == ([{"job": "backup", "id": execution["id"], "started_at": NOW + 10}], [])
    d.tick(NOW + 20 + ACK_RECORD_DELAY_MS)
    assert records(drain(d)) == ([], [])
    d.step(m.ExecHeartbeat(node="db1", ids=[execution["id"]]), NOW + LEASE_MS)
    d.tick(NOW + LEASE_MS + 10)
    assert records(drain(d)) == ([], [])  # the heartbeat moved the lease
    d.tick(NOW + 2 * LEASE_MS + 10)
    _, (record,) = records(drain(d))
    assert record["status"] == "lost" and "no heartbeat" in record["reason"]


def test_a_run_whose_result_comes_before_its_ack_is_recorded_goes_to_raft_once_by_its_result():
    d = dispatcher()
    execution = acked_run(d)
    done = dict(execution, status="success", success=True, started_at=NOW + 10, finished_at=NOW + 30)
    d.step(m.ExecResult(execution=done), NOW + 30, reply="executor")
    d.tick(NOW + 10 + ACK_RECORD_DELAY_MS)
    acks, (record,) = records(drain(d))
    assert acks == [] and record["started_at"] == NOW + 10


def test_a_result_is_confirmed_to_its_executor_once_recorded_and_republished_for_tails():
    d = dispatcher()
    execution = acked_run(d)
    done = dict(execution, status="success", success=True, started_at=NOW + 10, finished_at=NOW + 30)
    d.step(m.ExecResult(execution=done), NOW + 30, reply="executor")
    recording = drain(d, NOW + 30)
    assert recording.replies == [] and records(recording)[1][0]["id"] == execution["id"]
    rd = drain(d, NOW + 30)
    assert rd.replies == [("executor", m.ResultRecorded(id=execution["id"]))]
    assert rd.results[0]["id"] == execution["id"] and rd.recorded == [("backup", "success")]
    with pytest.raises(errors.BadRequest):
        d.step(m.ExecResult(execution={"id": "x", "job": "backup"}), NOW + 40, reply="executor")


def retry_of(execution, job, due_at):
    nxt = dict(models.new_execution(job["name"], execution["node"], group=execution["group"],
                                    scheduled_at=execution["scheduled_at"], attempt=execution["attempt"] + 1),
               jitter_ms=0)
    return {"key": execution["id"], "due_at": due_at, "execution": nxt, "job": job}


def test_a_retry_the_state_machine_reports_is_claimed_when_due_under_its_key():
    d = dispatcher()
    job = shell_job(tags={"role": "db"}, retries=2, retry_interval="2s")
    execution = acked_run(d, retries=2, retry_interval="2s")
    failed = dict(execution, status="failed", success=False, finished_at=NOW + 100)
    d.raft.outcomes[execution["id"]] = {"retry": retry_of(execution, job, NOW + 2100)}
    d.step(m.ExecResult(execution=failed), NOW + 100)
    _, (record,) = records(drain(d, NOW + 100))
    assert "retrying" not in record  # the state machine decides it
    drain(d, NOW + 100)
    assert d.deadline() <= NOW + 2100
    d.tick(NOW + 2099)
    assert [c for c in drain(d, NOW + 2099).calls if isinstance(c.msg, m.RunClaim)] == []
    d.tick(NOW + 2100)
    (claim,) = [c.msg for c in drain(d, NOW + 2100).calls if isinstance(c.msg, m.RunClaim)]
    (nxt,) = claim.executions
    assert (claim.kind, claim.key) == ("retry", execution["id"])
    assert nxt["attempt"] == 2 and nxt["group"] == execution["group"] and nxt["node"] == "db1"
    assert len(drain(d, NOW + 2100).publish) == 1 and d.retries == {}


def test_a_retry_refused_for_want_of_a_leader_is_claimed_again_and_one_claimed_before_is_dropped():
    d = dispatcher()
    job = shell_job(tags={"role": "db"}, retries=1)
    execution = d.new_executions(job, NOW)[0]
    d.take_over_followups([retry_of(execution, job, NOW)], [])
    d.raft.claim = errors.Unavailable("cluster not yet upgraded")
    d.tick(NOW)
    drain(d)
    assert execution["id"] in d.retries and d.retry_heap == [(NOW + 1000, execution["id"])]
    d.raft.claim = errors.Conflict("retry already claimed")
    d.tick(NOW + 1000)
    drain(d, NOW + 1000)
    assert d.retries == {} and d.retry_heap == []


def test_a_retry_whose_node_is_gone_runs_on_another():
    d = dispatcher(members=[member("db1", role="db"), member("db2", role="db")])
    job = shell_job(tags={"role": "db:1"}, retries=1)
    (execution,) = d.new_executions(job, NOW)
    d.step(m.MemberEvent(kind="failed", member=member(execution["node"], status="failed", role="db")), NOW + 200)
    d.take_over_followups([retry_of(execution, job, NOW + 1100)], [])
    d.tick(NOW + 1100)
    (claim,) = [c.msg for c in drain(d, NOW + 1100).calls if isinstance(c.msg, m.RunClaim)]
    (retried,) = claim.executions
    assert retried["node"] != execution["node"] and retried["id"].endswith(f"-{retried['node']}-2")
    assert claim.key == execution["id"]  # keyed by the failed attempt, wherever the next one runs


def test_adopting_unfinished_runs_after_a_failover():
    job = shell_job(tags={"role": "db"})
    claimed, = dispatcher().new_executions(job, NOW)
    running = dict(claimed, id="other", status="running")
    d = dispatcher(unfinished=[{"execution": claimed, "job": job}, {"execution": running, "job": job}])
    published = drain(d).publish
    assert [e["id"] for e in published[0][0]] == [claimed["id"]]  # the same id: the executor starts nothing twice
    assert d.runs["other"].state == RUNNING and d.runs["other"].due_at == NOW + LEASE_MS


def test_a_page_of_unfinished_runs_with_more_asks_for_the_runs_after_its_last():
    job = shell_job(tags={"role": "db"})
    claimed, = dispatcher().new_executions(job, NOW)
    d = dispatcher()
    drain(d)
    d.took_over(None, m.UnfinishedRuns(runs=[{"execution": claimed, "job": job}], more=True), None)
    asked = [c.msg for c in drain(d).calls if isinstance(c.msg, m.ExecUnfinished)]
    assert asked == [m.ExecUnfinished(after_group=claimed["group"], after_id=claimed["id"])]
    assert claimed["id"] in d.runs


def test_kill_asks_the_node_and_busy_lists_what_runs():
    d = dispatcher()
    execution = acked_run(d)
    d.step(m.ExecOutput(id=execution["id"], job="backup", offset=0, data=b"half way"), NOW)
    d.step(m.BusyList(), NOW, reply="client")
    (_, busy), = drain(d).replies
    assert busy.executions[0]["output"] == "half way"
    d.step(m.ExecKill(job="backup", id=execution["id"]), NOW, reply="client")
    with pytest.raises(errors.NotFound):
        d.step(m.ExecKill(job="backup", id="nope"), NOW, reply="client")
    rd = drain(d)
    assert rd.kill == [(d.runs[execution["id"]].execution, "killed on request")]
    assert rd.replies == [("client", m.Killed(killed=[execution["id"]]))]


def test_busy_shows_output_within_its_budget_and_lists_every_run():
    d = dispatcher()
    execution = acked_run(d)
    d.step(m.ExecOutput(id=execution["id"], job="backup", offset=0, data=b"x" * (BUSY_OUTPUT_BYTES + 1)), NOW)
    d.step(m.BusyList(), NOW, reply="client")
    (_, busy), = drain(d).replies
    assert [x["id"] for x in busy.executions] == [execution["id"]] and busy.executions[0]["output"] == ""


def test_the_active_dispatcher_heartbeats_with_its_term_and_a_follower_does_not():
    d = dispatcher()
    d.tick(NOW + 500)
    assert drain(d).beats == [3]
    d.step(m.RaftLeader(node="s1", leader="s2", term=4, ready=False, applied=9), NOW + 600)
    d.tick(NOW + 1000)
    assert drain(d).beats == []


def test_carry_out_publishes_runs_first_then_asks_raft_then_answers():
    rd = Ready(publish=[([], {}, ("node", "db1"))], kill=[({}, "why")], calls=[Call(m.BusyList(), "x")],
               replies=[("client", None)], results=[{}], sends=["delivery"], skips=[Skips("j", [])],
               lateness=[1], recorded=[("j", "success")], beats=[3])
    order = []
    note = lambda kind: lambda *args: order.append(kind)  # noqa: E731
    carry_out(rd, publish=note("publish"), kill=note("kill"), call=note("call"), reply=note("reply"),
              result=note("result"), send=note("send"), skipped=note("skipped"), late=note("late"),
              recorded=note("recorded"), beat=note("beat"))
    assert order == ["publish", "kill", "call", "reply", "result", "send", "skipped", "late", "recorded", "beat"]


def test_new_execution_ids_name_group_and_node():
    ex = models.new_execution("backup", "web1", group=5, scheduled_at=NOW)
    assert ex["id"] == "backup-5-web1" and ex["attempt"] == 1
    assert models.new_execution("backup", "web1", group=5, scheduled_at=NOW, attempt=2)["id"] == "backup-5-web1-2"
