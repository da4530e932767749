"""Migrations of executor.db, the executor's own record of the runs it started (services/
executor/store.py), oldest first. Each is a small function run once per file inside
common.schema.migrate's transaction; a new one is appended, never edited."""

from common.schema import Schema


def tables(db):
    """The first schema, as the release before versions made it."""
    for statement in (
            """CREATE TABLE IF NOT EXISTS execution (
                   seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, job TEXT NOT NULL,
                   started TEXT NOT NULL, record TEXT, confirmed INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE IF NOT EXISTS output (id TEXT PRIMARY KEY, data BLOB NOT NULL, size INTEGER NOT NULL)"""):
        db.execute(statement)


EXECUTOR = Schema("executor", 0x706B6578, (tables,))  # "pkex"
