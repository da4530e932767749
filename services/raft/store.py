"""Durable Raft log and hard state in one SQLite file (stdlib sqlite3). WAL with
synchronous=FULL, one transaction per Ready, so the commit is the fsync the core waits for."""

import sqlite3

from services.raft.core import Entry


class LogStore:
    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS entry (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
                        "term INTEGER NOT NULL, vote TEXT NOT NULL, commit_index INTEGER NOT NULL)")
        self.fsyncs = 0

    def load(self):
        row = self.db.execute("SELECT term, vote, commit_index FROM hard_state").fetchone()
        entries = [Entry(i, t, bytes(d)) for i, t, d in self.db.execute("SELECT idx, term, data FROM entry ORDER BY idx")]
        return (tuple(row) if row else (0, "", 0)), entries

    def save(self, hard_state, entries):
        """Replace the log from entries[0].index on and store the hard state, in one fsync."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if entries:
                self.db.execute("DELETE FROM entry WHERE idx >= ?", (entries[0].index,))
                self.db.executemany("INSERT INTO entry (idx, term, data) VALUES (?, ?, ?)",
                                    [(e.index, e.term, e.data) for e in entries])
            if hard_state:
                self.db.execute("INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?)",
                                hard_state)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.fsyncs += 1

    def pragmas(self):
        return {"journal_mode": self.db.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": self.db.execute("PRAGMA synchronous").fetchone()[0]}

    def close(self):
        self.db.close()
