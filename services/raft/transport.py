"""Raft's peer transport over ZeroMQ: one DEALER to each member's peer ROUTER, opened and
closed as the membership changes; replies to a server we cannot dial yet (one waiting to be
added) go back through the ROUTER. Snapshots travel as a stream of raft.snap_chunk frames."""

from __future__ import annotations

import logging
import os

import zmq

from common import messages as m, wire

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


class PeerTransport:
    def __init__(self, loop, name, router, incoming_dir, on_message):
        self.loop, self.name, self.router, self.on_message = loop, name, router, on_message
        self.incoming_dir = incoming_dir
        self.dealers = {}   # peer name → (address, key, socket)
        self.routes = {}    # peer name → ROUTER identity of its last message
        self.receiving = {}  # (sender, index) → open file of a snapshot being received
        self.sent = 0

    def sync(self, members, key_of):
        """members: name → addresses; dial every member but this server whose key is known
        (key_of(name)), hang up on the rest and on those whose address or key changed."""
        wanted = {n: (a.get("peer"), key_of(n)) for n, a in members.items() if n != self.name and a.get("peer")}
        wanted = {n: v for n, v in wanted.items() if v[1]}
        for name in list(self.dealers):
            if wanted.get(name) != self.dealers[name][:2]:
                self.loop.close(self.dealers.pop(name)[2])
        for name, (addr, key) in wanted.items():
            if name not in self.dealers:
                log.info("dialing peer=%s addr=%s", name, addr)
                # Read too: a server that is not a member yet answers back on this connection.
                sock = self.loop.socket(zmq.DEALER, "peer-out", connect=[(addr, key)], on=self.on_message)
                self.dealers[name] = (addr, key, sock)

    def remember(self, env):
        if env.route:
            self.routes[env.sender] = env.route

    def send(self, to, msg, term):
        self.sent += 1
        dealer = self.dealers.get(to)
        if dealer is not None:
            self.loop.send(dealer[2], msg, term=term)
        elif to in self.routes:
            self.loop.send(self.router, msg, route=self.routes[to], term=term)

    def send_snapshot(self, to, msg, term, path):
        """Stream the snapshot file; the receiver hands it to its core once it is whole."""
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                offset = 0
                while True:
                    data = fh.read(CHUNK_BYTES)
                    done = offset + len(data) >= size
                    self.send(to, m.RaftSnapChunk(index=msg.index, term=msg.term, offset=offset, data=data,
                                                  done=done, membership=msg.membership), term)
                    offset += len(data)
                    if done:
                        break
        except OSError as exc:
            log.error("cannot send snapshot index=%d to=%s: %s", msg.index, to, exc)
            return
        log.info("sent snapshot index=%d bytes=%d to=%s", msg.index, size, to)

    def receive_chunk(self, env):
        """Write one chunk; returns the raft.snapshot envelope for the core once the file is whole."""
        chunk = env.msg
        key = (env.sender, chunk.index)
        path = self.incoming_path(chunk.index)
        if chunk.offset == 0:
            for other in [k for k in self.receiving if k != key]:
                self.receiving.pop(other).close()
            self.receiving[key] = open(path, "wb")
        fh = self.receiving.get(key)
        if fh is None or fh.tell() != chunk.offset:
            return None  # a chunk out of order: drop the transfer, the leader sends it again
        fh.write(chunk.data)
        if not chunk.done:
            return None
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        del self.receiving[key]
        snap = m.RaftSnapshot(index=chunk.index, term=chunk.term, membership=chunk.membership)
        return wire.Envelope(snap.TYPE, env.sender, env.msg_id, b"", env.term, snap, env.route)

    def incoming_path(self, index):
        return os.path.join(self.incoming_dir, f"incoming-{index}.db")

