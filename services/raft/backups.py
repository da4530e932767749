"""Backups: a consistent copy of the replicated state, taken after a linearizable read (so it
holds every write acknowledged before it was asked for) with SQLite's backup API, served to
`pykronctl snapshot save` in chunks; the leader also writes one every [raft] backup_interval_ms
into backup_dir, keeping the newest backup_keep (common/backup.py is the file's format)."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time

from common import backup, errors
from services.raft.core import LEADER
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
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
        header = {"schema": STATE.version, "cluster": fsm.cluster_id(), "index": fsm.applied,
                  "term": self.shell.core.log.term(fsm.applied) if fsm.applied else 0,
                  "taken_at": self.loop.now(), "size": os.path.getsize(path), "checksum": digest.hexdigest()}
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
