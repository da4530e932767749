"""The one envelope: every ZeroMQ message and gossip datagram is encoded and decoded here,
and this is the only module that imports msgpack. Frames are [*route, (topic,) header, body];
the header is [protocol, type, sender, msg_id, re, term] and the body a map of the type's fields.
`protocol` is the version a message needs (its type's `since`), so a node that speaks a newer
protocol still talks to older ones in every type they know, and a receiver refuses, with the
typed error "version", what it does not speak rather than misread it."""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import types
import typing
from dataclasses import dataclass

import msgpack

PROTOCOL = 4        # the protocol this release speaks (2: node keys, runs' follow-ups replicated; 3: ACL, state
                    # checks; 4: backups restored, jobs put in batches)
PROTOCOL_MIN = 1    # the oldest protocol it still accepts
# One version past PROTOCOL, spoken only with [node] protocol_next (tests): its message and
# command (note.put) let a mixed-version cluster be exercised before a real feature needs it.
NEXT_PROTOCOL = PROTOCOL + 1
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
TOPIC_END = b"\x00"
# Bounds on what any body may hold, checked as it decodes, whatever its type declares: every
# integer fits SQLite's (and the state's) int64, nesting stops at MAX_DEPTH (a job nests five
# deep), one array or map holds at most MAX_ITEMS, and a frame at most MAX_DECODED items in all
# its arrays and maps (a frame of 4 MiB of empty arrays decoded to some 300 MB of lists; at this
# bound it stops at about 30 MB; a page of 2,000 jobs holds some 150,000).
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
MAX_DEPTH = 32
MAX_ITEMS = 100_000
MAX_DECODED = 500_000


@dataclass(frozen=True, slots=True)
class Bound:
    """A field's bounds beyond its type, declared with it (`Annotated[int, Bound(lo=0)]`):
    integers within lo..hi; text, bytes, lists and maps at most `most` long."""

    lo: int = INT_MIN
    hi: int = INT_MAX
    most: int | None = None

    def holds(self, value):
        if type(value) is int:
            return self.lo <= value <= self.hi
        return self.most is None or len(value) <= self.most


_max_frame_bytes = DEFAULT_MAX_FRAME_BYTES
_speaks = PROTOCOL
_TYPES: dict[str, type] = {}
_CHECKS: dict[type, tuple] = {}


class WireError(Exception):
    """A frame set that cannot be decoded. `code` says why: frames, size, format, version, type, field."""

    def __init__(self, code, detail=""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.msg_id = b""  # set when the header decoded, so that a reply can name the request


def set_max_frame_bytes(limit):
    """Set from [wire] max_message_bytes at start-up; ZMQ_MAXMSGSIZE uses the same bound."""
    global _max_frame_bytes
    _max_frame_bytes = int(limit)


def max_frame_bytes():
    return _max_frame_bytes


def set_protocol(speaks):
    """Set at start-up: PROTOCOL, or NEXT_PROTOCOL under [node] protocol_next."""
    global _speaks
    if not PROTOCOL_MIN <= speaks <= NEXT_PROTOCOL:
        raise ValueError(f"protocol {speaks} outside {PROTOCOL_MIN}..{NEXT_PROTOCOL}")
    _speaks = speaks


def protocol():
    """[lowest accepted, spoken]: what a node announces in gossip and in its Raft server record."""
    return [PROTOCOL_MIN, _speaks]


def message(name, since=1, max_bytes=None):
    """Declare a message type: a frozen, slotted dataclass whose fields are its body. `since` is
    the protocol that introduced it: its messages carry that version (or PROTOCOL_MIN, once the
    oldest accepted protocol has moved past it). `max_bytes` bounds its body below the frame
    limit: a larger one is refused before it is decoded, so that a flood of maximal frames of a
    small request costs its receiver no decoding."""

    def register(cls):
        cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        if name in _TYPES:
            raise ValueError(f"message type {name!r} declared twice")
        cls.TYPE = name
        cls.SINCE = since
        cls.MAX_BYTES = max_bytes
        cls.STAMP = max(since, PROTOCOL_MIN)
        _TYPES[name] = cls
        return cls

    return register


def message_types():
    return dict(_TYPES)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message with its routing: `route` are the ROUTER identity frames."""

    type: str
    sender: str
    msg_id: bytes
    re: bytes
    term: int
    msg: object
    route: tuple = ()
    topic: bytes = b""
    peer: str = ""  # the name of the CURVE key it came with ("" over ipc: this node)


_ID_PREFIX = os.urandom(8)
_id_counter = itertools.count()


def _reseed_ids():
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8)


os.register_at_fork(after_in_child=_reseed_ids)  # gunicorn workers fork: ids stay unique


def new_id():
    """16 bytes unique to this process and message: a random prefix and a counter (a system
    call per message would cost more than the rest of the encoding)."""
    return _ID_PREFIX + next(_id_counter).to_bytes(8, "big")


def topic(kind, name=""):
    """`topic("node", "web1")` → b"node.web1\\x00"; the terminator keeps web1 from matching web10."""
    text = f"{kind}.{name}" if name else kind
    return text.encode() + TOPIC_END


def output_topic(job, execution_id=""):
    """out.<job>\\x00 for every execution of a job; out.<job>\\x00<id>\\x00 for one of them."""
    return topic("out", job) + (execution_id.encode() + TOPIC_END if execution_id else b"")


_packers = threading.local()  # a Packer is reusable but not thread-safe (the API runs threads)


def pack(obj):
    """Plain data → bytes, with the settings fixed for the wire (also used for stored blobs)."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(obj)


class _Budget:
    """Counts the items of every array and map as msgpack builds them, and stops the decoding
    once a frame has built MAX_DECODED: what a frame may cost in memory is bounded, not only
    its bytes."""

    __slots__ = ("left",)

    def __init__(self):
        self.left = MAX_DECODED

    def spend(self, container):
        self.left -= len(container) + 1
        if self.left < 0:
            raise ValueError(f"more than {MAX_DECODED} items in one frame")
        return container


def unpack(data):
    budget = _Budget()
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_array_len=MAX_ITEMS,
                               max_map_len=MAX_ITEMS, max_str_len=_max_frame_bytes, max_bin_len=_max_frame_bytes,
                               list_hook=budget.spend, object_hook=budget.spend)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError("format", str(exc)) from None


def bounded(value, depth=0):
    """None when value keeps the bounds every body keeps (int64 integers, MAX_DEPTH levels),
    else what breaks them."""
    kind = type(value)
    if kind is int:
        return None if INT_MIN <= value <= INT_MAX else "an integer outside int64"
    if kind is list or kind is dict:
        if depth >= MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} deep"
        for item in (value.values() if kind is dict else value):
            if type(item) in (int, list, dict):
                broken = bounded(item, depth + 1)
                if broken:
                    return broken
    return None


def encode(msg, sender, *, re=b"", term=0, msg_id=None):
    """A message → [header, body]; the caller puts route or topic frames in front."""
    header = [msg.STAMP, msg.TYPE, sender, msg_id or new_id(), re, term]
    body = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    return [pack(header), pack(body)]


def encode_datagram(msg, sender, *, re=b"", term=0, msg_id=None):
    """The single-frame form for UDP: one msgpack array [header, body]."""
    header, body = encode(msg, sender, re=re, term=term, msg_id=msg_id)
    return pack([unpack(header), unpack(body)])


def decode(frames, *, topic=False, peer=""):
    """[*route, (topic,) header, body] → Envelope, or WireError; never any other exception."""
    if not isinstance(frames, (list, tuple)) or len(frames) < (3 if topic else 2):
        raise WireError("frames", f"expected header and body, got {len(frames) if isinstance(frames, (list, tuple)) else 0} frames")
    for frame in frames:
        if len(frame) > _max_frame_bytes:
            raise WireError("size", f"frame of {len(frame)} bytes over {_max_frame_bytes}")
    head = unpack(bytes(frames[-2]))
    try:
        cls = _TYPES.get(head[1]) if isinstance(head, list) and len(head) == 6 and isinstance(head[1], str) else None
        if cls is not None and cls.MAX_BYTES is not None and len(frames[-1]) > cls.MAX_BYTES:
            raise WireError("size", f"{cls.TYPE} body of {len(frames[-1])} bytes over its {cls.MAX_BYTES}")
        body = unpack(bytes(frames[-1]))
    except WireError as exc:
        # With a sound header the sender can be told which request it was.
        if isinstance(head, list) and len(head) == 6 and isinstance(head[3], bytes):
            exc.msg_id = head[3]
        raise
    rest = [bytes(f) for f in frames[:-2]]
    tpc = rest.pop() if topic else b""
    return _envelope(head, body, tuple(rest), tpc, peer)


def decode_datagram(data):
    if len(data) > _max_frame_bytes:
        raise WireError("size", f"datagram of {len(data)} bytes over {_max_frame_bytes}")
    pair = unpack(bytes(data))
    if not isinstance(pair, list) or len(pair) != 2:
        raise WireError("frames", "datagram is not [header, body]")
    return _envelope(pair[0], pair[1], (), b"")


def _envelope(head, body, route, tpc, peer=""):
    if not isinstance(head, list) or len(head) != 6:
        raise WireError("format", "header is not a 6-item array")
    version, name, sender, msg_id, re, term = head
    if not (type(version) is int and isinstance(name, str) and isinstance(sender, str) and isinstance(msg_id, bytes)
            and isinstance(re, bytes) and type(term) is int):
        raise WireError("format", "header fields have the wrong types")
    cls = _TYPES.get(name)
    # Checked before the type: a type from a newer protocol is unknown here, and must be
    # refused as a version this node does not speak, not as garbage.
    if not PROTOCOL_MIN <= version <= _speaks or cls is not None and version < cls.SINCE:
        exc = WireError("version", f"{name} of protocol {version}: this node speaks {PROTOCOL_MIN}..{_speaks}"
                        + (f" and {name} needs {cls.SINCE}" if cls is not None and version < cls.SINCE else ""))
        exc.msg_id = msg_id
        raise exc
    if cls is None:
        raise WireError("type", f"unknown message type {name!r}")
    if not isinstance(body, dict):
        raise WireError("format", f"{name}: body is not a map")
    broken = bounded(body)
    if broken:
        exc = WireError("field", f"{name}: {broken}")
        exc.msg_id = msg_id
        raise exc
    try:
        return Envelope(name, sender, msg_id, re, term, _build(cls, body), route, tpc, peer)
    except WireError as exc:
        exc.msg_id = msg_id  # the header was sound: the sender can be told which request failed
        raise


def _build(cls, body):
    what = getattr(cls, "TYPE", cls.__name__)  # a reply has no type name of its own
    kwargs = {}
    for fname, check, required in _checks(cls):
        if fname not in body:
            if required:
                raise WireError("field", f"{what}: missing field {fname!r}")
            continue
        value = body[fname]
        if not check(value):
            raise WireError("field", f"{what}: field {fname!r} has the wrong type or is out of bounds "
                                     f"({type(value).__name__})")
        kwargs[fname] = value
    return cls(**kwargs)


def _checks(cls):
    found = _CHECKS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        found = tuple(
            (f.name, _checker(hints[f.name]),
             f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls))
        _CHECKS[cls] = found
    return found


def _checker(tp):
    """A predicate for a field annotation; nested containers are checked one level deep."""
    if typing.get_origin(tp) is typing.Annotated:
        base, bounds = _checker(typing.get_args(tp)[0]), [b for b in tp.__metadata__ if isinstance(b, Bound)]
        return lambda v: base(v) and all(b.holds(v) for b in bounds)
    if tp is typing.Any:
        return lambda v: True
    if tp is int:
        return lambda v: type(v) is int
    if tp is float:
        return lambda v: type(v) in (int, float)
    if tp in (str, bytes, bool):
        return lambda v: type(v) is tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        checks = [_checker(a) for a in args]
        return lambda v: any(c(v) for c in checks)
    if tp is type(None):
        return lambda v: v is None
    if tp is list or origin is list:
        item = _checker(args[0]) if args else (lambda v: True)
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    if tp is dict or origin is dict:
        key, val = (_checker(args[0]), _checker(args[1])) if args else ((lambda v: True),) * 2
        return lambda v: isinstance(v, dict) and all(key(k) and val(x) for k, x in v.items())
    raise TypeError(f"unsupported field type {tp!r}")


_REPLIES: dict[str, type] = {}


def reply(*requests):
    """Declare the typed reply of the named request types: a frozen, slotted dataclass whose
    fields are the map an `ok` carries back, checked on arrival as a request's body is (typed).
    Without names, a record that such a reply holds items of."""

    def register(cls):
        cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        for name in requests:
            if name in _REPLIES:
                raise ValueError(f"reply to {name!r} declared twice")
            _REPLIES[name] = cls
        return cls

    return register


def reply_type(request):
    """The reply declared for a request (a message instance or class); None: a plain map."""
    return _REPLIES.get(request.TYPE)


def fields(obj):
    """A message or reply's fields as the plain map that travels."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def typed(cls, result):
    """A reply's map → the reply, checked field by field; WireError("field") when it does not fit."""
    if not isinstance(result, dict):
        raise WireError("field", f"{cls.__name__}: reply is not a map")
    return _build(cls, result)


# Registers every message type; last so that `message` exists when messages.py imports it.
from common import messages  # noqa: E402,F401
