"""Migrations of raft-log.db, the Raft log, hard state and snapshot metadata (services/raft/
store.py), oldest first. Each is a small function run once per file inside common.schema.migrate's
transaction; a new one is appended, never edited."""

from common.schema import Schema


def tables(db):
    """The first schema, as the release before versions made it."""
    for statement in (
            """CREATE TABLE IF NOT EXISTS entry (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,
                                                 data BLOB NOT NULL, kind INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL,
                                                      vote TEXT NOT NULL, commit_index INTEGER NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,
                                                    term INTEGER NOT NULL, membership TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS store (id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL)"""):
        db.execute(statement)


RAFT_LOG = Schema("raft-log", 0x706B6C67, (tables,))  # "pklg"
