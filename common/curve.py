"""CURVE for every TCP ZeroMQ socket: the book of accepted keys each process reads from its
node's run dir ({run_dir}/keys.book, written by the raft service on a server and by the executor
on an agent), and the gate, one per process, that answers ZeroMQ's handshake requests (ZAP,
RFC 27) for the sockets it binds: a key gets in only if the book accepts it for that socket."""

from __future__ import annotations

import logging
import os
import time

import zmq
from zmq.utils import z85

from common import wire

log = logging.getLogger(__name__)

BOOK_FILE = "keys.book"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
NODE_KINDS = frozenset({"server", "agent"})
SERVER_KINDS = frozenset({"server"})
ANY_KIND = frozenset({"server", "agent", "client"})


class Book:
    """Accepted keys: public (Z85 text) → (name, kind)."""

    def __init__(self, entries=None, seq=0):
        self.entries = dict(entries or {})
        self.seq = seq

    def __eq__(self, other):
        return isinstance(other, Book) and self.entries == other.entries

    def named(self, key):
        """(name, kind) of an accepted key, or None."""
        return self.entries.get(key)

    def key_of(self, name, kinds=ANY_KIND):
        for key, (who, kind) in self.entries.items():
            if who == name and kind in kinds:
                return key
        return None

    def servers(self):
        return {name: key for key, (name, kind) in self.entries.items() if kind == "server"}

    def to_plain(self):
        return {"seq": self.seq, "keys": {k: list(v) for k, v in self.entries.items()}}

    @classmethod
    def from_plain(cls, plain):
        keys = plain.get("keys") if isinstance(plain, dict) else None
        if not isinstance(keys, dict):
            raise ValueError("a key book is {seq, keys: {public: [name, kind]}}")
        entries = {}
        for key, value in keys.items():
            if not (isinstance(key, str) and isinstance(value, list) and len(value) == 2
                    and all(isinstance(x, str) for x in value)):
                raise ValueError("a key book entry is public: [name, kind]")
            entries[key] = tuple(value)
        seq = plain.get("seq", 0)
        return cls(entries, seq if type(seq) is int else 0)


def write_book(run_dir, book):
    """Atomically, so that a process reading it never sees half a book."""
    path = os.path.join(run_dir, BOOK_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(wire.pack(book.to_plain()))
    os.replace(tmp, path)


def read_book(run_dir):
    """The node's book, or an empty one (none written yet, or unreadable: nobody gets in)."""
    try:
        with open(os.path.join(run_dir, BOOK_FILE), "rb") as fh:
            return Book.from_plain(wire.unpack(fh.read()))
    except FileNotFoundError:
        return Book()
    except (OSError, ValueError, wire.WireError) as exc:
        log.warning("key book unreadable, nobody gets in until it is written again: %s", exc)
        return Book()


class Gate:
    """Decides who may connect to this process's TCP sockets. Each socket's role names a rule:
    the kinds of accepted key it lets in, plus keys allowed apart from the book (the founders'
    while a new cluster has no book yet; anyone, for a port that authenticates otherwise)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.book = read_book(run_dir)
        self.mtime = self._mtime()
        self.rules = {}     # role → kinds let in
        self.extra = {}     # role → {public: name} let in besides the book
        self.refused = 0
        self.benched = {}   # public → Unix ms until which it is kept out (it flooded: common/flooding.py)

    def rule(self, role, kinds):
        self.rules[role] = frozenset(kinds)

    def allow(self, role, keys):
        """Keys let in on a role besides the book: {public: name}."""
        self.extra[role] = dict(keys)

    def bench(self, key, until_ms):
        self.benched[key] = until_ms

    def is_benched(self, key):
        return bool(self.benched) and time.time() * 1000 < self.benched.get(key, 0)

    def who(self, role, key):
        """The name an accepted key goes by on this role, or None when it may not connect."""
        if self.benched and key in self.benched:
            if self.is_benched(key):
                return None
            del self.benched[key]  # its time is over
        found = self.book.named(key)
        if found and found[1] in self.rules.get(role, ()):
            return found[0]
        return self.extra.get(role, {}).get(key)

    def reload_if_changed(self):
        """The keys the book no longer accepts when it changed (a PUB cannot refuse what it
        already serves: their sockets are bound again); an empty set otherwise."""
        mtime = self._mtime()
        if mtime == self.mtime:
            return set()
        self.mtime = mtime
        book = read_book(self.run_dir)
        removed = set(self.book.entries) - set(book.entries)
        if book != self.book:
            log.info("key book reloaded keys=%d removed=%d", len(book.entries), len(removed))
        self.book = book
        return removed

    def _mtime(self):
        try:
            return os.stat(os.path.join(self.run_dir, BOOK_FILE)).st_mtime_ns
        except OSError:
            return 0

    def answer(self, frames):
        """A ZAP request → the reply frames (after the REP socket's envelope)."""
        if len(frames) < 7 or frames[0] != b"1.0":
            return [b"1.0", frames[1] if len(frames) > 1 else b"", b"400", b"malformed ZAP request", b"", b""]
        _, request_id, domain, _address, _identity, mechanism = frames[:6]
        role = domain.decode("utf-8", "replace")
        if mechanism != b"CURVE" or len(frames[6]) != 32:
            return [b"1.0", request_id, b"400", b"CURVE only", b"", b""]
        key = z85.encode(frames[6]).decode()
        name = self.who(role, key)
        if name is None:
            self.refused += 1
            log.warning("refused key=%s role=%s", key[:8], role)
            return [b"1.0", request_id, b"400", b"key not accepted", b"", b""]
        # The User-Id every message of this connection carries: its key, so each message can be
        # checked again against the book of that moment.
        return [b"1.0", request_id, b"200", b"OK", key.encode(), b""]


def serve_socket(sock, role, keypair):
    """CURVE server options for the endpoints bound after this call (ipc ones before it stay plain)."""
    sock.setsockopt(zmq.ZAP_DOMAIN, role.encode())
    sock.curve_secretkey = keypair.secret
    sock.curve_publickey = keypair.public
    sock.curve_server = True


def dial_socket(sock, keypair, server_key):
    """CURVE client options for the next connect: this node's keys, and the key the peer must
    prove it holds (so that nobody else can answer at that address)."""
    sock.curve_secretkey = keypair.secret
    sock.curve_publickey = keypair.public
    sock.curve_serverkey = server_key.encode() if isinstance(server_key, str) else server_key
