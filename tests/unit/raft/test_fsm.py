"""services/raft/fsm.py on a real SQLite file: jobs, tick claims and executions as committed
entries change them, and the applied index kept in the same transaction."""

import pytest

from common import models
from common.errors import BadRequest, Halt
from common.wire import NEXT_PROTOCOL
from services.raft.fsm import StateMachine, command

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def fsm(tmp_path):
    sm = StateMachine(str(tmp_path / "state.db"))
    yield sm
    sm.close()


class Log:
    """Feeds commands to a state machine as consecutive committed entries of one term."""

    def __init__(self, sm, term=1):
        self.sm, self.term, self.index = sm, term, sm.applied

    def apply(self, op, **args):
        return self.batch((op, args))[0]

    def batch(self, *commands):
        entries = []
        for op, args in commands:
            self.index += 1
            entries.append((self.index, self.term, dict(command(op, args), req=f"r{self.index}")))
        return self.sm.apply(entries)

    def command(self, command):
        """One whole command (with a client session, say), as the raft shell proposes it."""
        self.index += 1
        return self.sm.apply([(self.index, self.term, command)])[0]


def job(name, **fields):
    return models.validate_job({"name": name, "schedule": "@every 10s", "executor": "shell",
                                "executor_config": {"command": "true"}, **fields}, now=NOW)


def execution(name, node="web1", group=1, **fields):
    return dict(models.new_execution(name, node, group=group, scheduled_at=NOW), **fields)


def finished(name, success=True, node="web1", group=1, at=NOW + 5000):
    return execution(name, node, group, status="success" if success else "failed", success=success,
                     started_at=NOW, finished_at=at, exit_code=0 if success else 1)


def test_job_put_stores_the_job_with_fresh_state(fsm):
    result = Log(fsm).apply("job.put", job=job("backup"))
    stored = fsm.job("backup")
    assert result == {"job": stored}
    assert stored["success_count"] == 0 and stored["error_count"] == 0 and stored["status"] == ""
    assert stored["created_at"] == NOW and stored["dependent_jobs"] == []
    assert [j["name"] for j in fsm.jobs()] == ["backup"]


def test_job_upsert_keeps_counters_and_created_at(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1, executions=[execution("backup")])
    log.apply("exec.finish", execution=finished("backup"))
    update = dict(job("backup", schedule="@hourly", owner="ops"), created_at=NOW + 99_000)
    log.apply("job.put", job=update)
    stored = fsm.job("backup")
    assert (stored["schedule"], stored["owner"]) == ("@hourly", "ops")
    assert stored["created_at"] == NOW  # @every keeps its first anchor
    assert (stored["success_count"], stored["status"], stored["last_success_at"]) == (1, "success", NOW + 5000)
    assert stored["last_scheduled_at"] == NOW


def test_job_put_reports_each_change_for_the_state_feed(fsm):
    log = Log(fsm)
    log.batch(("job.put", {"job": job("a")}), ("job.put", {"job": job("b")}))
    assert [(seq, name) for seq, name, _ in fsm.changes] == [(1, "a"), (2, "b")]
    log.apply("job.delete", name="a")
    assert fsm.changes == [(3, "a", None)]


def test_child_job_needs_its_parent(fsm):
    result = Log(fsm).apply("job.put", job=job("child", parent_job="nightly"))
    assert result["error"] == "not_found"
    assert fsm.job("child") is None


def test_parent_lists_its_dependent_jobs(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("nightly"))
    log.apply("job.put", job=job("other"))
    log.apply("job.put", job=job("child", parent_job="nightly"))
    log.apply("job.put", job=job("child2", parent_job="nightly"))
    assert fsm.job("nightly")["dependent_jobs"] == ["child", "child2"]
    log.apply("job.put", job=job("child", parent_job="other"))  # moved to another parent
    assert fsm.job("nightly")["dependent_jobs"] == ["child2"]
    assert fsm.job("other")["dependent_jobs"] == ["child"]
    log.apply("job.put", job=job("child", parent_job="other"))  # again: not listed twice
    assert fsm.job("other")["dependent_jobs"] == ["child"]


def test_upsert_keeps_the_dependents_of_a_parent(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("nightly"))
    log.apply("job.put", job=job("child", parent_job="nightly"))
    log.apply("job.put", job=job("nightly", owner="ops"))
    assert fsm.job("nightly")["dependent_jobs"] == ["child"]


def test_delete_is_refused_while_the_job_has_dependents(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("nightly"))
    log.apply("job.put", job=job("child", parent_job="nightly"))
    result = log.apply("job.delete", name="nightly")
    assert result["error"] == "conflict" and "child" in result["message"]
    assert fsm.job("nightly") is not None


def test_delete_of_a_child_frees_its_parent(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("nightly"))
    log.apply("job.put", job=job("child", parent_job="nightly"))
    assert log.apply("job.delete", name="child")["job"]["name"] == "child"
    assert fsm.job("nightly")["dependent_jobs"] == []
    assert "error" not in log.apply("job.delete", name="nightly")
    assert fsm.jobs() == []


def test_delete_removes_executions_and_claims(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1, executions=[execution("backup")])
    log.apply("job.delete", name="backup")
    assert fsm.executions("backup") == []
    log.apply("job.put", job=job("backup"))  # a new job of the same name may claim that tick again
    result = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1, executions=[])
    assert "error" not in result


def test_delete_of_an_unknown_job(fsm):
    assert Log(fsm).apply("job.delete", name="ghost")["error"] == "not_found"


def test_tick_claim_stores_executions_and_last_scheduled_at(fsm):
    log = Log(fsm, term=4)
    log.apply("job.put", job=job("backup"))
    ex = [execution("backup", "web1"), execution("backup", "web2")]
    result = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=4, executions=ex)
    assert result == {"executions": ex}
    assert {e["node"] for e in fsm.executions("backup")} == {"web1", "web2"}
    assert fsm.job("backup")["last_scheduled_at"] == NOW


def test_tick_claim_of_a_stale_term_is_rejected(fsm):
    log = Log(fsm, term=5)
    log.apply("job.put", job=job("backup"))
    result = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=4, executions=[execution("backup")])
    assert result["error"] == "not_leader"
    assert fsm.executions("backup") == []
    assert fsm.job("backup")["last_scheduled_at"] is None


def test_second_claim_of_the_same_tick_is_rejected(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    first = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1,
                      executions=[execution("backup", group=1)])
    second = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=2, term=1,
                       executions=[execution("backup", group=2)])
    assert "error" not in first and second["error"] == "conflict"
    assert [e["group"] for e in fsm.executions("backup")] == [1]


def test_manual_runs_are_not_tick_claims(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    for group in (1, 2):
        result = log.apply("tick.claim", job="backup", scheduled_at=NOW, group=group, term=1, manual=True,
                           executions=[execution("backup", group=group, manual=True)])
        assert "error" not in result
    assert len(fsm.executions("backup")) == 2
    assert fsm.job("backup")["last_scheduled_at"] is None


def test_claim_for_an_unknown_job(fsm):
    result = Log(fsm).apply("tick.claim", job="ghost", scheduled_at=NOW, group=1, term=1, executions=[])
    assert result["error"] == "not_found"


def test_ack_then_finish(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    ex = execution("backup")
    log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1, executions=[ex])
    acked = log.apply("exec.ack", job="backup", id=ex["id"], started_at=NOW + 10)["execution"]
    assert (acked["status"], acked["started_at"]) == ("running", NOW + 10)
    assert fsm.execution("backup", ex["id"])["status"] == "running"
    log.apply("exec.ack", job="backup", id=ex["id"], started_at=NOW + 99)  # a re-sent ack changes nothing
    assert fsm.execution("backup", ex["id"])["started_at"] == NOW + 10
    log.apply("exec.finish", execution=finished("backup", success=False, at=NOW + 700))
    stored = fsm.job("backup")
    assert (stored["error_count"], stored["success_count"], stored["status"]) == (1, 0, "failed")
    assert stored["last_error_at"] == NOW + 700 and stored["last_success_at"] is None
    assert fsm.execution("backup", ex["id"])["status"] == "failed"


def test_ack_after_finish_changes_nothing(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("exec.finish", execution=finished("backup"))
    log.apply("exec.ack", job="backup", id=finished("backup")["id"], started_at=NOW + 99)
    assert fsm.execution("backup", finished("backup")["id"])["status"] == "success"


def test_a_batched_record_applies_its_acks_then_its_finishes_each_with_its_own_result(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    one, two = execution("backup", node="web1"), execution("backup", node="web2")
    log.apply("tick.claim", job="backup", scheduled_at=NOW, group=1, term=1, executions=[one, two])
    result = log.apply("exec.record", acks=[{"job": "backup", "id": one["id"], "started_at": NOW + 10},
                                            {"job": "backup", "id": "nope", "started_at": NOW}],
                       finishes=[finished("backup", node="web2"), finished("ghost")])
    assert result["acks"][0]["execution"]["status"] == "running" and result["acks"][1]["error"] == "not_found"
    assert result["finishes"][0]["execution"]["status"] == "success" and result["finishes"][1]["error"] == "not_found"
    assert fsm.execution("backup", one["id"])["status"] == "running"
    assert fsm.execution("backup", two["id"])["status"] == "success" and fsm.job("backup")["success_count"] == 1


@pytest.mark.parametrize("ack", [{"job": "backup", "id": "x"}, {"job": "backup", "id": 5, "started_at": NOW},
                                 {"job": "backup", "id": "x", "started_at": "soon"}, "x",
                                 {"job": "backup", "id": "x", "started_at": NOW, "extra": 1}])
def test_a_malformed_ack_is_refused_before_it_is_proposed(ack):
    with pytest.raises(BadRequest):
        models.check_ack(ack)


def test_ack_of_an_unknown_execution(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    assert log.apply("exec.ack", job="backup", id="nope", started_at=NOW)["error"] == "not_found"


def test_finish_counts_each_node_of_a_group(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("exec.finish", execution=finished("backup", node="web1", at=NOW + 1000))
    log.apply("exec.finish", execution=finished("backup", node="web2", at=NOW + 3000))
    log.apply("exec.finish", execution=finished("backup", node="web3", success=False, at=NOW + 2000))
    stored = fsm.job("backup")
    assert (stored["success_count"], stored["error_count"]) == (2, 1)
    assert stored["last_success_at"] == NOW + 3000  # the latest, not the last applied
    assert stored["status"] == "partially_failed"  # Dkron's name for a group with both outcomes


def test_finish_is_idempotent(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    first = log.apply("exec.finish", execution=finished("backup"))
    again = log.apply("exec.finish", execution=finished("backup", success=False, at=NOW + 9000))
    assert "duplicate" not in first and again["duplicate"] is True
    assert again["execution"]["success"] is True
    stored = fsm.job("backup")
    assert (stored["success_count"], stored["error_count"]) == (1, 0)


def test_skipped_execution_counts_nothing(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("exec.finish", execution=dict(execution("backup"), status="skipped", reason="forbid"))
    stored = fsm.job("backup")
    assert (stored["success_count"], stored["error_count"], stored["status"]) == (0, 0, "")
    assert fsm.execution("backup", execution("backup")["id"])["reason"] == "forbid"


def test_finish_for_an_unknown_job(fsm):
    assert Log(fsm).apply("exec.finish", execution=finished("ghost"))["error"] == "not_found"


def test_history_is_trimmed_to_the_jobs_history_limit(fsm):
    log = Log(fsm)
    log.apply("job.put", job={**job("backup"), "history_limit": 3})
    for group in range(1, 6):
        log.apply("exec.finish", execution=finished("backup", group=group))
    assert [e["group"] for e in fsm.executions("backup")] == [5, 4, 3]


def test_unknown_or_malformed_commands_are_refused_not_raised(fsm):
    log = Log(fsm)
    assert log.apply("job.explode")["error"] == "bad_request"
    assert log.apply("job.delete", nam="x")["error"] == "bad_request"
    assert fsm.applied == 2


def test_empty_entries_only_advance_the_applied_index(fsm):
    assert fsm.apply([(1, 1, None), (2, 1, None)]) == [None, None]
    assert fsm.applied == 2


def test_applied_index_persists_across_reopen(tmp_path):
    path = str(tmp_path / "state.db")
    sm = StateMachine(path)
    Log(sm).batch(("job.put", {"job": job("a")}), ("job.put", {"job": job("b")}))
    sm.apply([(3, 1, None)])
    sm.close()
    again = StateMachine(path)
    try:
        assert again.applied == 3
        assert again.job_seq == 2
        assert [j["name"] for j in again.jobs()] == ["a", "b"]
    finally:
        again.close()


def test_a_failed_batch_leaves_no_trace(fsm, monkeypatch):
    log = Log(fsm)
    log.apply("job.put", job=job("a"))

    def broken(*args, **kwargs):
        raise OSError(5, "disk gone")  # the machine's fault: never a refusal

    monkeypatch.setattr(fsm, "apply_job_delete", broken)
    with pytest.raises(OSError):
        log.batch(("job.put", {"job": job("b")}), ("job.delete", {"name": "a"}))
    assert fsm.applied == 1 and fsm.job("b") is None  # the batch is one transaction
    monkeypatch.undo()  # the instance stays usable
    assert fsm.apply([(2, 1, None)]) == [None] and fsm.applied == 2


def test_malformed_finish_is_refused_not_raised(fsm):
    log = Log(fsm)
    assert log.apply("exec.finish", execution={"id": "x"})["error"] == "bad_request"


def test_pragmas_report_wal_and_full_sync(fsm):
    assert fsm.pragmas() == {"journal_mode": "wal", "synchronous": 2}


def claim(log, name, at, node="web1", manual=False, term=1):
    group = at * 1_000_000
    return log.apply("tick.claim", job=name, scheduled_at=at, group=group, term=term, manual=manual,
                     executions=[models.new_execution(name, node, group=group, scheduled_at=at, manual=manual)])


def test_forbid_skips_a_claim_while_the_job_runs_and_records_why(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", concurrency="forbid"))
    assert claim(log, "backup", NOW)["executions"][0]["status"] == "claimed"
    refused = claim(log, "backup", NOW + 10_000)
    assert "forbid" in refused["skipped"]
    assert refused["executions"][0]["status"] == "skipped" and refused["executions"][0]["scheduled_at"] == NOW + 10_000
    manual = claim(log, "backup", NOW + 11_000, manual=True)  # manual runs honour forbid too (dkron#338)
    assert "forbid" in manual["skipped"]
    statuses = sorted(e["status"] for e in fsm.executions("backup"))
    assert statuses == ["claimed", "skipped", "skipped"]
    assert "conflict" == claim(log, "backup", NOW + 10_000).get("error")  # the skipped tick stays taken


def test_replace_claims_and_names_the_runs_to_stop(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", concurrency="replace"))
    first = claim(log, "backup", NOW)["executions"][0]
    second = claim(log, "backup", NOW + 10_000)
    assert second["replace"] == [first["id"]] and second["executions"][0]["status"] == "claimed"


def test_tick_skip_records_each_tick_and_keeps_them_from_being_claimed(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    ticks = [NOW + i * 1000 for i in range(30)]
    done = log.apply("tick.skip", job="backup", ticks=ticks, reason="misfire policy skip")
    rows = done["executions"]
    assert len(rows) == 20 and "(and 10 earlier ticks)" in rows[0]["reason"]
    assert all(r["status"] == "skipped" for r in rows)
    assert claim(log, "backup", ticks[3])["error"] == "conflict"
    assert fsm.job("backup")["last_scheduled_at"] == ticks[-1]


def test_a_late_result_replaces_lost(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    lost = dict(finished("backup", success=False), status="lost", reason="no heartbeat for 10s")
    log.apply("exec.finish", execution=lost)
    assert fsm.job("backup")["error_count"] == 1
    real = log.apply("exec.finish", execution=finished("backup"))["execution"]
    assert real["status"] == "success" and "marked lost" in real["reason"]
    stored = fsm.job("backup")
    assert (stored["success_count"], stored["error_count"]) == (1, 0)
    assert log.apply("exec.finish", execution=finished("backup", success=False))["duplicate"]


def test_a_group_waits_for_its_retries_and_succeeds_on_the_last_attempt(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup", retries=1))
    failed = dict(finished("backup", success=False), retrying=True)
    first = log.apply("exec.finish", execution=failed)
    assert first["group_done"] is False
    retry = dict(finished("backup"), id="1-web1-2", attempt=2)
    second = log.apply("exec.finish", execution=retry)
    assert second["group_done"] is True and second["group_status"] == "success"
    assert fsm.job("backup")["status"] == "success"


def test_delete_all_executions_resets_the_counters(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    log.apply("exec.finish", execution=finished("backup"))
    reset = log.apply("exec.delete_all", job="backup")["job"]
    assert (reset["success_count"], reset["last_success_at"], reset["status"]) == (0, None, "")
    assert fsm.executions("backup") == []
    assert log.apply("exec.delete_all", job="nope")["error"] == "not_found"


def test_settings_are_checked_and_replicated(fsm):
    log = Log(fsm)
    assert fsm.settings() == {"untagged_jobs": "one", "default_timezone": "", "paused": "false"}
    assert log.apply("settings.put", key="untagged_jobs", value="all")["settings"]["untagged_jobs"] == "all"
    assert log.apply("settings.put", key="untagged_jobs", value="some")["error"] == "bad_request"
    assert log.apply("settings.put", key="colour", value="red")["error"] == "bad_request"


def test_parent_chains_must_not_loop(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("a"))
    log.apply("job.put", job=job("b", parent_job="a"))
    log.apply("job.put", job=job("c", parent_job="b"))
    refused = log.apply("job.put", job=job("a", parent_job="c"))
    assert refused["error"] == "bad_request" and "a -> c -> b -> a" in refused["message"]


def test_unfinished_lists_claimed_and_running_runs_with_their_jobs(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    ex = claim(log, "backup", NOW)["executions"][0]
    claim(log, "backup", NOW + 10_000)
    log.apply("exec.ack", job="backup", id=ex["id"], started_at=NOW + 5)
    runs = fsm.unfinished()
    assert [r["execution"]["status"] for r in runs] == ["running", "claimed"]
    assert runs[0]["job"]["name"] == "backup"


def test_a_retried_write_is_applied_once_and_answered_like_the_first(fsm):
    log = Log(fsm)
    put = {"op": "job.put", "args": {"job": job("backup")}, "client": "c1", "seq": 1}
    first = log.command(put)
    log.apply("exec.finish", execution=finished("backup"))
    again = log.command(put)  # the client retried after a lost reply: nothing is applied twice
    assert again["job"]["name"] == "backup" and again["job"]["success_count"] == 1
    assert first["job"]["success_count"] == 0
    log.command({**put, "seq": 2})
    older = log.command(put)  # a request older than the client's last: refused, not re-applied
    assert older["error"] == "conflict"


def test_jobs_page_by_offset_in_name_order_and_count_them_all(fsm):
    log = Log(fsm)
    for name in ("d", "a", "c", "b", "e"):
        log.apply("job.put", job=job(name))
    assert [j["name"] for j in fsm.jobs(limit=2, offset=1)] == ["b", "c"]
    assert [j["name"] for j in fsm.jobs(after="c", limit=5, offset=1)] == ["e"]
    assert fsm.job_count() == 5


# -- commands of a newer protocol ----------------------------------------------------------


def note(version=None, text="upgraded"):
    command = {"op": "note.put", "args": {"text": text}, "req": "n"}
    if version is not None:
        command["v"] = version
    return command


def test_a_command_of_the_next_protocol_is_unknown_to_a_node_that_does_not_speak_it(fsm):
    """As the release before it would answer, on every replica alike: refused, never applied."""
    assert Log(fsm).command(note())["error"] == "bad_request"
    assert "note" not in fsm.settings()


def test_an_entry_of_a_protocol_this_node_does_not_speak_stops_it_before_applying(fsm):
    """Refusing what replicas of the newer protocol apply would fork the state: stop instead."""
    before = fsm.applied
    with pytest.raises(Halt, match=f"protocol {NEXT_PROTOCOL}.*upgrade pykron on this server"):
        Log(fsm).command(note(NEXT_PROTOCOL))
    assert fsm.applied == before and "note" not in fsm.settings()


def test_the_next_protocols_command_applies_where_it_is_spoken_and_only_with_its_version(tmp_path):
    sm = StateMachine(str(tmp_path / "state.db"), protocol=NEXT_PROTOCOL)
    try:
        log = Log(sm)
        assert log.command(note())["error"] == "bad_request"  # not marked: refused on every replica
        assert log.command(note(NEXT_PROTOCOL))["settings"]["note"] == "upgraded"
        assert log.command(note(NEXT_PROTOCOL, text="x" * 5000))["error"] == "bad_request"
        assert sm.settings()["note"] == "upgraded"
    finally:
        sm.close()


@pytest.mark.parametrize("protocol", [[2, 1], [0, 1], [1], "1..2", [1, 2 ** 63]])
def test_a_server_record_with_a_bad_protocol_range_is_refused(fsm, protocol):
    result = Log(fsm).apply("server.register", name="s1", addrs={}, store="x", protocol=protocol)
    assert result["error"] == "bad_request" and fsm.server_protocols() == {}


# -- job.put_batch (protocol 4): a restore's jobs, many to an entry --------------------------


def test_job_put_batch_applies_each_job_on_its_own_and_says_what_became_of_each(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("old", owner="before"))
    jobs = [job("parent"), job("child", parent_job="parent"), job("orphan", parent_job="ghost"),
            job("old", owner="after"), {"name": "broken"}, "not a map", dict(job("parent"), parent_job="child")]
    refused = [{"name": "early", "error": "bad_request", "message": "no alive node offers executor 'x'"}]
    result = log.apply("job.put_batch", jobs=jobs, refused=refused)
    assert result["results"] == [
        refused[0], {"name": "parent", "created": True}, {"name": "child", "created": True},
        {"name": "orphan", "error": "not_found", "message": "specified parent job not found"},
        {"name": "old", "created": False},
        {"name": "broken", "error": "bad_request", "message": "malformed job.put_batch item: a missing field"},
        {"name": "", "error": "bad_request",
         "message": "malformed job.put_batch item: a field of the wrong type or a missing or unknown field"},
        {"name": "parent", "error": "bad_request",
         "message": "Job validation failed: parent_job makes a cycle: parent -> child -> parent."}]
    assert sorted(j["name"] for j in fsm.jobs()) == ["child", "old", "parent"]
    assert fsm.job("parent")["dependent_jobs"] == ["child"] and fsm.job("old")["owner"] == "after"
    assert [name for _, name, _ in fsm.changes] == ["parent", "parent", "child", "old"]


def test_job_put_batch_is_of_protocol_4_and_a_node_of_3_refuses_it(tmp_path):
    assert command("job.put_batch", {"jobs": []})["v"] == 4
    sm = StateMachine(str(tmp_path / "state.db"), protocol=3)
    try:
        with pytest.raises(Halt, match="protocol 4"):
            Log(sm).command(command("job.put_batch", {"jobs": [job("a")]}))
        assert sm.jobs() == []
    finally:
        sm.close()


def test_job_put_batch_sent_again_is_applied_once(fsm):
    log = Log(fsm)
    sent = dict(command("job.put_batch", {"jobs": [job("a"), job("b")]}), client="c1", seq=7, req="r")
    first = log.command(sent)
    log.apply("job.delete", name="a")
    assert log.command(sent) == first == {"results": [{"name": "a", "created": True}, {"name": "b", "created": True}]}
    assert [j["name"] for j in fsm.jobs()] == ["b"]
