"""Backups: a consistent copy of the replicated state, taken after a linearizable read (so it
holds every write acknowledged before it was asked for) with SQLite's backup API, served to
`pykronctl snapshot save` in chunks; the leader also writes one every [raft] backup_interval_ms
into backup_dir, keeping the newest backup_keep; and a backup restored: received in chunks,
checked, loaded through Raft (services/raft/restoring.py). common/backup.py is the file's format."""

from __future__ import annotations

import glob
import logging
import os
import sqlite3
import time

from common import backup, errors, messages as m, schema, wire
from services.raft.core import LEADER
from services.raft.restoring import TABLES
from services.raft.state_schema import STATE

log = logging.getLogger(__name__)

CHUNK = 1 << 20          # bytes of state per reply, well under the frame limit
SAVE_TTL_MS = 60_000     # a save not read to its end by then is dropped


class Backups:
    def __init__(self, shell):
        self.shell, self.loop, conf = shell, shell.loop, shell.conf
        self.dir = conf.raft.backup_dir or os.path.join(conf.node.data_dir, "backups")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.keep = conf.raft.backup_keep
        self.saves = {}  # id → (path of the copy, header, expiry timer)
        self.restores = {}  # id → (path of the upload, header, bytes received, force, expiry timer)
        if conf.raft.backup_interval_ms:
            self.loop.every(conf.raft.backup_interval_ms, self.scheduled)

    def on_save(self, env, msg):
        if not msg.id:
            return self.shell.read(env, False, lambda: self.chunk(self.take(), 0))
        if msg.id not in self.saves:
            raise errors.NotFound(f"no save {msg.id!r} here (each is kept {SAVE_TTL_MS // 1000} s; ask again)")
        return self.loop.reply(self.shell.client_router, env, self.chunk(msg.id, msg.offset))

    def take(self):
        """The state as applied now (at least up to a read's index) into a file of its own."""
        fsm, sid = self.shell.fsm, os.urandom(8).hex()
        path = os.path.join(self.dir, f".save-{sid}.db")
        fsm.snapshot_to(path)
        os.chmod(path, 0o600)
        header = {"schema": STATE.version, "cluster": fsm.cluster_id(), "index": fsm.applied,
                  "term": self.shell.core.log.term(fsm.applied) if fsm.applied else 0,
                  "taken_at": self.loop.now(), "size": os.path.getsize(path), "checksum": backup.checksum(path)}
        self.saves[sid] = (path, header, self.loop.after(SAVE_TTL_MS, lambda: self.forget(sid)))
        return sid

    def chunk(self, sid, offset):
        path, header, _ = self.saves[sid]
        if not 0 <= offset <= header["size"]:
            raise errors.BadRequest(f"offset {offset} outside the save's {header['size']} bytes")
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(CHUNK)
        done = offset + len(data) >= header["size"]
        if done:
            self.forget(sid)
        return {"id": sid, "header": header, "offset": offset, "data": data, "done": done}

    def forget(self, sid):
        path, _, timer = self.saves.pop(sid, (None, None, None))
        if path:
            timer.cancel()
            if os.path.exists(path):
                os.unlink(path)

    def scheduled(self):
        """The leader's backup into backup_dir, the oldest beyond backup_keep removed."""
        if self.shell.core.role != LEADER:
            return
        sid = self.take()
        path, header, _ = self.saves[sid]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(header["taken_at"] / 1000))
        out = os.path.join(self.dir, f"pykron-{stamp}-{header['index']}.snap")
        try:
            with open(path, "rb") as fh:
                backup.write(out, header, iter(lambda: fh.read(CHUNK), b""))
            log.info("backup written path=%s index=%d bytes=%d", out, header["index"], header["size"])
        except (OSError, errors.Error) as exc:
            log.error("backup not written path=%s: %s", out, exc)
        finally:
            self.forget(sid)
        for old in sorted(glob.glob(os.path.join(self.dir, "pykron-*.snap")))[:-self.keep]:
            os.unlink(old)

    # -- restore ---------------------------------------------------------------------------

    def on_restore(self, env, msg):
        """A backup's state, received in chunks, then loaded through Raft (state.load batches);
        answered once the last batch has applied."""
        if not msg.id:
            header = msg.header
            if header.get("format") != backup.FORMAT or not isinstance(header.get("size"), int) \
                    or not isinstance(header.get("checksum"), str):
                raise errors.BadRequest("snapshot.restore: the first chunk carries the backup's header")
            rid = os.urandom(8).hex()
            path = os.path.join(self.dir, f".restore-{rid}.db")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            timer = self.loop.after(SAVE_TTL_MS, lambda: self.drop_restore(rid))
            self.restores[rid] = [path, header, 0, msg.force, timer]
        else:
            rid = msg.id
            if rid not in self.restores:
                raise errors.NotFound(f"no restore {rid!r} here (each upload is kept {SAVE_TTL_MS // 1000} s)")
        upload = self.restores[rid]
        path, header, received, force, _ = upload
        if msg.offset != received or received + len(msg.data) > header["size"]:
            raise errors.BadRequest(f"snapshot.restore: a chunk at {msg.offset}, expected {received} "
                                    f"(of {header['size']} bytes)")
        with open(path, "ab") as fh:
            fh.write(msg.data)
        upload[2] = received + len(msg.data)
        if not msg.done:
            return self.loop.reply(self.shell.client_router, env, {"id": rid, "received": upload[2]})
        try:
            self.load(env, path, header, force or msg.force)
        finally:
            self.drop_restore(rid)

    def drop_restore(self, rid):
        path, _, _, _, timer = self.restores.pop(rid, (None, None, None, None, None))
        if path:
            timer.cancel()
            if os.path.exists(path):
                os.unlink(path)

    def load(self, env, path, header, force):
        if os.path.getsize(path) != header["size"] or backup.checksum(path) != header["checksum"]:
            raise errors.BadRequest("snapshot.restore: the state received does not match the header's checksum")
        if not force and (self.shell.fsm.job_count() or self.shell.fsm.db.execute_sql(
                "SELECT 1 FROM executionrow LIMIT 1").fetchone()):
            raise errors.Conflict("this cluster holds jobs: restore into a fresh cluster, or replace its state "
                                  "with --force")
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            schema.migrate(conn, path, STATE)  # a backup of an older release is brought up to this one
            batches = list(self.batches(conn, header))
        except sqlite3.DatabaseError as exc:
            raise errors.BadRequest(f"snapshot.restore: the state does not read: {exc}") from None
        finally:
            conn.close()
        loaded = {}
        for i, (table, columns, rows, clear) in enumerate(batches):
            loaded[table] = loaded.get(table, 0) + len(rows)
            last = i == len(batches) - 1
            self.shell.propose(env if last else None, "state.load", table=table, columns=columns, rows=rows,
                               clear=clear, taken_at=int(header.get("taken_at") or 0),
                               wait_ms=m.RESTORE_WAIT_MS if last else None)
        log.warning("restoring a backup index=%s taken_at=%s: %s", header.get("index"), header.get("taken_at"),
                    ", ".join(f"{t} {n}" for t, n in loaded.items()))

    def batches(self, conn, header):
        """(table, columns, rows, clear) per Raft entry: each table's rows cut to fit an entry,
        the first batch of each table clearing what the live state held."""
        budget = self.shell.max_entry_bytes // 2
        for table in TABLES:
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
            batch, size, first = [], 0, True
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                row = list(row)
                cost = len(wire.pack(row))
                if batch and size + cost > budget:
                    yield table, columns, batch, first
                    batch, size, first = [], 0, False
                batch.append(row)
                size += cost
            if batch or first:
                yield table, columns, batch, first
