"""A deterministic, seeded simulator for the pure gossip core: one virtual clock, a network with
loss, latency and partitions, members that crash, stall, leave or run slowed, and invariant
checks as it goes. `scripts/simulate gossip --nodes 1000 --seed N` prints issue 4's figures."""

from __future__ import annotations

import dataclasses
import gc
import heapq
import math
import operator
import random
import time
from dataclasses import dataclass

from common import wire
from services.gossip.core import Config, Gossip
from services.gossip.roster import local_meta

TICK, DELIVER, LATE, SYNC_REQ, SYNC_REPLY, EPISODE = range(6)  # at one instant, timers run first
PORT = 7946
STREAM_TIMEOUT_MS = 10_000
CHECK_EVERY_MS = 500
SERVICE_PORTS = {"raft": 8191, "peer": 8190, "state": 8192, "gossip": 8947, "run": 6868,
                 "dispatcher": 6869, "output": 6870, "executor": 6871}
_FIELDS = {}   # message class → its field values but the updates, as a tuple
_FIXED = {}    # (message class, sender) → bytes of everything but field values and updates
_SIZES = {}   # id(update) → packed size
SIZES_KEPT = 500_000  # past this many, the sizes are forgotten (updates live a few seconds in a queue)
_KEPT = []    # the updates _SIZES knows, held so that no other object takes their ids
_ID = bytes(16)


class Violation(AssertionError):
    pass


class Arrival:
    """What the core reads of a delivered datagram's envelope (wire.Envelope is frozen and
    costs a microsecond to build: ten million datagrams make that seconds)."""

    __slots__ = ("sender", "msg")

    def __init__(self, sender, msg):
        self.sender, self.msg = sender, msg


@dataclass
class Faults:
    loss: float = 0.0            # each datagram is lost with this chance
    latency_ms: tuple = (1, 5)   # one-way, uniform
    slow: float = 0.0            # fraction of members slowed (CPU-starved) now and then
    lag_ms: tuple = (1000, 16_000)  # in a slow episode, each datagram waits this long (uniform) to be read
    episode_ms: int = 10_000     # mean length of a slow episode (exponential)
    episode_gap_ms: int = 120_000  # mean time between two episodes of one member (exponential)


class Node:
    __slots__ = ("name", "addr", "core", "up", "paused_until", "slow", "lagging", "group", "next_tick", "sent")

    def __init__(self, name, addr, core):
        self.name, self.addr, self.core = name, addr, core
        self.up, self.paused_until, self.slow, self.lagging, self.group = True, 0, False, False, None
        self.next_tick, self.sent = math.inf, 0


class Sim:
    def __init__(self, count, seed, *, cfg=None, faults=None, wire_check=False, check=False):
        self.rng = random.Random(seed)
        self.seed, self.cfg, self.faults = seed, cfg or Config(), faults or Faults()
        self.wire_check, self.check_on = wire_check, check
        self.now, self.queue, self.qseq = 0, [], 0
        self.nodes, self.by_addr, self.count = {}, {}, 0
        self.bytes_udp = self.bytes_tcp = self.datagrams = 0
        self.failed_at = {}       # member → {observer: last time it was seen failed}
        self.left_seen = {}       # member → observers that saw it leave
        self.suspected = {}       # member → observers that suspected it at some point
        self.declarations = []    # (at, observer, member, incarnation): suspicion timers that ran out
        self.killed = {}          # member → when
        self.next_check = 0
        for _ in range(count):
            self.add()
        self.converge()

    # -- membership of the simulation ------------------------------------------------------

    def add(self, join=()):
        """A new member; `join` names members it joins through (else it starts converged)."""
        i = self.count
        self.count += 1
        name, addr = f"node-{i:04d}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        addrs = {k: f"tcp://{addr}:{p}" for k, p in SERVICE_PORTS.items()}
        meta = local_meta("server" if i < 3 else "agent", addrs, {"dc": "dc1", "rack": f"r{i % 8}"}, ["shell"])
        core = Gossip(self.cfg, name=name, addr=addr, port=PORT, meta=meta, rng=random.Random(self.seed * 7919 + i),
                      now=self.now)
        core.event_maps = False
        core.broadcasts.sized = remember_size
        node = self.nodes[name] = Node(name, addr, core)
        self.by_addr[addr, PORT] = node
        if join:
            core.join([(self.nodes[j].addr, PORT) for j in join], self.now)
            self.after(node)
        return node

    def converge(self):
        """Start as a cluster that has long converged: everyone knows everyone, nothing pending."""
        nodes = list(self.nodes.values())
        for node in nodes:
            roster = node.core.roster
            for other in nodes:
                if other is not node:
                    local = other.core.roster.local
                    roster.on_alive(local.name, local.inc, local.addr, PORT, local.meta, self.now, quiet=True)
            node.core.broadcasts.clear()
            self.after(node)

    def kill(self, name):
        self.nodes[name].up = False
        self.killed[name] = self.now

    def pause(self, name, ms):
        self.nodes[name].paused_until = self.now + ms

    def leave(self, name):
        node = self.nodes[name]
        node.core.leave(self.now)
        self.after(node)

    def partition(self, *groups):
        for i, group in enumerate(groups):
            for name in group:
                self.nodes[name].group = i

    def heal(self):
        for node in self.nodes.values():
            node.group = None

    def slow_down(self, names):
        """A slowed member has episodes in which it reads its datagrams seconds late while its
        timers still fire on time: a CPU-starved process whose receive backlog grows (memberlist
        handles packets on one goroutine behind a queue; its timers are other goroutines)."""
        for name in names:
            node = self.nodes[name]
            node.slow = True
            self.push(self.now + int(self.rng.expovariate(1 / self.faults.episode_gap_ms)), EPISODE, node)

    def status(self, observer, member):
        """What `observer` believes of `member`: alive, suspect, failed, left, or None (unknown)."""
        roster = self.nodes[observer].core.roster
        mem = roster.members.get(member)
        return None if mem is None else roster.status(mem)

    def live(self):
        return [n for n in self.nodes.values() if n.up]

    # -- running ---------------------------------------------------------------------------

    def push(self, at, kind, node, arg=None):
        self.qseq += 1
        heapq.heappush(self.queue, (at, kind, self.qseq, node, arg))

    def run_for(self, ms):
        self.run_until(self.now + ms)

    def run_until(self, end):
        queue = self.queue
        while queue and queue[0][0] <= end:
            at, kind, _, node, arg = heapq.heappop(queue)
            self.now = at
            if not node.up:
                continue
            if at < node.paused_until:
                if kind == TICK:
                    node.next_tick = node.paused_until
                self.push(node.paused_until, kind, node, arg)
                continue
            if kind == TICK:
                if at != node.next_tick:
                    continue
                node.next_tick = math.inf
                node.core.tick(at)
            elif kind == EPISODE:
                node.lagging = not node.lagging
                mean = self.faults.episode_ms if node.lagging else self.faults.episode_gap_ms
                self.push(at + int(self.rng.expovariate(1 / mean)), EPISODE, node)
                continue
            elif kind == DELIVER and node.lagging:
                self.push(at + self.rng.randint(*self.faults.lag_ms), LATE, node, arg)
                continue
            elif kind in (DELIVER, LATE):
                node.core.step(arg, at)
            elif kind == SYNC_REQ:
                self.answer_sync(node, *arg)
            else:
                node.core.synced(arg[0], arg[1], at)
            self.after(node)
            if self.check_on and at >= self.next_check:
                self.next_check = at + CHECK_EVERY_MS
                self.check()
        self.now = max(self.now, end)

    def after(self, node):
        """Carry out what the core asked for, then make sure its next deadline is queued."""
        core = node.core
        if core.has_ready():
            rd = core.ready()
            for addr, port, msg in rd.datagrams:
                self.send(node, addr, port, msg)
            for token, addr, port, msg in rd.syncs:
                self.sync(node, token, addr, port, msg)
            for kind, member in rd.events:
                if kind == "failed":
                    self.failed_at.setdefault(member["name"], {})[node.name] = self.now
                elif kind == "leave":
                    self.left_seen.setdefault(member["name"], set()).add(node.name)
                elif member["status"] == "suspect":
                    self.suspected.setdefault(member["name"], set()).add(node.name)
            core.advance(rd)
        if core.roster.declared:
            self.declarations += [(at, node.name, name, inc) for name, inc, at in core.roster.declared]
            core.roster.declared.clear()
        due = core.deadline()
        if due is not None and due < node.next_tick:
            node.next_tick = due
            self.push(due, TICK, node)

    def reachable(self, src, dst):
        return dst is not None and dst.up and (src.group is None or dst.group is None or src.group == dst.group)

    def send(self, src, addr, port, msg):
        if self.wire_check:
            data = wire.encode_datagram(msg, src.name)
            size, env = len(data), wire.decode_datagram(data)
        else:
            size, env = datagram_size(msg, src.name), Arrival(src.name, msg)
        self.bytes_udp += size
        self.datagrams += 1
        src.sent += size
        dst = self.by_addr.get((addr, port))
        if not self.reachable(src, dst) or self.faults.loss and self.rng.random() < self.faults.loss:
            return
        lo, hi = self.faults.latency_ms  # randint's cost, at millions of datagrams, shows
        self.push(self.now + lo + int(self.rng.random() * (hi - lo + 1)), DELIVER, dst, env)

    def sync(self, src, token, addr, port, msg):
        self.bytes_tcp += len(wire.pack(msg.members))
        dst = self.by_addr.get((addr, port))
        if not self.reachable(src, dst):
            self.push(self.now + STREAM_TIMEOUT_MS, SYNC_REPLY, src, (token, None))
            return
        env = wire.Envelope(msg.TYPE, src.name, _ID, b"", 0, msg)
        self.push(self.now + self.rng.randint(*self.faults.latency_ms), SYNC_REQ, dst, (src, token, env))

    def answer_sync(self, node, src, token, env):
        reply = node.core.on_sync(env, self.now)
        self.bytes_tcp += len(wire.pack(reply.members))
        answer = wire.Envelope(reply.TYPE, node.name, _ID, b"", 0, reply)
        if self.reachable(node, src):
            self.push(self.now + self.rng.randint(*self.faults.latency_ms), SYNC_REPLY, src, (token, answer))
        else:
            self.push(self.now + STREAM_TIMEOUT_MS, SYNC_REPLY, src, (token, None))

    # -- invariants ------------------------------------------------------------------------

    def check(self):
        """Only a member raises its own incarnation, so nobody's view of a member is ahead of
        the member itself; and no member that is up believes itself suspect or dead."""
        for node in self.nodes.values():
            if not node.up:
                continue
            roster = node.core.roster
            if roster.status(roster.local) not in ("alive", "leaving", "left"):
                raise Violation(f"t={self.now} {node.name} believes itself {roster.status(roster.local)}")
            for name, mem in roster.members.items():
                own = self.nodes[name].core.roster.local.inc
                if mem.inc > own:
                    raise Violation(f"t={self.now} {node.name} holds {name} at incarnation {mem.inc}, "
                                    f"beyond its own {own}")

    def converged(self):
        """Every member that is up sees every other one that is up as alive."""
        live = self.live()
        return all(self.status(a.name, b.name) == "alive" for a in live for b in live if a is not b)


def datagram_size(msg, sender):
    """The bytes wire.encode_datagram would produce, counted without encoding (millions of
    datagrams): a fixed part per message type and sender, each field's msgpack size, and each
    update's size (as its queue measured it: a queued update is sent many times)."""
    cls = type(msg)
    fixed = _FIXED.get((cls, sender))
    if fixed is None:
        names = [f.name for f in dataclasses.fields(cls) if f.name != "updates"]
        _FIELDS[cls] = (lambda msg: ()) if not names else operator.attrgetter(*names) if len(names) > 1 else (
            lambda msg, get=operator.attrgetter(names[0]): (get(msg),))
        # The frame with every value counted apart: keys, header, an empty updates array.
        fixed = _FIXED[cls, sender] = len(wire.pack([[1, msg.TYPE, sender, _ID, b"", 0],
                                                     {"updates": [], **{f: None for f in names}}])) - len(names)
    size = fixed + sum(map(packed_size, _FIELDS[cls](msg)))
    updates = msg.updates
    known = list(map(_SIZES.get, map(id, updates)))
    if None in known:  # an update that did not come through a queue (a buddy's, a leave's)
        known = [remember_size(u, len(wire.pack(u))) if n is None else n for u, n in zip(updates, known)]
    size += sum(known)
    count = len(updates)
    return size + (0 if count < 16 else 2 if count < 65536 else 4)  # msgpack fixarray → array16 → array32


def remember_size(update, size):
    """Each update's bytes, known from the dissemination queue that measured it when queued."""
    if len(_SIZES) > SIZES_KEPT:
        _SIZES.clear()
        _KEPT.clear()
    _SIZES[id(update)] = size
    _KEPT.append(update)
    return size


def packed_size(value):
    """len(wire.pack(value)) for the scalars of a datagram's fields, by msgpack's rules."""
    kind = type(value)
    if kind is int:
        if 0 <= value:
            return 1 if value < 128 else 2 if value < 256 else 3 if value < 65536 else 5 if value < 2**32 else 9
        return 1 if value >= -32 else 2 if value >= -128 else 3 if value >= -32768 else 5 if value >= -2**31 else 9
    if kind is str:
        n = len(value) if value.isascii() else len(value.encode())
        return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
    if value is None or kind is bool:
        return 1
    return len(wire.pack(value))


# -- the figures of issue 4 -----------------------------------------------------------------

KILL_EVERY_MS = 30_000
CONFIGS = {  # name: (what it shows, faults, lifeguard)
    "clean": ("no loss, no slowed members", Faults(), True),
    "loss-lifeguard": ("5% packet loss, Lifeguard on", Faults(loss=0.05), True),
    "loss-swim": ("5% packet loss, plain SWIM", Faults(loss=0.05), False),
    "slow-lifeguard": ("10% of members slowed, Lifeguard on", Faults(slow=0.10), True),
    "slow-swim": ("10% of members slowed, plain SWIM", Faults(slow=0.10), False),
}


def figures(name, nodes, seed, minutes=10, progress=None, faults=None):
    """One configuration: a converged cluster, one healthy member killed every 30 s, and what
    it cost: detection time, false failure declarations, bytes. `faults` overrides the config's."""
    _, default, lifeguard = CONFIGS[name]
    faults = faults or default
    started = time.monotonic()
    sim = Sim(nodes, seed, cfg=Config(lifeguard=lifeguard), faults=faults)
    # Millions of short-lived datagrams: the collector's default thresholds make it run every
    # few hundred of them, a sixth of the run time; collected far less often here.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    gc.freeze()  # the converged cluster's million members live to the end: no collection need walk them
    slowed = set(sim.rng.sample(sorted(sim.nodes), int(nodes * faults.slow)))
    sim.slow_down(sorted(slowed))
    end = minutes * 60_000
    while sim.now < end:
        sim.run_until(min(end, sim.now + KILL_EVERY_MS))
        if sim.now < end:
            victims = sorted(n.name for n in sim.live() if n.name not in slowed)
            sim.kill(sim.rng.choice(victims))
        if progress:
            progress(sim, time.monotonic() - started)
    result = summarize(sim, name, slowed, end, time.monotonic() - started)
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    return result


def summarize(sim, name, slowed, end, wall):
    observers = [n.name for n in sim.live()]
    detect, healthy, missed = [], [], 0
    for member, at in sim.killed.items():
        seen = sim.failed_at.get(member, {})
        if all(o in seen and seen[o] >= at for o in observers):
            detect.append(max(seen[o] for o in observers) - at)
            healthy.append(max(seen[o] for o in observers if o not in slowed) - at)
        else:
            missed += 1
    false = [d for d in sim.declarations if not (d[2] in sim.killed and sim.killed[d[2]] <= d[0])]
    per_hour = 60 * 60_000 / end
    seconds = end / 1000
    probe_s, gossip_s = sim.cfg.probe_interval_ms / 1000, sim.cfg.gossip_interval_ms / 1000
    return {
        "config": name, "what": CONFIGS[name][0], "nodes": len(sim.nodes), "seed": sim.seed,
        "simulated_s": seconds, "wall_s": round(wall, 1),
        "kills": len(sim.killed), "undetected": missed,
        "detect_median_s": _q(detect, 0.5) / 1000, "detect_p99_s": _q(detect, 0.99) / 1000,
        "detect_median_periods": _q(detect, 0.5) / 1000 / probe_s,
        "detect_p99_periods": _q(detect, 0.99) / 1000 / probe_s,
        "detect_median_gossip_rounds": _q(detect, 0.5) / 1000 / gossip_s,
        "detect_p99_gossip_rounds": _q(detect, 0.99) / 1000 / gossip_s,
        "detect_healthy_median_s": _q(healthy, 0.5) / 1000, "detect_healthy_p99_s": _q(healthy, 0.99) / 1000,
        "false_declarations": len(false),
        "false_declarations_per_hour": len(false) * per_hour,
        "false_about_healthy_per_hour": sum(d[2] not in slowed for d in false) * per_hour,
        "false_about_slowed_per_hour": sum(d[2] in slowed for d in false) * per_hour,
        "false_failures_per_hour": len({(d[2], d[3]) for d in false}) * per_hour,
        "udp_bytes_per_member_s": sim.bytes_udp / len(sim.nodes) / seconds,
        "tcp_bytes_per_member_s": sim.bytes_tcp / len(sim.nodes) / seconds,
        "datagrams_per_member_s": sim.datagrams / len(sim.nodes) / seconds,
    }


def _q(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)] if q < 1 else values[-1]


def report(fig):
    return (f"{fig['config']:<15} {fig['what']}: {fig['nodes']} members, {fig['simulated_s']:.0f} s simulated "
            f"in {fig['wall_s']:.0f} s (seed {fig['seed']})\n"
            f"  detection of {fig['kills']} killed members ({fig['undetected']} not known everywhere by the end): "
            f"median {fig['detect_median_s']:.1f} s = {fig['detect_median_periods']:.1f} protocol periods "
            f"({fig['detect_median_gossip_rounds']:.0f} gossip rounds), p99 {fig['detect_p99_s']:.1f} s = "
            f"{fig['detect_p99_periods']:.1f} periods ({fig['detect_p99_gossip_rounds']:.0f} rounds)"
            + (f"; every healthy member knows: median {fig['detect_healthy_median_s']:.1f} s, "
               f"p99 {fig['detect_healthy_p99_s']:.1f} s" if fig["detect_healthy_median_s"] != fig["detect_median_s"]
               else "") + "\n"
            f"  false failure declarations: {fig['false_declarations']} in the window = "
            f"{fig['false_declarations_per_hour']:.0f}/h extrapolated (about healthy members "
            f"{fig['false_about_healthy_per_hour']:.0f}/h, about slowed ones "
            f"{fig['false_about_slowed_per_hour']:.0f}/h; "
            f"distinct member+incarnation {fig['false_failures_per_hour']:.0f}/h)\n"
            f"  bytes per member per second: {fig['udp_bytes_per_member_s']:.0f} UDP "
            f"({fig['datagrams_per_member_s']:.1f} datagrams) + {fig['tcp_bytes_per_member_s']:.0f} TCP push-pull")

