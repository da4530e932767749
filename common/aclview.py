"""The ACL view on a node's disk ({run_dir}/acl.view, 0600): the raft service writes it when
tokens or policies change, and the dispatcher and executor of the node read it to judge the
client calls they serve (run, kill, busy, output) by the one check of common/acl.py."""

from __future__ import annotations

import logging
import os

from common import acl, wire

log = logging.getLogger(__name__)

VIEW_FILE = "acl.view"


def write(run_dir, plain):
    """Atomically, so that a reader never sees half a view."""
    path = os.path.join(run_dir, VIEW_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(wire.pack(plain))
    os.replace(tmp, path)


class ViewFile:
    """The view as last written, read again when the file changes. With no file (an agent, or a
    server before its raft wrote one) the view is an enabled one with no token: only the node's
    own calls pass, which errs on the side of refusing."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, VIEW_FILE)
        self.mtime = None
        self.view = acl.View(enabled=True)

    def current(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return acl.View(enabled=True)
        if mtime != self.mtime:
            try:
                with open(self.path, "rb") as fh:
                    self.view = acl.View.from_plain(wire.unpack(fh.read()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError, wire.WireError) as exc:
                log.warning("acl view unreadable, refusing token calls until it is written again: %s", exc)
                self.view = acl.View(enabled=True)
            self.mtime = mtime
        return self.view
