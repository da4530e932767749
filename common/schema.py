"""Schema versions of pykron's SQLite files. Each store lists its migrations oldest first
(services/raft/schema.py, services/executor/schema.py); `migrate` runs those a file lacks when it
is opened, in one transaction, and refuses a file that a newer pykron wrote."""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass

from common.errors import Halt

log = logging.getLogger(__name__)


class SchemaError(Halt):
    """A file this code must not open: written by a newer pykron, or not the store it should be."""


@dataclass(frozen=True)
class Schema:
    """A store's schema: `migrations` are functions (connection) → None, oldest first, and the
    schema's version is how many of them a file has had. The version is SQLite's user_version and
    the store's mark its application_id, both in the file's header: a snapshot or a backup copied
    page by page carries them with the data."""

    store: str            # what the file is, in messages: "state", "raft-log", "executor"
    application_id: int
    migrations: tuple

    @property
    def version(self):
        return len(self.migrations)


def migrate(conn, path, schema):
    """Brings the file open on `conn` (autocommit: isolation_level None) up to `schema`; returns
    the version it was at. Raises SchemaError, changing nothing, for a file it must not open."""
    found = check(conn, path, schema)
    if found == schema.version:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        for number, step in enumerate(schema.migrations[found:], start=found + 1):
            step(conn)
            log.info("migrated file=%s store=%s version=%d step=%s", path, schema.store, number, step.__name__)
        conn.execute(f"PRAGMA application_id = {int(schema.application_id)}")
        conn.execute(f"PRAGMA user_version = {int(schema.version)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def check(conn, path, schema):
    """The file's schema version, or SchemaError when this code must not open it."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return _judge(path, schema, app_id, version)


def check_file(path, schema):
    """check() on a file not opened (a snapshot before it is installed): its header is read as
    bytes, so nothing is written beside it."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise SchemaError(f"{path}: not an SQLite file")
    return _judge(path, schema, int.from_bytes(header[68:72], "big", signed=True),
                  int.from_bytes(header[60:64], "big", signed=True))


def _judge(path, schema, app_id, version):
    if app_id not in (0, schema.application_id):
        raise SchemaError(f"{path}: not a pykron {schema.store} file (application id {app_id:#x}); "
                          f"move it away or restore the node's data from a backup")
    if version > schema.version:
        raise SchemaError(f"{path}: {schema.store} schema version {version} is newer than this pykron's "
                          f"{schema.version}; run the pykron that wrote it (a downgrade needs a snapshot restore)")
    return version



def check_whole(path, recover):
    """A file that exists is a whole SQLite database: a corrupt page or a truncated file stops
    the service at start with one line naming it and `recover` (what to do), not with a
    traceback at some later read (and supervisord does not restart a halt)."""
    if not os.path.exists(path):
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        said = " ".join(" ".join(problems).replace("*** in database main ***", "").split())  # one line
        raise Halt(f"{path}: damaged ({said}); {recover}")
