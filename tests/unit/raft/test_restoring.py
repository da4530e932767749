"""services/raft/restoring.py: state.load refuses a table a backup does not restore, columns not
this schema's and rows that do not fit; loads a run the backup shows unfinished as lost; clears
what it replaces but never the keys, and keeps a live node's key for its name."""

import json

import zmq

from services.raft.fsm import StateMachine, command
from tests.unit.raft.test_fsm import execution, job


def load(sm, index, **args):
    return sm.apply([(index, 1, dict(command("state.load", args), req=f"r{index}"))])[0]


def test_state_load(tmp_path):
    sm = StateMachine(str(tmp_path / "state.db"))
    try:
        sm.apply([(1, 1, dict(command("job.put", {"job": job("old")}), req="r1"))])
        columns = sm.columns("executionrow")
        assert load(sm, 2, table="serverrow", columns=["name"], rows=[])["error"] == "bad_request"
        assert load(sm, 3, table="executionrow", columns=columns[:-1], rows=[])["error"] == "bad_request"
        assert load(sm, 4, table="executionrow", columns=columns, rows=[["x"]])["error"] == "bad_request"
        running = dict(execution("old"), status="running")
        row = {"id": running["id"], "job": "old", "grp": 1, "status": "running", "body": json.dumps(running)}
        assert load(sm, 5, table="executionrow", columns=columns, rows=[[row[c] for c in columns]], clear=True,
                    taken_at=1234) == {"table": "executionrow", "rows": 1}
        stored = sm.execution("old", running["id"])
        assert stored["status"] == "lost" and stored["finished_at"] == 1234 and "restored" in stored["reason"]
        jobs = sm.columns("jobrow")
        load(sm, 6, table="jobrow", columns=jobs, rows=[], clear=True)
        assert sm.job("old") is None and ("old", None) in [(n, j) for _, n, j in sm.changes]
        keys = sm.columns("keyrow")
        own, backed_up, old_own = (zmq.curve_keypair()[0].decode() for _ in range(3))
        sm.apply([(7, 1, dict(command("key.accept", {"key": own, "name": "n1", "kind": "agent"}), req="r7"))])
        assert {k["name"] for k in sm.keys()} == {"n1"}
        load(sm, 8, table="keyrow", columns=keys, rows=[[backed_up, "n2", "agent", "accepted"],
                                                        [old_own, "n1", "agent", "accepted"]], clear=True)
        # Added to, never cleared; a name the live cluster holds keeps its own key, alone.
        assert {(k["key"], k["name"]) for k in sm.keys()} == {(own, "n1"), (backed_up, "n2")}
    finally:
        sm.close()
