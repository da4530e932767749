"""The state machine's files: state.db, checked and (from the newest snapshot) rebuilt when it is
missing or behind the log at start; snapshot files taken with SQLite's backup API at the applied
index, served to followers that fell behind, and installed in place of state.db crash-safely."""

from __future__ import annotations

import glob
import logging
import os
import shutil

from common import schema
from common.errors import Halt

log = logging.getLogger(__name__)

KEEP = 2  # snapshot files kept: the newest serves followers, one spare while it is written
# A test hook: kill -9 this process once at each named step of an install ("install:copied,..."; the
# marker file that records each is left in the data dir, so the restarted process goes on).
CRASH_ENV = "TEST_PYKRON_CRASH_AT"  # not PYKRON_*: those are config keys
INSTALL_STEPS = ("received", "copied", "checkpointed", "replaced")


class StateFiles:
    def __init__(self, data_dir, conf_path=""):
        self.data_dir = data_dir
        self.dir = os.path.join(data_dir, "snapshots")
        os.makedirs(self.dir, exist_ok=True)
        self.state_path = os.path.join(data_dir, "state.db")
        self.conf_path = conf_path or "node.toml"

    def path(self, index):
        return os.path.join(self.dir, f"state-{index}.db")

    def recover_hint(self):
        return f"recover this server from its peers with `pykron recover-replica -c {self.conf_path}`"

    # -- at start ----------------------------------------------------------------------------

    def check(self):
        """state.db, if there is one, is whole (a damaged one stops the service with its line)."""
        schema.check_whole(self.state_path, self.recover_hint())

    def rebuild(self, index):
        """state.db is missing or behind the log's snapshot at `index` (whose entries the log no
        longer holds): it becomes a copy of that snapshot, then the log is applied on top."""
        source = self.path(index)
        if not os.path.exists(source):
            raise Halt(f"{self.state_path}: behind the Raft log's snapshot at index {index}, and "
                       f"{source} is missing; {self.recover_hint()}")
        log.warning("rebuilding state.db from the snapshot at index=%d", index)
        tmp = self.state_path + ".rebuild"
        shutil.copyfile(source, tmp)
        _fsync(tmp)
        self._replace_state(tmp)

    # -- snapshots ---------------------------------------------------------------------------

    def take(self, fsm, index):
        """Write the state machine (applied up to index) to a snapshot file, durably."""
        tmp = self.path(index) + ".tmp"
        fsm.snapshot_to(tmp)
        _fsync(tmp)
        os.replace(tmp, self.path(index))
        _fsync(self.dir)
        self.prune()
        log.info("snapshot taken index=%d bytes=%d", index, os.path.getsize(self.path(index)))

    def install(self, incoming, index, close_state):
        """Make a received snapshot the state machine, keeping a copy to serve as leader later.
        The old state stays whole until the new file is durable and renamed over it: a crash at
        any step leaves one or the other (close_state() checkpoints the old WAL into state.db, so
        no WAL of the old file is left for SQLite to apply to the new one)."""
        self._crash_point("received")
        tmp = self.path(index) + ".tmp"
        shutil.copyfile(incoming, tmp)
        _fsync(tmp)
        os.replace(tmp, self.path(index))
        _fsync(self.dir)
        self._crash_point("copied")
        close_state()
        self._crash_point("checkpointed")
        self._replace_state(incoming)
        self._crash_point("replaced")
        self.prune()

    def _replace_state(self, new):
        for suffix in ("-wal", "-shm"):  # empty once the old state was closed (or never opened)
            if os.path.exists(self.state_path + suffix):
                os.unlink(self.state_path + suffix)
        os.replace(new, self.state_path)
        _fsync(self.data_dir)

    def prune(self):
        files = sorted(glob.glob(os.path.join(self.dir, "state-*.db")),
                       key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
        for old in files[:-KEEP]:
            os.unlink(old)

    def _crash_point(self, step):
        if f"install:{step}" not in os.environ.get(CRASH_ENV, "").split(","):
            return
        marker = os.path.join(self.data_dir, f"crashed-at-{step}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            _fsync(self.data_dir)
            os.kill(os.getpid(), 9)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
