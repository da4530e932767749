"""Replicas compare their states through Raft: at every snapshot point (each `snapshot_entries`-th
entry) each server hashes its state -- a canonical dump of every table, the same on every replica
that applied the same log -- and reports it (state.check); two hashes that differ at one index are
a divergence every replica reports loudly (log, metric, status)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3

from services.raft.runs import failure

CHECKS_KEPT = 8  # snapshot points whose reports are kept
SERVER_NAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def hash_state(conn):
    """sha256 of every table but the reports themselves, rows in a total order: equal on two
    replicas exactly when they hold the same state."""
    digest = hashlib.sha256()
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'checkrow' ORDER BY name")]
    for table in tables:
        columns = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
        digest.update(table.encode() + b"\0")
        order = ", ".join(str(i) for i in range(1, columns + 1))
        for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
            digest.update(json.dumps(row, default=lambda b: bytes(b).hex()).encode() + b"\n")
    return digest.hexdigest()


def hash_pinned(reader):
    """hash_state on a pinned_reader, which it then closes (on the hashing thread)."""
    try:
        return hash_state(reader)
    finally:
        reader.close()


class StateChecks:
    diverged = ()  # (index, {server: digest}) found by the last batch, for the shell to report

    def checksum(self):
        return hash_state(self.db.connection())

    def pinned_reader(self):
        """A connection of its own whose read transaction sees the state as it is now, whatever
        is applied next (WAL): the state can be hashed as of this entry on another thread."""
        reader = sqlite3.connect(self.db.database, check_same_thread=False, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM metarow").fetchone()  # the read snapshot starts here
        return reader

    def apply_state_check(self, entry_term, server, index, checksum):
        if not (isinstance(server, str) and SERVER_NAME.match(server) and type(index) is int
                and 0 < index < 1 << 62 and isinstance(checksum, str) and DIGEST.match(checksum)):
            return failure("bad_request", "state.check: expected a server name, an index and a sha256 hex digest")
        self._run("INSERT INTO checkrow (idx, server, checksum) VALUES (?, ?, ?)"
                  " ON CONFLICT DO UPDATE SET checksum = excluded.checksum", (index, server, checksum))
        reports = dict(self.db.execute_sql("SELECT server, checksum FROM checkrow WHERE idx = ?", (index,)).fetchall())
        agree = len(set(reports.values())) == 1
        if not agree:
            self.diverged = [*self.diverged, (index, reports)]
        self._run("DELETE FROM checkrow WHERE idx < (SELECT MIN(idx) FROM "
                  "(SELECT DISTINCT idx FROM checkrow ORDER BY idx DESC LIMIT ?))", (CHECKS_KEPT,))
        return {"index": index, "agree": agree}

    def state_checks(self):
        """The newest snapshot points compared: {index, agree, reports} each, newest first."""
        points = {}
        for index, server, checksum in self.db.execute_sql(
                "SELECT idx, server, checksum FROM checkrow ORDER BY idx DESC, server"):
            points.setdefault(index, {})[server] = checksum
        return [{"index": i, "agree": len(set(r.values())) == 1, "reports": r} for i, r in points.items()]
