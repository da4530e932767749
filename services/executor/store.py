"""The executor's local SQLite: every execution id this node started or waits to start
(fsync'd before it starts, so a re-sent run starts nothing new, even after a crash), each
final record until the leader confirms it, and the full output served on the output port.
Writes gather in one transaction that the shell commits once per loop round."""

import json
import sqlite3
import time

from common import schema
from services.executor.schema import EXECUTOR

KEEP_EXECUTIONS = 10_000  # ids remembered; far more than any re-send window needs


class ExecutionStore:
    def __init__(self, path):
        schema.check_whole(path, f"move it and its -wal file aside and start again (the runs it held are "
                                 f"recorded lost by the leader; a result not yet confirmed is lost with it)")
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.begun = 0.0
        self.starts_written = False  # a run's id written and not committed: commit before it starts
        schema.migrate(self.db, path, EXECUTOR)

    def started_ids(self):
        return {row[0] for row in self.db.execute("SELECT id FROM execution")}

    def write(self, sql, args=()):
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
            self.begun = time.monotonic()
        self.db.execute(sql, args)

    def commit(self):
        """Makes every write since the last commit durable (one fsync)."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self.starts_written = False

    def waited_ms(self):
        """How long the oldest write not yet committed has waited (0: none)."""
        return (time.monotonic() - self.begun) * 1000 if self.db.in_transaction else 0

    def start(self, execution):
        self.starts_written = True
        self.write("INSERT OR IGNORE INTO execution (id, job, started) VALUES (?, ?, ?)",
                   (execution["id"], execution["job"], json.dumps(execution)))

    def forget(self, execution_id):
        """A stored run that never started (its start time has not come): a run.start sent
        again may start it."""
        self.write("DELETE FROM execution WHERE id = ? AND record IS NULL", (execution_id,))

    def finish(self, record, head, size):
        self.write("UPDATE execution SET record = ? WHERE id = ?", (json.dumps(record), record["id"]))
        self.write("INSERT OR REPLACE INTO output (id, data, size) VALUES (?, ?, ?)", (record["id"], bytes(head), size))

    def confirm(self, execution_id):
        self.write("UPDATE execution SET confirmed = 1 WHERE id = ?", (execution_id,))

    def record(self, execution_id):
        row = self.db.execute("SELECT record FROM execution WHERE id = ?", (execution_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def unconfirmed(self):
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT record FROM execution WHERE record IS NOT NULL AND confirmed = 0 ORDER BY seq")]

    def orphans(self):
        """Executions started but never finished: this process died while they ran."""
        return [json.loads(r[0]) for r in self.db.execute("SELECT started FROM execution WHERE record IS NULL")]

    def job_of(self, execution_id):
        row = self.db.execute("SELECT job FROM execution WHERE id = ?", (execution_id,)).fetchone()
        return row[0] if row else None

    def output(self, execution_id):
        row = self.db.execute("SELECT data, size FROM output WHERE id = ?", (execution_id,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def prune(self):
        self.write("DELETE FROM output WHERE id IN (SELECT id FROM execution WHERE confirmed = 1 "
                   "ORDER BY seq DESC LIMIT -1 OFFSET ?)", (KEEP_EXECUTIONS,))
        self.write("DELETE FROM execution WHERE confirmed = 1 AND seq NOT IN "
                   "(SELECT seq FROM execution ORDER BY seq DESC LIMIT ?)", (KEEP_EXECUTIONS,))
        self.commit()

    def close(self):
        self.commit()
        self.db.close()
