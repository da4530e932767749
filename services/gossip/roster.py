"""The member table, pure: every member this node knows, its incarnation and state, and SWIM's
rules for alive, suspect and dead news (memberlist's aliveNode, suspectNode, deadNode and
mergeState), with refutation of news about ourselves and the member maps the services read."""

from __future__ import annotations

from common import wire
from services.gossip.suspicion import Suspicion, suspicion_timeout

ALIVE, SUSPECT, DEAD, LEFT = "a", "s", "d", "l"   # the wire's state codes
LIVE = (ALIVE, SUSPECT)
STATUS = {ALIVE: "alive", SUSPECT: "suspect", DEAD: "failed", LEFT: "left"}
VERSION = "0.1.0"
META_MAX_BYTES = 512  # memberlist's MetaMaxSize: an alive update must fit a datagram with room to spare


class Member:
    __slots__ = ("name", "addr", "port", "inc", "state", "meta", "since")

    def __init__(self, name, addr, port, inc, state, meta, since):
        self.name, self.addr, self.port, self.inc = name, addr, port, inc
        self.state, self.meta, self.since = state, meta, since


def local_meta(role, addrs, user_tags, executors, protocol=(1, 1), key=""):
    """What this node announces besides its gossip address: its role, the ports of its
    services (they share the member's address), its executors, its user tags, the wire
    protocols it speaks, [lowest accepted, highest] (a member that does not say speaks 1 only),
    and its CURVE public key (what the leader lists as pending until it is accepted)."""
    meta = {"role": role, "ports": {k: int(v.rsplit(":", 1)[1]) for k, v in sorted(addrs.items())},
            "executors": sorted(executors), "tags": dict(user_tags), "version": VERSION}
    if key:
        meta["key"] = key
    if list(protocol) != [1, 1]:
        meta["protocol"] = list(protocol)
    size = len(wire.pack(meta))
    if size > META_MAX_BYTES:
        raise ValueError(f"tags and addresses take {size} bytes, over the {META_MAX_BYTES} a member may announce")
    return meta


def member_map(name, addr, port, inc, status, meta):
    """The shape every service reads (and the api renders as Dkron's member): Dkron's automatic
    tags plus the user's, where a user tag may override only `role`."""
    ports = meta["ports"]
    addrs = {k: f"tcp://{addr}:{p}" for k, p in ports.items()}
    tags = {"role": "pykron", **meta["tags"], "server": "true" if meta["role"] == "server" else "false",
            "rpc_addr": f"{addr}:{ports['raft']}" if "raft" in ports else "", "port": str(port),
            "version": meta["version"]}
    return {"name": name, "addr": addr, "port": port, "role": meta["role"], "status": status,
            "incarnation": inc, "tags": tags, "addrs": addrs, "executors": list(meta["executors"]),
            "protocol": list(meta.get("protocol", (1, 1))), "key": meta.get("key", "")}


def local_member(name, *, role, addr, port, user_tags, addrs, executors):
    return member_map(name, addr, port, 0, "alive", local_meta(role, addrs, user_tags, executors))


class Roster:
    def __init__(self, name, addr, port, meta, *, cfg, awareness, broadcasts, schedule, now):
        self.name, self.cfg = name, cfg
        self.awareness, self.broadcasts, self.schedule = awareness, broadcasts, schedule
        self.local = Member(name, addr, port, 0, ALIVE, meta, now)
        self.members = {name: self.local}
        self.live = 1               # alive and suspect members, us included: SWIM's n
        self.suspicions = {}
        self.events = []            # (kind, member, status) for the shell to publish
        self.declared = []          # (name, incarnation, at): our suspicion timers that ran out
        self.refuted = 0
        self.leaving = self.left = False
        self.on_new = None          # called with a new member's name (the probe order takes it)

    # -- news ------------------------------------------------------------------------------

    def on_alive(self, name, inc, addr, port, meta, now, *, quiet=False):
        if name == self.name:
            local = self.local
            if not self.leaving and inc >= local.inc and (inc > local.inc or meta != local.meta):
                self.refute(inc)  # someone speaks for us with news we did not make
            return
        mem = self.members.get(name)
        if mem is None:
            check_meta(meta)
            mem = self.members[name] = Member(name, addr, port, inc, ALIVE, meta, now)
            self.live += 1
            if self.on_new:
                self.on_new(name)
            if not quiet:
                self.broadcast_alive(mem)
                self.event("join", mem)
            return
        if inc <= mem.inc:
            return
        if meta is not mem.meta and meta != mem.meta:  # most news is a refutation: same meta, checked before
            check_meta(meta)
        was, changed = mem.state, meta != mem.meta or addr != mem.addr or port != mem.port
        mem.inc, mem.addr, mem.port, mem.meta = inc, addr, port, meta
        self.set_state(mem, ALIVE, now)
        self.broadcast_alive(mem)
        if was in (DEAD, LEFT):
            self.event("join", mem)
        elif was == SUSPECT or changed:
            self.event("update", mem)

    def on_suspect(self, name, inc, origin, now):
        mem = self.members.get(name)
        if mem is None or inc < mem.inc:
            return
        if mem.state != ALIVE:
            found = self.suspicions.get(name)
            if found is not None and found.confirm(origin):  # Lifeguard: an independent confirmation
                self.schedule(found.due, "suspicion", name)
                self.broadcasts.add(name, [SUSPECT, name, inc, origin])
            return
        if mem is self.local:
            return self.refute(inc)
        self.broadcasts.add(name, [SUSPECT, name, inc, origin])
        mem.inc = inc
        self.set_state(mem, SUSPECT, now)
        cfg = self.cfg
        k = cfg.suspicion_mult - 2 if cfg.lifeguard else 0
        if self.live - 2 < k:
            k = 0  # too few members to expect confirmations: wait the minimum
        low = suspicion_timeout(cfg.suspicion_mult, self.live, cfg.probe_interval_ms)
        high = cfg.suspicion_max_mult * low if cfg.lifeguard else low
        found = self.suspicions[name] = Suspicion(inc, origin, k, low, high, now)
        self.schedule(found.due, "suspicion", name)
        self.event("update", mem)

    def on_dead(self, name, inc, origin, now):
        mem = self.members.get(name)
        if mem is None or inc < mem.inc or mem.state in (DEAD, LEFT):
            return
        if mem is self.local and not self.leaving:
            return self.refute(inc)
        self.broadcasts.add(name, [DEAD, name, inc, origin])
        mem.inc = inc
        left = origin == name
        self.set_state(mem, LEFT if left else DEAD, now)
        self.event("leave" if left else "failed", mem)

    def expire(self, name, now):
        """A suspicion timer ran out: declare the member dead, unless it refuted meanwhile."""
        found, mem = self.suspicions.get(name), self.members.get(name)
        if found is None or mem is None or mem.state != SUSPECT or now < found.due:
            return
        self.declared.append((name, mem.inc, now))
        self.on_dead(name, mem.inc, self.name, now)

    def refute(self, accused):
        """SWIM §4.2: only a member raises its own incarnation, past the accused one."""
        local = self.local
        local.inc = max(local.inc, accused) + 1
        self.refuted += 1
        if self.cfg.lifeguard:
            self.awareness.apply(1)  # Lifeguard §IV.A: being suspected hints that we are the slow one
        self.broadcast_alive(local)

    def merge(self, states, now):
        """A push-pull's remote view. Dead there is only suspect here: we check for ourselves."""
        members = self.members
        for entry in states:
            if type(entry) is list and len(entry) == 6 and entry[4] == ALIVE and type(entry[3]) is int:
                mem = members.get(entry[0])
                if mem is not None and mem is not self.local and entry[3] <= mem.inc:
                    continue  # old news, the common case: not worth checking further
            name, addr, port, inc, state, meta = parse_state(entry)
            if state == ALIVE:
                self.on_alive(name, inc, addr, port, meta, now)
            elif state == LEFT:
                self.on_dead(name, inc, name, now)
            else:
                self.on_suspect(name, inc, self.name, now)

    # -- our own changes -------------------------------------------------------------------

    def update_meta(self, meta, now):
        local = self.local
        local.meta, local.inc, local.since = meta, local.inc + 1, now
        self.broadcast_alive(local)
        self.event("update", local)

    def leave(self, now):
        self.leaving = True
        self.on_dead(self.name, self.local.inc, self.name, now)

    def reap(self, now):
        for mem in list(self.members.values()):
            timeout = {DEAD: self.cfg.reconnect_timeout_ms, LEFT: self.cfg.tombstone_timeout_ms}.get(mem.state)
            if timeout is not None and mem is not self.local and now - mem.since >= timeout:
                del self.members[mem.name]
                self.broadcasts.drop(mem.name)
                self.event("reap", mem)

    # -- state -----------------------------------------------------------------------------

    def set_state(self, mem, state, now):
        self.live += (state in LIVE) - (mem.state in LIVE)
        mem.state, mem.since = state, now
        if state != SUSPECT:
            self.suspicions.pop(mem.name, None)

    def broadcast_alive(self, mem):
        self.broadcasts.add(mem.name, [ALIVE, mem.name, mem.inc, mem.addr, mem.port, mem.meta])

    def event(self, kind, mem):
        self.events.append((kind, mem, self.status(mem)))

    def status(self, mem):
        if mem is self.local and self.leaving:
            return "left" if self.left else "leaving"
        return STATUS[mem.state]

    def local_state(self):
        return [[x.name, x.addr, x.port, x.inc, x.state, x.meta] for x in self.members.values()]

    def member_map(self, mem, status=None):
        return member_map(mem.name, mem.addr, mem.port, mem.inc, status or self.status(mem), mem.meta)


# -- checking what the network says ---------------------------------------------------------


def _bad(detail):
    return wire.WireError("field", detail)


# What every service reads of a member: a meta without them would fail each reader, not this one.
NODE_PORTS = frozenset({"gossip", "executor"})
SERVER_PORTS = NODE_PORTS | {"raft", "peer", "state", "run", "dispatcher", "output"}


def check_meta(meta):
    try:
        ok = (meta["role"] in ("server", "agent") and isinstance(meta["version"], str)
              and all(isinstance(k, str) and type(v) is int and 0 < v < 65536 for k, v in meta["ports"].items())
              and (SERVER_PORTS if meta["role"] == "server" else NODE_PORTS) <= set(meta["ports"])
              and all(isinstance(x, str) for x in meta["executors"])
              and all(isinstance(k, str) and isinstance(v, str) for k, v in meta["tags"].items())
              and _protocol_range(meta.get("protocol", [1, 1]))
              and (isinstance(meta.get("key", ""), str) and len(meta.get("key", "")) in (0, 40)))
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise _bad("member meta is not {role, ports, executors, tags, version, protocol?, key?}")
    return meta


def _protocol_range(value):
    return (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)
            and 1 <= value[0] <= value[1] < 1 << 16)


def _member_fields(name, inc, addr, port):
    if not (isinstance(name, str) and name and type(inc) is int and inc >= 0
            and isinstance(addr, str) and type(port) is int and 0 <= port <= 65535):
        raise _bad("member name, incarnation, address or port has the wrong type")


def parse_state(entry):
    if not isinstance(entry, list) or len(entry) != 6:
        raise _bad("member state is not [name, addr, port, inc, state, meta]")
    name, addr, port, inc, state, meta = entry
    _member_fields(name, inc, addr, port)
    if state not in STATUS:
        raise _bad(f"unknown member state {state!r}")
    return name, addr, port, inc, state, meta  # checked by on_alive, if news: most of a push-pull is not


def parse_update(update):
    """An update as a list the core applies; WireError('field') for anything else. Hot: every
    datagram carries several, so the common shapes are checked inline."""
    if type(update) is not list or not update:
        raise _bad("update is not a list")
    kind, size = update[0], len(update)
    if (kind == SUSPECT or kind == DEAD) and size == 4:
        name, inc, origin = update[1], update[2], update[3]
        if type(name) is str and name and type(inc) is int and inc >= 0 and type(origin) is str:
            return update
        raise _bad("suspect or dead update is not [kind, name, inc, origin]")
    if kind == ALIVE and size == 6:
        _member_fields(update[1], update[2], update[3], update[4])
        return update  # the meta is checked if the update is news (Roster.on_alive): most are not
    if kind == "e" and size == 4:
        ltime, name, payload = update[1:]
        if not (type(ltime) is int and ltime >= 0 and isinstance(name, str) and isinstance(payload, bytes)):
            raise _bad("user event is not [e, ltime, name, payload]")
        return update
    raise _bad(f"unknown update {kind!r} of {size} items")
