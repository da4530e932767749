"""What a hostile or careless client sends, for tests/hostile and `scripts/bench hostile`: raw
frames (an accepted key's, so they pass the handshake and reach the handlers), built here
without the wire's encoder where it would refuse them, and seeded, so that a run can be
repeated with one command."""

from __future__ import annotations

import random
import time

import msgpack
import zmq

from common import wire

INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


def nested(depth, leaf=0):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# Values that broke a handler, the state machine or a listing before, and their like.
HOSTILE = [UINT64_MAX, INT64_MAX, 1 << 63, -(1 << 63), -1, 0, nested(990), nested(40), "x" * 100_000, "",
           "../../../etc/passwd", "\x00", {}, [], [[]] * 1000, {"k": UINT64_MAX}, None, True, 1.5e308,
           b"\xff" * 64, ["x"], [UINT64_MAX], {"group": UINT64_MAX, "id": ["x"]}]


def header(type_name, msg_id, version=None, sender="hostile"):
    cls = wire.message_types().get(type_name)
    version = version if version is not None else (cls.SINCE if cls else 1)
    return msgpack.packb([version, type_name, sender, msg_id, b"", 0], use_bin_type=True)


def frame(type_name, body, msg_id):
    return [header(type_name, msg_id), msgpack.packb(body, use_bin_type=True)]


def empty_arrays(size):
    """One frame of `size` bytes of nested empty arrays: the amplification the decoder bounds."""
    inner = msgpack.packb([[]] * 65_535)
    count = max(1, size // len(inner) - 1)
    return msgpack.packb([[[]] * 65_535] * count)


def mutated(type_name, rng):
    """A body of the type's fields, each given a hostile value (or left out, or of the right
    kind but out of its bounds), plus an unknown field now and then."""
    cls = wire.message_types()[type_name]
    body = {}
    for name in cls.__dataclass_fields__:
        if rng.random() < 0.9:
            body[name] = rng.choice(HOSTILE)
    if rng.random() < 0.2:
        body["unknown"] = rng.choice(HOSTILE)
    return body


def random_frames(rng):
    """Garbage of a few kinds: random bytes, a valid header over random bytes, a truncated body."""
    kind = rng.randrange(4)
    noise = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
    msg_id = rng.randbytes(16)
    if kind == 0:
        return [noise, noise]
    if kind == 1:
        return [header(rng.choice(sorted(wire.message_types())), msg_id), noise]
    if kind == 2:
        whole = msgpack.packb({"job": {"name": "x" * 50}}, use_bin_type=True)
        return [header("job.put", msg_id), whole[:rng.randrange(1, len(whole))]]
    return [msgpack.packb([1, "job.list", "h", msg_id, b"", 0, "extra"]), msgpack.packb({})]


class Sender:
    """A DEALER dialled with the launcher's accepted client key; sends frames and collects the
    replies by the id each request carried."""

    def __init__(self, cluster, node, endpoint, ctx):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        cluster.dial(self.sock, node, endpoint)
        self.sent, self.replies = {}, {}

    def send(self, frames, what):
        try:
            head = msgpack.unpackb(frames[0])
            msg_id = head[3] if isinstance(head, list) and len(head) == 6 and isinstance(head[3], bytes) else None
        except Exception:
            msg_id = None
        self.sock.send_multipart(frames)
        if msg_id is not None:
            self.sent[msg_id] = what

    def receive(self):
        env = wire.decode(self.sock.recv_multipart())
        self.replies[env.re] = env

    def close(self):
        self.sock.close(0)


def seeded(seed):
    return random.Random(seed)


def types():
    """The message types a client might send: all but the replies and those without fields (a
    member.leave with nothing in it is a valid request, and would make the node leave)."""
    return {name for name, cls in wire.message_types().items()
            if name not in ("ok", "error") and cls.__dataclass_fields__}


def collect(senders, timeout_s, quiet_s=5):
    """Replies into each sender until every request with an id has one, timeout_s pass, or
    quiet_s pass without any reply."""
    poller = zmq.Poller()
    for sender in senders:
        poller.register(sender.sock, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    by_sock = {sender.sock: sender for sender in senders}
    while time.monotonic() < deadline and any(set(s.sent) - set(s.replies) for s in senders):
        ready = poller.poll(quiet_s * 1000)
        if not ready:
            return
        for sock, _ in ready:
            by_sock[sock].receive()
