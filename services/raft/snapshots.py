"""The state machine's snapshot files: taken with SQLite's backup API at the applied index
(then the Raft log before it is compacted), served to followers that fell behind the log, and
installed in place of state.db when one arrives from the leader."""

from __future__ import annotations

import glob
import logging
import os
import shutil

log = logging.getLogger(__name__)

KEEP = 2  # snapshot files kept: the newest serves followers, one spare while it is written


class SnapshotFiles:
    def __init__(self, data_dir):
        self.dir = os.path.join(data_dir, "snapshots")
        os.makedirs(self.dir, exist_ok=True)
        self.state_path = os.path.join(data_dir, "state.db")

    def path(self, index):
        return os.path.join(self.dir, f"state-{index}.db")

    def take(self, fsm, index):
        """Write the state machine (applied up to index) to a snapshot file, durably."""
        tmp = self.path(index) + ".tmp"
        fsm.snapshot_to(tmp)
        _fsync(tmp)
        os.replace(tmp, self.path(index))
        _fsync(self.dir)
        self.prune()
        log.info("snapshot taken index=%d bytes=%d", index, os.path.getsize(self.path(index)))

    def install(self, incoming, index):
        """Make a received snapshot the state machine: keep a copy to serve as leader later."""
        shutil.copyfile(incoming, self.path(index))
        _fsync(self.path(index))
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.state_path + suffix):
                os.unlink(self.state_path + suffix)
        os.replace(incoming, self.state_path)
        _fsync(os.path.dirname(self.state_path))
        self.prune()

    def prune(self):
        files = sorted(glob.glob(os.path.join(self.dir, "state-*.db")),
                       key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
        for old in files[:-KEEP]:
            os.unlink(old)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
