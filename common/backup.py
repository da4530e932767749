"""The backup file: a consistent copy of the replicated state (SQLite's own format) behind a
header that says what it is -- format, schema version, cluster id, term and index, checksum.
Written by `pykronctl snapshot save` and the leader's scheduled backups, read by `inspect`."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile

from common import errors

MAGIC = b"PYKRON-SNAPSHOT\n"
FORMAT = 1
HEADER_MAX = 4096
# What inspect counts, by table; secrets (tokens' hashes, executor_config values) are never shown.
COUNTS = {"jobs": "jobrow", "executions": "executionrow", "claimed_ticks": "tickrow", "settings": "settingrow",
          "keys": "keyrow", "tokens": "tokenrow", "policies": "policyrow", "audit_entries": "auditrow",
          "pending_retries": "retryrow", "pending_effects": "effectrow"}


def write(path, header, chunks):
    """header: {schema, cluster, term, index, checksum (sha256 of the state's bytes), size};
    chunks: the state's bytes. Written 0600 (it holds token hashes) beside, then renamed."""
    tmp = f"{path}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older .part left with other bits
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + json.dumps({"format": FORMAT, **header}, sort_keys=True).encode() + b"\n")
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != header["checksum"]:
            raise errors.Unavailable("the state received does not match its checksum; nothing was saved")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_header(path):
    """(header, offset of the state's bytes); BadRequest naming the file when it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC) + HEADER_MAX)
    except OSError as exc:
        raise errors.BadRequest(f"{path}: {exc.strerror}") from None
    if not head.startswith(MAGIC) or b"\n" not in head[len(MAGIC):]:
        raise errors.BadRequest(f"{path}: not a pykron snapshot (it starts with {head[:16]!r})")
    line = head[len(MAGIC):].split(b"\n", 1)[0]
    try:
        header = json.loads(line)
    except ValueError:
        raise errors.BadRequest(f"{path}: the snapshot's header does not decode") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise errors.BadRequest(f"{path}: snapshot format {header.get('format') if isinstance(header, dict) else '?'}"
                                f", this pykron reads {FORMAT}")
    return header, len(MAGIC) + len(line) + 1


def checksum(path, block=1 << 20):
    """The sha256 of a whole file, read a block at a time (a state's copy, before its header)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def inspect(path):
    """What is in a snapshot file, checked against its checksum: its header and counts."""
    header, offset = read_header(path)
    digest = hashlib.sha256()
    with open(path, "rb") as src, tempfile.NamedTemporaryFile(suffix=".db") as copy:
        os.fchmod(copy.fileno(), 0o600)
        src.seek(offset)
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            copy.write(chunk)
        copy.flush()
        if digest.hexdigest() != header.get("checksum"):
            raise errors.BadRequest(f"{path}: the state does not match the header's checksum (damaged or cut short)")
        conn = sqlite3.connect(f"file:{copy.name}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            counts = {what: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                      for what, table in COUNTS.items() if table in tables}
            if "keyrow" in tables:
                counts["keys"] = dict(conn.execute("SELECT status, COUNT(*) FROM keyrow GROUP BY status").fetchall())
        except sqlite3.DatabaseError as exc:
            raise errors.BadRequest(f"{path}: the state inside does not read: {exc}") from None
        finally:
            conn.close()
    return {**{k: header.get(k) for k in ("format", "schema", "cluster", "term", "index", "taken_at", "size",
                                           "checksum")}, "counts": counts}
