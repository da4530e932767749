"""A backup restored through Raft (mixed into StateMachine): state.load commands carry a table's
rows from the backup, batch by batch, so every replica loads the same rows in the same order.
A run the backup shows unfinished is loaded lost (its outcome is unknown, and running it again
could run its tick twice); servers, sessions and state checks are the live cluster's own."""

from __future__ import annotations

import json

from services.raft.runs import failure

# In load order: a job's run state before its definition, so that the job feed announces each
# job with its last tick (the scheduler catches up from there, not from its creation); the ACL
# and the keys last, in the batch answered: the token that asked for the restore may be one the
# backup does not hold, and is cut off once the book is written.
TABLES = ("jobstaterow", "jobrow", "executionrow", "tickrow", "settingrow", "retryrow", "effectrow", "requestrow",
          "auditrow", "policyrow", "keyrow", "tokenrow")
MERGED = {"keyrow"}  # added to, never cleared: the live cluster's nodes keep their keys
UNFINISHED = ("claimed", "running")
SCALARS = (str, int, float, type(None))


class StateLoad:
    def columns(self, table):
        return [row[1] for row in self.db.execute_sql(f'PRAGMA table_info("{table}")')]

    def apply_state_load(self, entry_term, table, columns, rows, clear=False, taken_at=0):
        if table not in TABLES:
            return failure("bad_request", f"state.load: {table!r} is not a table a backup restores")
        if columns != self.columns(table):
            return failure("bad_request", f"state.load: {table}'s columns are not this schema's")
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == len(columns) and all(isinstance(v, SCALARS) for v in r) for r in rows):
            return failure("bad_request", f"state.load: {table}'s rows do not fit its columns")
        if clear and table not in MERGED:
            if table == "jobrow":
                for (name,) in self.db.execute_sql("SELECT name FROM jobrow").fetchall():
                    self._changed(name, None)
            self._run(f'DELETE FROM "{table}"')
        if table == "executionrow":
            rows = [self._lost_if_unfinished(columns, row, taken_at) for row in rows]
        if table == "keyrow":
            rows = self._keys_of_names_not_held(columns, rows)
        verb = "INSERT OR IGNORE" if table in MERGED else "INSERT OR REPLACE"
        marks = ", ".join("?" * len(columns))
        names = ", ".join(f'"{c}"' for c in columns)
        for row in rows:
            self._run(f'{verb} INTO "{table}" ({names}) VALUES ({marks})', row)
        if table == "jobrow":
            for row in rows:
                name = row[columns.index("name")]
                self._changed(name, self.job(name))
        if table == "keyrow":
            self.keys_changed = True
        if table in ("tokenrow", "policyrow"):
            self.acl_changed = True
        return {"table": table, "rows": len(rows)}

    def _keys_of_names_not_held(self, columns, rows):
        """The backup's keys for names the live cluster does not hold: a name holds one accepted
        key, and a node restored onto (with its name, but a key of its own) keeps the key its
        peers know it by; had the old key won, the new cluster's nodes would be cut off."""
        held = {name for (name,) in self.db.execute_sql("SELECT DISTINCT name FROM keyrow").fetchall()}
        return [row for row in rows if row[columns.index("name")] not in held]

    @staticmethod
    def _lost_if_unfinished(columns, row, taken_at):
        row = list(row)
        status = columns.index("status")
        if row[status] in UNFINISHED:
            body = json.loads(row[columns.index("body")])
            body.update(status="lost", finished_at=body.get("finished_at") or taken_at or None,
                        reason="restored from a backup taken while it ran: its outcome is unknown")
            row[status], row[columns.index("body")] = "lost", json.dumps(body)
        return row
