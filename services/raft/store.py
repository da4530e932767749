"""Durable Raft log, hard state and snapshot metadata in one SQLite file (stdlib sqlite3).
WAL with synchronous=FULL and one transaction per Ready, so its commit is the fsync the core
waits for; the state machine's snapshot files sit beside it."""

import json
import os
import sqlite3

from common import schema
from services.raft.log_schema import RAFT_LOG
from services.raft.raftlog import Entry, Membership, Snapshot


class LogStore:
    def __init__(self, path, recover=""):
        self.path = path
        schema.check_whole(path, recover)
        self.fresh = not os.path.exists(path)  # made now: whatever state.db holds was not applied from it
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        schema.migrate(self.db, path, RAFT_LOG)
        self.db.execute("INSERT OR IGNORE INTO store (id, store_id) VALUES (1, ?)", (os.urandom(8).hex(),))
        # Made once with the file: a server that returns with another id lost its Raft state.
        self.store_id = self.db.execute("SELECT store_id FROM store").fetchone()[0]
        self.fsyncs = 0

    def load(self):
        """(hard_state, snapshot or None, entries after the snapshot)."""
        row = self.db.execute("SELECT term, vote, commit_index FROM hard_state").fetchone()
        snap = self.db.execute("SELECT idx, term, membership FROM snapshot").fetchone()
        snapshot = Snapshot(snap[0], snap[1], Membership.from_plain(json.loads(snap[2]))) if snap else None
        first = snapshot.index if snapshot else 0
        entries = [Entry(i, t, bytes(d), k) for i, t, d, k in
                   self.db.execute("SELECT idx, term, data, kind FROM entry WHERE idx > ? ORDER BY idx", (first,))]
        return (tuple(row) if row else (0, "", 0)), snapshot, entries

    def save(self, hard_state, entries, snapshot=None):
        """In one transaction (one fsync): a received snapshot replaces the whole log; entries
        replace the log from entries[0].index on; the hard state is overwritten."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if snapshot:
                self.db.execute("DELETE FROM entry")
                self._save_snapshot(snapshot)
            if entries:
                self.db.execute("DELETE FROM entry WHERE idx >= ?", (entries[0].index,))
                self.db.executemany("INSERT INTO entry (idx, term, data, kind) VALUES (?, ?, ?, ?)",
                                    [(e.index, e.term, e.data, e.kind) for e in entries])
            if hard_state:
                self.db.execute("INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?)",
                                hard_state)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.fsyncs += 1

    def compact(self, snapshot):
        """The state machine's snapshot file at snapshot.index is durable: drop the log up to it."""
        self.db.execute("BEGIN IMMEDIATE")
        self._save_snapshot(snapshot)
        self.db.execute("DELETE FROM entry WHERE idx <= ?", (snapshot.index,))
        self.db.execute("COMMIT")

    def _save_snapshot(self, snapshot):
        self.db.execute("INSERT OR REPLACE INTO snapshot (id, idx, term, membership) VALUES (1, ?, ?, ?)",
                        (snapshot.index, snapshot.term, json.dumps(snapshot.membership.to_plain())))

    def pragmas(self):
        return {"journal_mode": self.db.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": self.db.execute("PRAGMA synchronous").fetchone()[0]}

    def close(self):
        self.db.close()
