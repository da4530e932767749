"""The servers an executor follows: for every accepted server, a SUB to its run PUB, a DEALER to
its dispatcher and a SUB to its raft state PUB (so that only the dispatcher its raft names leader
for a term is followed), each dialled with that server's key (the book's, or before any book what
gossip, sealed by the keyring, announces). On an agent, the book comes from the leader's dispatcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import zmq

from common import aclview, curve, messages as m, wire

log = logging.getLogger(__name__)

TERMS_KEPT = 8  # leaders remembered by term: enough for any heartbeat still on its way


@dataclass
class Followed:
    key: str
    addrs: dict
    run_sub: object
    state_sub: object
    dispatcher: object  # the loop's Peer of its result ROUTER


class Servers:
    def __init__(self, shell, topics):
        self.loop, self.name, self.conf = shell.loop, shell.name, shell.conf
        self.core, self.on_run, self.topics = shell.core, shell.on_run, topics
        self.peers = {}   # name → Followed
        self.named = {}   # term → the leader the servers' raft named for it
        self.refused = 0  # heartbeats from a dispatcher no raft named leader
        self.acl_written = None  # the ACL view last written from a dispatcher's notice (agents)

    def key_of(self, member):
        book = self.loop.gate.book
        if book.servers():
            return book.key_of(member["name"], curve.SERVER_KINDS)
        return member.get("key") or None

    def follow(self, member):
        """An alive server from gossip: followed with its key, again when its key changed, and
        dropped when the book no longer accepts it."""
        if member["role"] != "server":
            return
        name, key = member["name"], self.key_of(member) if member["status"] == "alive" else None
        known = self.peers.get(name)
        if known is not None and (known.key != key or known.addrs != member["addrs"]):
            self.unfollow(name)
            known = None
        if known is None and key:
            log.info("following server=%s run=%s", name, member["addrs"]["run"])
            addrs = member["addrs"]
            self.peers[name] = Followed(
                key, addrs, self.loop.socket(zmq.SUB, "run", on=self.on_run, connect=[(addrs["run"], key)],
                                             subscribe=self.topics),
                self.loop.socket(zmq.SUB, "state", on=self.on_state, connect=[(addrs["state"], key)],
                                 subscribe=[wire.topic("leader")]),
                self.loop.peer("result", [(addrs["dispatcher"], key)]))

    def unfollow(self, name):
        followed = self.peers.pop(name)
        log.info("no longer following server=%s", name)
        for sock in (followed.run_sub, followed.state_sub, followed.dispatcher.sock):
            self.loop.close(sock)

    def on_state(self, env):
        msg = env.msg
        if isinstance(msg, m.RaftLeader) and msg.leader and msg.term > 0:
            self.named[msg.term] = msg.leader
            for term in sorted(self.named)[:-TERMS_KEPT]:
                del self.named[term]

    def named_leader(self, beat):
        """A dispatcher heartbeat is followed only when its node leads its term by raft's word,
        not because it claims the highest term."""
        if self.named.get(beat.term) == beat.node:
            return True
        self.refused += 1
        return False

    def on_book(self, notice):
        """The accepted keys, from the leader's dispatcher: an agent has no raft to read them from."""
        if self.conf.is_server:
            return
        try:
            book = curve.Book.from_plain({"keys": notice.keys})
        except ValueError as exc:
            log.warning("key book from a dispatcher refused: %s", exc)
            return
        if book != self.loop.gate.book:
            curve.write_book(self.conf.node.run_dir, book)
            self.loop.check_book()
        if notice.acl and notice.acl != self.acl_written:
            aclview.write(self.conf.node.run_dir, notice.acl)
            self.acl_written = notice.acl

    def dispatcher(self):
        """The active dispatcher (None: none heard yet, and several servers to choose from)."""
        found = self.peers.get(self.core.dispatcher())
        if found is None and len(self.peers) == 1:
            return next(iter(self.peers.values())).dispatcher
        return found.dispatcher if found else None

    def send(self, msg):
        """To the active dispatcher; before its first heartbeat is heard, to every server (the
        others refuse), so an ack right after a start is not lost."""
        found = self.peers.get(self.core.dispatcher())
        for followed in [found] if found is not None else self.peers.values():
            followed.dispatcher.send(msg)

    def status(self):
        return {"servers": sorted(self.peers), "dispatcher": self.core.dispatcher() or "",
                "unnamed_heartbeats": self.refused}
