"""services/raft/checks.py: the state's hash is the same on replicas that applied the same log in
different batches (trims happen at fixed indices, not at a batch's end), differs once one state
is changed, and state.check reports are compared per snapshot point."""

import random

from services.raft import fsm as fsm_module
from services.raft.fsm import StateMachine, command
from tests.unit.raft.test_fsm import job


def entries(count):
    """Job writes by many clients, each with its session, as the shell proposes them."""
    out = []
    for index in range(1, count + 1):
        args = {"job": job(f"j{index % 40:02d}", description=f"v{index}")}
        out.append((index, 1, dict(command("job.put", args), req=f"r{index}", client=f"c{index % 97}", seq=index)))
    return out


def apply_in_batches(sm, log, rng):
    i = 0
    while i < len(log):
        size = rng.randint(1, 40)
        sm.apply(log[i:i + size])
        i += size


def test_replicas_that_applied_the_same_log_in_other_batches_hash_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(fsm_module, "SESSION_TRIM_EVERY", 50)
    monkeypatch.setattr(fsm_module, "SESSIONS_KEPT", 20)  # trims really delete
    log = entries(420)  # past the last multiple of the trim interval: a trim at a batch's end would differ
    digests = []
    for seed in (1, 2, 3):
        sm = StateMachine(str(tmp_path / f"state-{seed}.db"))
        try:
            apply_in_batches(sm, log, random.Random(seed))
            digests.append(sm.checksum())
            assert sm.db.execute_sql("SELECT COUNT(*) FROM sessionrow").fetchone()[0] < 97  # trimmed
        finally:
            sm.close()
    assert len(set(digests)) == 1


def test_a_changed_state_hashes_differently_and_the_reports_disagree(tmp_path):
    # One StateMachine open at a time: peewee's models bind to the newest one in a process.
    log = entries(30)
    digests = {}
    for name in ("a", "b"):
        sm = StateMachine(str(tmp_path / f"{name}.db"))
        try:
            sm.apply(log)
            if name == "b":
                sm.db.execute_sql("UPDATE jobrow SET body = json_set(body, '$.owner', 'x') WHERE name = 'j01'")
            digests[name] = sm.checksum()
        finally:
            sm.close()
    assert digests["a"] != digests["b"]
    a = StateMachine(str(tmp_path / "a.db"))
    try:
        report = lambda server, digest, index: (index, 1, dict(command("state.check", {  # noqa: E731
            "server": server, "index": 30, "checksum": digest}), req=f"c{index}"))
        results = a.apply([report("s1", digests["a"], 31), report("s2", digests["b"], 32)])
        assert results[0] == {"index": 30, "agree": True} and results[1] == {"index": 30, "agree": False}
        assert a.diverged and a.diverged[0][0] == 30
        assert a.state_checks()[0]["agree"] is False
        bad = a.apply([(33, 1, dict(command("state.check", {"server": "s1", "index": "x", "checksum": "zz"}), req="r"))])
        assert bad[0]["error"] == "bad_request"
    finally:
        a.close()
