"""services/raft/followups.py on a real SQLite file: protocol 2's run ledger. A failed attempt's
pending retry with its due time from the entry, a firing's effects (dependent runs, the
ephemeral delete, notices) until marked done, every claim checked against its key, and skipped
rows and claimed ticks kept within the job's bounds."""

from common import models
from services.raft.fsm import COMMAND_SINCE
from tests.unit.raft.test_fsm import NOW, Log, fsm, job  # noqa: F401 (fsm is a fixture)


def claim(log, name, at, node="web1", kind="tick", key="", term=1, group=None):
    group = group or at * 1_000_000
    executions = [models.new_execution(name, node, group=group, scheduled_at=at, manual=kind != "tick")]
    return log.apply("run.claim", job=name, scheduled_at=at, group=group, term=term, executions=executions,
                     kind=kind, key=key)


def result(execution, success=True, at=NOW + 5000, status=None):
    return dict(execution, status=status or ("success" if success else "failed"), success=success,
                started_at=execution["scheduled_at"], finished_at=at, exit_code=0 if success else 1)


def record(log, *finishes, done=(), notify=()):
    return log.apply("run.record", acks=[], finishes=list(finishes), done=list(done), notify=list(notify))["finishes"]


def test_the_run_ledgers_commands_are_of_protocol_2():
    assert {op: COMMAND_SINCE[op] for op in ("run.claim", "run.record", "run.skip")} == dict.fromkeys(
        ("run.claim", "run.record", "run.skip"), 2)


# -- retries ---------------------------------------------------------------------------------


def test_a_failed_attempt_with_retries_left_leaves_a_retry_due_a_backoff_after_it_ended(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", retries=2, retry_interval="2s"))
    (first,) = claim(log, "backup", NOW)["executions"]
    (done,) = record(log, result(first, success=False, at=NOW + 700))
    retry = done["retry"]
    assert retry["key"] == first["id"] and retry["due_at"] == NOW + 700 + 2000 and retry["job"]["name"] == "backup"
    assert retry["execution"]["attempt"] == 2 and retry["execution"]["group"] == first["group"]
    assert done["group_done"] is False and done["effects"] == []
    shown = fsm.execution("backup", first["id"])
    assert shown["retrying"] is True and shown["retry_at"] == NOW + 2700  # the API shows when it is due
    assert fsm.pending()["retries"] == [retry]
    # The second attempt fails too: the next is due twice the interval after it.
    (second,) = claim_retry(log, retry)
    (done,) = record(log, result(second, success=False, at=NOW + 4000))
    assert done["retry"]["due_at"] == NOW + 4000 + 4000


def claim_retry(log, retry, node=None):
    execution = retry["execution"]
    if node:
        execution = dict(execution, node=node, id=models.execution_id(
            execution["job"], execution["group"], node, execution["attempt"]))
    return log.apply("run.claim", job=execution["job"], scheduled_at=execution["scheduled_at"],
                     group=execution["group"], term=1, executions=[execution], kind="retry",
                     key=retry["key"])["executions"]


def test_a_retry_is_claimed_once_and_its_group_ends_by_the_last_attempt(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", retries=1))
    (first,) = claim(log, "backup", NOW)["executions"]
    (done,) = record(log, result(first, success=False))
    (second,) = claim_retry(log, done["retry"], node="web2")  # the node is gone: elsewhere
    again = log.apply("run.claim", job="backup", scheduled_at=NOW, group=first["group"], term=1,
                      executions=[second], kind="retry", key=first["id"])
    assert again["error"] == "conflict" and "already claimed" in again["message"]
    assert fsm.pending()["retries"] == [] and fsm.execution("backup", first["id"])["retried_by"] == second["id"]
    (done,) = record(log, result(second))
    assert (done["group_done"], done["group_status"]) == (True, "success")  # web1's failure was superseded
    assert fsm.job("backup")["status"] == "success"


def test_the_doubling_stops_at_max_retry_interval():
    retries = job("backup", retry_interval="10m", max_retry_interval="25m")
    assert [models.retry_delay_ms(retries, a) for a in (1, 2, 3, 4)] == [600_000, 1_200_000, 1_500_000, 1_500_000]
    assert models.retry_delay_ms(job("backup", retry_interval="1h"), 60) == 3_600_000  # the default cap, 1h


def test_a_late_success_of_a_run_marked_lost_cancels_its_pending_retry(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", retries=1))
    (first,) = claim(log, "backup", NOW)["executions"]
    record(log, dict(result(first, success=False), status="lost", reason="no heartbeat"))
    assert len(fsm.pending()["retries"]) == 1
    (done,) = record(log, result(first))
    assert fsm.pending()["retries"] == [] and done["group_status"] == "success"


def test_a_late_result_follows_up_only_when_it_changes_how_the_firing_ended(fsm):
    log = Log(fsm)
    hook = {"type": "webhook", "rule": "always", "url": "http://hooks/x"}
    log.apply("job.put", job=job("parent", notifications=[hook]))
    log.apply("job.put", job=job("child", parent_job="parent"))
    (run,) = claim(log, "parent", NOW)["executions"]
    (lost,) = record(log, dict(result(run, success=False), status="lost", reason="no heartbeat"))
    assert [e["id"] for e in lost["effects"]] == [f"notify:parent:{run['group']}:failure"]
    (late,) = record(log, result(run))  # it ran after all: a success, its child and a recovery notice
    assert sorted(e["kind"] for e in late["effects"]) == ["child", "notify"]
    (effect,) = [e for e in late["effects"] if e["kind"] == "child"]
    claim(log, "child", NOW + 6000, kind="child", key=effect["id"])
    (again,) = record(log, result(run, success=False))  # the late record is final: nothing more
    assert again["duplicate"] and len(fsm.executions("child")) == 1


def test_a_late_result_of_an_attempt_already_retried_changes_nothing_that_followed(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("parent", retries=1))
    log.apply("job.put", job=job("child", parent_job="parent"))
    (run,) = claim(log, "parent", NOW)["executions"]
    (lost,) = record(log, dict(result(run, success=False), status="lost", reason="no heartbeat"))
    (second,) = claim_retry(log, lost["retry"])
    (effect,) = record(log, result(second))[0]["effects"]
    claim(log, "child", NOW + 6000, kind="child", key=effect["id"])
    (late,) = record(log, result(run))
    assert late["group_done"] and late["effects"] == [] and fsm.pending() == {"retries": [], "effects": []}
    assert len(fsm.executions("child")) == 1


def test_no_retry_for_a_kill_or_without_retries(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", retries=1))
    log.apply("job.put", job=job("plain"))
    (killed,) = claim(log, "backup", NOW)["executions"]
    (plain,) = claim(log, "plain", NOW)["executions"]
    assert [d["retry"] for d in record(log, result(killed, False, status="killed"), result(plain, False))] == [None, None]
    assert fsm.pending() == {"retries": [], "effects": []}


# -- effects ---------------------------------------------------------------------------------


def test_a_plain_job_leaves_no_effects(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    (run,) = claim(log, "backup", NOW)["executions"]
    (done,) = record(log, result(run))
    assert done["group_done"] and done["effects"] == [] and fsm.pending()["effects"] == []


def test_a_successful_firing_leaves_its_childrens_runs_its_delete_and_its_notice(fsm):
    log = Log(fsm)
    hook = {"type": "webhook", "rule": "on_failure,on_recovery", "url": "http://hooks/x"}
    log.apply("job.put", job=job("parent", ephemeral=True, notifications=[hook]))
    log.apply("job.put", job=job("child", parent_job="parent"))
    (run,) = claim(log, "parent", NOW)["executions"]
    (failed,) = record(log, result(run, success=False))
    (notice,) = failed["effects"]  # on_failure hears a failure; no child, no delete
    assert notice["kind"] == "notify" and notice["body"]["event"] == "failure"
    (run,) = claim(log, "parent", NOW + 10_000)["executions"]
    (done,) = record(log, result(run))
    assert done["previous_status"] == "failed"
    by_kind = {e["kind"]: e for e in done["effects"]}
    assert set(by_kind) == {"child", "delete", "notify"}
    assert by_kind["child"]["target"]["name"] == "child" and by_kind["child"]["id"] == f"child:parent:{run['group']}:child"
    assert by_kind["notify"]["body"]["event"] == "recovery" and by_kind["notify"]["body"]["record"]["id"] == run["id"]
    assert by_kind["notify"]["body"]["job"]["name"] == "parent"
    assert {e["id"] for e in fsm.pending()["effects"]} == {notice["id"], *(e["id"] for e in done["effects"])}


def test_the_leaders_own_rules_decide_a_notice_for_a_job_without_notifications(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    (run,) = claim(log, "backup", NOW)["executions"]
    (done,) = record(log, result(run), notify=["on_failure"])
    assert done["effects"] == []
    (run,) = claim(log, "backup", NOW + 10_000)["executions"]
    (done,) = record(log, result(run, success=False), notify=["on_failure"])
    assert [e["kind"] for e in done["effects"]] == ["notify"]


def chain(fsm):
    """A parent and its child, and the child's run the parent's first successful firing left."""
    log = Log(fsm)
    log.apply("job.put", job=job("parent"))
    log.apply("job.put", job=job("child", parent_job="parent"))
    return log, succeeded(log, "parent", NOW)


def succeeded(log, name, at):
    (run,) = claim(log, name, at)["executions"]
    (effect,) = record(log, result(run))[0]["effects"]
    return effect


def test_a_dependent_run_is_claimed_once_under_its_effect(fsm):
    log, effect = chain(fsm)
    first = claim(log, "child", NOW + 6000, kind="child", key=effect["id"])
    assert first["executions"][0]["manual"] and fsm.pending()["effects"] == []
    second = claim(log, "child", NOW + 6001, kind="child", key=effect["id"])
    assert second["error"] == "conflict"
    assert claim(log, "child", NOW + 6002, kind="child", key="")["error"] == "conflict"  # never without its key
    assert len(fsm.executions("child")) == 1


def test_a_dependent_run_with_no_node_is_recorded_skipped_and_a_disabled_child_does_not_run(fsm):
    log, effect = chain(fsm)
    nowhere = log.apply("run.claim", job="child", scheduled_at=NOW, group=7, term=1, executions=[], kind="child",
                        key=effect["id"], reason="no alive node")
    assert nowhere["skipped"] == "no alive node" and nowhere["executions"][0]["status"] == "skipped"
    assert fsm.job("child")["skipped_count"] == 1 and fsm.pending()["effects"] == []
    log.apply("job.put", job=job("child", parent_job="parent", disabled=True))
    effect = succeeded(log, "parent", NOW + 10_000)
    disabled = claim(log, "child", NOW + 10_000, kind="child", key=effect["id"])
    assert disabled["executions"] == [] and "disabled" in disabled["skipped"] and fsm.pending()["effects"] == []


def test_an_effect_on_a_job_deleted_meanwhile_is_dropped(fsm):
    log, effect = chain(fsm)
    log.apply("job.delete", name="child")
    assert fsm.pending()["effects"] == []
    log.apply("job.put", job=job("child", parent_job="parent"))
    assert claim(log, "child", NOW + 1, kind="child", key=effect["id"])["error"] == "conflict"


def test_done_marks_delete_the_ephemeral_job_and_record_each_delivery(fsm):
    log = Log(fsm)
    hook = {"type": "webhook", "rule": "always", "url": "http://hooks/x"}
    log.apply("job.put", job=job("once", ephemeral=True, notifications=[hook]))
    log.apply("job.put", job=job("other"))
    (run,) = claim(log, "once", NOW)["executions"]
    by_kind = {e["kind"]: e for e in record(log, result(run))[0]["effects"]}
    delivery = {"id": "d-1", "kind": "webhook", "outcome": "delivered", "attempts": 2, "error": ""}
    (other,) = claim(log, "other", NOW)["executions"]
    record(log, result(other), done=[{"id": by_kind["notify"]["id"], "deliveries": [delivery]}])
    assert fsm.execution("once", run["id"])["notified"] == [delivery]
    assert models.execution_to_dkron(fsm.execution("once", run["id"]))["notifications"] == [delivery]
    assert [e["kind"] for e in fsm.pending()["effects"]] == ["delete"]
    log.apply("run.record", acks=[], finishes=[], done=[{"id": by_kind["delete"]["id"], "deliveries": []}])
    assert fsm.job("once") is None and fsm.pending()["effects"] == []
    assert [name for _, name, job_ in fsm.changes] == ["once"]  # published on the job feed, as a delete
    log.apply("run.record", acks=[], finishes=[], done=[{"id": by_kind["delete"]["id"], "deliveries": []}])
    assert fsm.job("other") is not None  # marked twice: nothing more


# -- keys ------------------------------------------------------------------------------------


def test_a_run_now_request_sent_again_gets_its_first_answer_and_runs_nothing_more(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    first = claim(log, "backup", NOW, kind="manual", key="c1/4")
    again = claim(log, "backup", NOW + 900, kind="manual", key="c1/4", group=NOW * 1_000_000 + 9000)
    assert again["duplicate"] and again["executions"] == first["executions"]
    other = claim(log, "backup", NOW + 900, kind="manual", key="c1/5", group=NOW * 1_000_000 + 9000)
    assert not other.get("duplicate") and len(fsm.executions("backup")) == 2
    log.apply("job.delete", name="backup")
    log.apply("job.put", job=job("backup"))
    assert not claim(log, "backup", NOW + 5, kind="manual", key="c1/4").get("duplicate")  # a new job


def test_a_claim_of_an_unknown_kind_or_a_stale_term_is_refused(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    assert claim(log, "backup", NOW, kind="whim")["error"] == "bad_request"
    assert claim(log, "backup", NOW, term=4)["error"] == "not_leader"


# -- bounds ----------------------------------------------------------------------------------


def test_a_job_that_never_finds_a_node_keeps_its_history_limit_and_catch_up_window_after_300_ticks(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("nowhere", schedule="@every 1s", history_limit=5, catchup_window="30s"))
    for i in range(300):
        log.apply("run.skip", job="nowhere", ticks=[NOW + i * 1000], reason="no alive node offers executor 'shell'")
    assert len(fsm.executions("nowhere", limit=1000)) == 5
    assert fsm.job("nowhere")["skipped_count"] == 300
    assert models.job_to_dkron(fsm.job("nowhere"))["skipped_count"] == 300
    ticks = [r[0] for r in fsm.db.execute_sql("SELECT scheduled_at FROM tickrow WHERE job = 'nowhere'")]
    assert len(ticks) == 31 and min(ticks) == NOW + 269_000  # the newest and 30 s behind it


def test_a_claim_of_a_tick_older_than_the_catch_up_window_is_refused_with_a_reason(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", catchup_window="30s"))
    claim(log, "backup", NOW + 60_000)
    refused = claim(log, "backup", NOW + 29_000)
    assert refused["error"] == "conflict" and "older than its catch-up window (30s)" in refused["message"]
    assert claim(log, "backup", NOW + 30_000)["executions"]  # at the edge: still claimable, once
    assert claim(log, "backup", NOW + 30_000)["error"] == "conflict"


def test_skips_under_forbid_are_counted_and_trimmed_like_finished_runs(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", concurrency="forbid", history_limit=3))
    (running,) = claim(log, "backup", NOW)["executions"]
    for i in range(1, 8):
        assert "forbid" in claim(log, "backup", NOW + i * 10_000)["skipped"]
    assert "forbid" in claim(log, "backup", NOW + 80_000, kind="manual", key="c/1")["skipped"]
    stored = fsm.job("backup")
    assert stored["skipped_count"] == 8
    kept = [x["status"] for x in fsm.executions("backup")]
    assert kept == ["skipped"] * 3 + ["claimed"]  # the limit's finished rows, and the run still going
    reset = log.apply("exec.delete_all", job="backup")["job"]
    assert reset["skipped_count"] == 0


def test_a_skip_notice_counts_its_ticks(fsm):
    log = Log(fsm)
    hook = {"type": "webhook", "rule": "on_skipped", "url": "http://hooks/x"}
    log.apply("job.put", job=job("backup", notifications=[hook]))
    done = log.apply("run.skip", job="backup", ticks=[NOW, NOW + 1000, NOW + 2000], reason="misfire policy skip")
    (notice,) = done["effects"]
    assert notice["body"]["event"] == "skipped" and notice["body"]["count"] == 3
    assert log.apply("run.skip", job="backup", ticks=[NOW], reason="again")["effects"] == []  # recorded before
