"""The state machine is total (services/raft/fsm.py, refusal.py): an entry that cannot apply is
refused with a fixed reason and leaves nothing behind, one bad item of a batch does not fail
the others, and a fault of the machine (a full disk) is raised, never recorded as a refusal."""

import pytest

from services.raft import refusal
from tests.unit.raft.test_followups import claim, record, result
from tests.unit.raft.test_fsm import NOW, Log, fsm, job  # noqa: F401 (fsm is a fixture)

DEEP = 990


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


# Each of these crash-looped every replica before: the exception escaped apply.
POISON = [
    ("an exec.result's group past int64", "exec.finish", lambda e: {"execution": dict(e, group=2**64 - 1)}),
    ("a list where an id belongs", "exec.ack", lambda e: {"job": "backup", "id": ["x"], "started_at": NOW}),
    ("nesting 990 deep", "exec.finish", lambda e: {"execution": dict(e, output=nested(DEEP))}),
    ("a tick past int64", "tick.skip", lambda e: {"job": "backup", "ticks": [2**63], "reason": "x"}),
    ("a claim with a map for its time", "tick.claim", lambda e: {"job": "backup", "scheduled_at": {}, "group": 1,
                                                                 "term": 1, "executions": []}),
    ("an unknown argument", "job.delete", lambda e: {"name": "backup", "extra": 1}),
    ("a missing argument", "job.put", lambda e: {}),
    ("args that are not a map", "job.put", lambda e: None),
]


@pytest.mark.parametrize("what,op,args", POISON, ids=[p[0] for p in POISON])
def test_a_poison_entry_is_refused_with_a_fixed_reason_and_leaves_nothing(fsm, what, op, args):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    (execution,) = claim(log, "backup", NOW)["executions"]
    before = fsm.job("backup"), fsm.executions("backup")
    command = {"op": op, "args": args(result(execution)), "req": "r"}
    answer = log.command(command)
    assert answer["error"] == "bad_request" and answer["message"].startswith("malformed ")
    assert "0x" not in answer["message"] and str(2**63) not in answer["message"]  # no exception text
    assert (fsm.job("backup"), fsm.executions("backup")) == before
    assert fsm.applied == log.index  # applied, as a refusal: the next entry follows
    assert Log(fsm).apply("job.put", job=job("next"))["job"]["name"] == "next"


def test_entries_that_are_not_commands_are_refused(fsm):
    log = Log(fsm)
    for command in ([1, 2], "job.put", {"op": "job.put", "client": ["c"], "seq": 1}):
        assert log.command(command)["error"] == "bad_request"


def test_two_replicas_refuse_the_same_poison_alike(tmp_path):
    from services.raft.fsm import StateMachine
    answers = []
    for name in ("a", "b"):
        sm = StateMachine(str(tmp_path / f"{name}.db"))
        log = Log(sm)
        log.apply("job.put", job=job("backup"))
        answers.append(log.command({"op": "exec.ack", "args": {"job": "backup", "id": 2**64 - 1, "started_at": 1},
                                    "req": "r"}))
        sm.close()
    assert answers[0] == answers[1]


def test_one_bad_result_in_a_record_does_not_fail_the_others(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    (first,) = claim(log, "backup", NOW)["executions"]
    (second,) = claim(log, "backup", NOW + 10_000)["executions"]
    good, bad = result(first), dict(result(second), group=2**63)
    answers = record(log, good, bad)
    assert answers[0]["execution"]["status"] == "success"
    assert answers[1]["error"] == "bad_request"
    assert fsm.execution("backup", first["id"])["status"] == "success"
    assert fsm.execution("backup", second["id"])["status"] == "claimed"  # the bad one left nothing
    assert fsm.job("backup")["success_count"] == 1


def test_a_full_disk_is_raised_and_rolls_the_batch_back_then_applies_once_it_has_room(fsm):
    log = Log(fsm)
    log.apply("job.put", job=job("backup"))
    applied, seq = fsm.applied, fsm.job_seq
    pages = fsm.db.execute_sql("PRAGMA page_count").fetchone()[0]
    fsm.db.execute_sql(f"PRAGMA max_page_count = {pages}")
    big = job("big", metadata={f"k{i}": "x" * 1000 for i in range(64)})
    with pytest.raises(Exception) as caught:
        log.apply("job.put", job=big)
    assert refusal.environmental(caught.value)
    assert fsm.applied == applied and fsm.job_seq == seq and fsm.job("big") is None
    fsm.db.execute_sql("PRAGMA max_page_count = 1073741823")
    log.index -= 1  # the same entry, applied again
    assert log.apply("job.put", job=big)["job"]["name"] == "big"
    assert fsm.applied == applied + 1


def test_what_is_environmental():
    import sqlite3
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    assert refusal.environmental(full) and refusal.environmental(OSError(5, "EIO"))
    assert not refusal.environmental(OverflowError("x")) and not refusal.environmental(RecursionError())
    constraint = sqlite3.IntegrityError("UNIQUE")
    constraint.sqlite_errorcode = 2067
    assert not refusal.environmental(constraint)


def test_a_page_of_jobs_is_cut_by_bytes_and_says_there_is_more(fsm):
    log = Log(fsm)
    for i in range(6):
        log.apply("job.put", job=job(f"j{i}", metadata={"k": "x" * 3000}))
    jobs, more = fsm.job_page("", 1000, max_bytes=11_000)
    assert [j["name"] for j in jobs] == ["j0", "j1", "j2"] and more
    jobs, more = fsm.job_page("j2", 1000, max_bytes=11_000)
    assert [j["name"] for j in jobs] == ["j3", "j4", "j5"] and not more
    assert fsm.job_page("", 2)[1] and not fsm.job_page("j3", 2)[1]
    assert len(fsm.job_page("", 10, max_bytes=1)[0]) == 1  # one job at least, whatever its size


def test_unfinished_runs_come_in_pages_cut_by_bytes(fsm):
    from tests.unit.raft.test_followups import claim
    log = Log(fsm)
    log.apply("job.put", job=job("big", metadata={"k": "x" * 3000}))
    for i in range(5):
        claim(log, "big", NOW + 1000 * i)
    runs, more, after, pages = [], True, (0, ""), 0
    while more:
        page, more = fsm.unfinished_page(*after, max_bytes=8000)
        assert page and (len(page) <= 2 or not more)
        runs += page
        last = page[-1]["execution"]
        after, pages = (last["group"], last["id"]), pages + 1
    assert [r["execution"]["id"] for r in runs] == [r["execution"]["id"] for r in fsm.unfinished()]
    assert pages >= 3 and len(runs) == 5
