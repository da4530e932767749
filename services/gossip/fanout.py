"""Keyring verbs across the cluster (Serf's `keys`): applied on this node first, so a bad key is
refused before anything is sent, then on every alive member over the sealed gossip stream; the
reply counts who answered and which keys each holds, as `serf keys -list` does."""

from __future__ import annotations

import collections
import logging

from common import errors, messages as m

log = logging.getLogger(__name__)


class KeyringFanout:
    def __init__(self, shell):
        self.shell = shell

    def apply_here(self, msg):
        """One verb on this node's keyring → ok {keys, primary} or an error (as replies go)."""
        ring = self.shell.keyring
        try:
            if isinstance(msg, m.KeyringInstall):
                ring.install(msg.key)
            elif isinstance(msg, m.KeyringUse):
                ring.use(msg.key)
            elif isinstance(msg, m.KeyringRemove):
                ring.remove(msg.key)
        except errors.Error as err:
            return m.Error(code=err.code, message=str(err))
        if not isinstance(msg, m.KeyringList):
            log.info("keyring %s keys=%d", msg.TYPE, len(ring.keys))
        return m.Ok(result=ring.listing())

    def start(self, env):
        shell, msg = self.shell, env.msg
        if msg.local:
            raise errors.BadRequest("local keyring verbs travel only on the sealed gossip stream")
        if not shell.keyring.enabled:
            raise errors.BadRequest("gossip encryption is off: set [security] gossip_key on every node first")
        here = self.apply_here(msg)
        if isinstance(here, m.Error):
            raise errors.Error.from_code(here.code, here.message)
        local = type(msg)(**{**_fields(msg), "local": True})
        roster = shell.core.roster
        others = [x for x in roster.members.values() if x.state == "a" and x is not roster.local]
        tally = Tally(len(others) + 1, lambda result: shell.loop.reply(shell.query_router, env, result))
        tally.add(shell.name, here.result)
        # Half the callers' own timeout, so that the answer reaches them before they give up.
        timeout_ms = max(100, shell.conf.wire.call_timeout_ms // 2)
        for member in others:
            self.ask(member, local, timeout_ms, tally)
        tally.maybe_done()

    def ask(self, member, msg, timeout_ms, tally):
        shell = self.shell
        # To the member's gossip stream, which its keyring seals (not CURVE: see Loop.socket).
        peer = shell.loop.peer("keyring", [f"tcp://{member.addr}:{member.port}"], curve_tcp=False)

        def done(result, err):
            shell.loop.close(peer.sock)
            inner = None if err is not None else shell.unsealed(result, f"{member.addr}:{member.port}")
            if err is not None or inner is None:
                tally.fail(member.name, str(err or "reply not readable"))
            elif isinstance(inner.msg, m.Error):
                tally.fail(member.name, inner.msg.message)
            else:
                tally.add(member.name, inner.msg.result)
            tally.maybe_done()

        peer.call(shell.sealed(msg), done, timeout_ms=timeout_ms)


class Tally:
    def __init__(self, members, reply):
        self.members, self.reply = members, reply
        self.keys, self.primary = collections.Counter(), collections.Counter()
        self.responded, self.failed, self.sent = 0, {}, False

    def add(self, name, listing):
        self.responded += 1
        self.keys.update(listing.get("keys", []))
        if listing.get("primary"):
            self.primary[listing["primary"]] += 1

    def fail(self, name, why):
        self.failed[name] = why

    def maybe_done(self):
        if not self.sent and self.responded + len(self.failed) >= self.members:
            self.sent = True
            self.reply(m.KeyringReport(members=self.members, responded=self.responded, failed=self.failed,
                                       keys=dict(self.keys), primary=dict(self.primary)))


def _fields(msg):
    return {name: getattr(msg, name) for name in msg.__dataclass_fields__}
