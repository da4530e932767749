"""The ACL view on a node's disk ({run_dir}/acl.view, 0600): the raft service writes it when
tokens or policies change (an agent's executor, from the leader's dispatcher), and the node's
other services read it to judge the client calls they serve (run, kill, busy, output, gossip's
verbs) by the one check of common/acl.py."""

from __future__ import annotations

import logging
import os

from common import acl, curve, needs, wire

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

    def known(self):
        """Whether a view was ever read from the file (before that, current() errs on refusing)."""
        return self.mtime is not None

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


def for_agents(plain):
    """The view an agent needs: callers come to it by key, never by secret, so no hashes."""
    return {**plain, "tokens": {a: {k: v for k, v in t.items() if k != "hash"} for a, t in plain.get("tokens", {}).items()}}


class CallCheck:
    """The check of a service's client calls: the caller by the key its message came with (ipc:
    this node), the need by common/needs.py, the view by the node's file."""

    def __init__(self, loop):
        self.loop = loop
        self.views = ViewFile(loop.conf.node.run_dir)

    def caller(self, env):
        nodes = {name for name, kind in self.loop.gate.book.entries.values() if kind in curve.NODE_KINDS}
        return acl.Caller.of_peer(env.peer, nodes)

    def require(self, env, **extra):
        """Raises errors.Unauthenticated or errors.Forbidden; extra: fields the path needs that
        the message lacks (the job of an execution whose output is asked for)."""
        view = self.views.current()
        if not view.enabled or not env.peer:
            return
        fields = {name: getattr(env.msg, name) for name in env.msg.__slots__}
        acl.require(view, self.caller(env), needs.for_message(env.type, {**fields, **extra}), self.loop.now())

    def readable(self, env):
        """A job name → whether the caller may read it; None when it may read every job."""
        view, caller = self.views.current(), self.caller(env)
        if acl.unrestricted(view, caller):
            return None
        now = self.loop.now()
        return lambda name: acl.can_read(view, caller, needs.job_path(name), now)
