"""SWIM membership with Lifeguard as a pure core (memberlist's protocol): probes, indirect
probes with nacks, suspicion, piggybacked dissemination, push-pull, joins, leave, reap, tags
and Lamport-ordered user events. Time and a seeded random.Random come in; datagrams go out."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from common import messages as m
from common import wire
from services.gossip.broadcasts import Broadcasts
from services.gossip.events import UserEvents
from services.gossip.order import ProbeOrder
from services.gossip.roster import (ALIVE, DEAD, LEFT, LIVE, SUSPECT, Roster, local_member, local_meta,
                                    member_map, parse_update)
from services.gossip.suspicion import Awareness, retransmit_limit

__all__ = ["Config", "Gossip", "Ready", "local_member", "local_meta", "member_map"]

REAP_INTERVAL_MS = 15_000   # Serf's reap interval: failed and left members are checked for removal
HEADROOM_BYTES = 160        # header and fixed fields of a datagram, beside its updates (a test checks it)
PUSH_PULL_SCALE_FROM = 32   # memberlist scales the push-pull interval past this many members


@dataclass(frozen=True)
class Config:
    """[gossip] in conf/node.toml, in milliseconds; `overhead` is what the shell adds to each
    datagram (encryption), so that a sealed datagram still fits in packet_bytes."""

    probe_interval_ms: int = 1000
    probe_timeout_ms: int = 500
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_mult: int = 6
    awareness_max: int = 8
    retransmit_mult: int = 4
    gossip_interval_ms: int = 200
    gossip_nodes: int = 3
    gossip_to_dead_ms: int = 30_000
    push_pull_interval_ms: int = 30_000
    reconnect_interval_ms: int = 30_000
    reconnect_timeout_ms: int = 86_400_000
    tombstone_timeout_ms: int = 86_400_000
    retry_interval_ms: int = 1000
    retry_max_ms: int = 30_000
    leave_propagate_ms: int = 1000
    packet_bytes: int = 1400
    lifeguard: bool = True
    overhead: int = 0

    @classmethod
    def from_conf(cls, gossip, overhead=0):
        names = [f for f in cls.__dataclass_fields__ if f != "overhead"]
        return cls(**{f: getattr(gossip, f) for f in names}, overhead=overhead)


@dataclass
class Ready:
    datagrams: list = field(default_factory=list)    # (addr, port, msg) over UDP
    syncs: list = field(default_factory=list)        # (token, addr, port, gossip.sync) over the stream
    events: list = field(default_factory=list)       # (kind, member map): join update leave failed reap
    user_events: list = field(default_factory=list)  # {ltime, name, payload}


class Probe:
    __slots__ = ("seq", "target", "acked", "indirect", "expected", "nacks")

    def __init__(self, seq, target):
        self.seq, self.target = seq, target
        self.acked = self.indirect = False
        self.expected = self.nacks = 0


def push_pull_interval(interval_ms, members):
    """memberlist's pushPullScale: past 32 members, one more interval per doubling, so that
    the cluster's total full-state traffic grows like n log n rather than n²."""
    if members <= PUSH_PULL_SCALE_FROM:
        return interval_ms
    return interval_ms * (math.ceil(math.log2(members) - math.log2(PUSH_PULL_SCALE_FROM)) + 1)


class Gossip:
    def __init__(self, cfg, *, name, addr, port, meta, rng, now, retry_join=()):
        self.cfg, self.name, self.addr, self.port, self.rng = cfg, name, addr, port, rng
        self.awareness = Awareness(cfg.awareness_max if cfg.lifeguard else 1)
        self.broadcasts = Broadcasts()
        self.timers, self.tseq = [], 0
        self.roster = Roster(name, addr, port, meta, cfg=cfg, awareness=self.awareness,
                             broadcasts=self.broadcasts, schedule=self.at, now=now)
        self.order = ProbeOrder(self.roster, rng)
        self.roster.on_new = self.order.add
        self.probe, self.relays, self.seq = None, {}, 0
        self.events = UserEvents(self.broadcasts)
        self.out, self.syncs = [], []
        self.tokens, self.joining, self.join_waiting, self.join_attempt = 0, [], set(), 0
        self.retry_join = list(retry_join)
        self.event_maps = True  # off in the simulator, which reads only names and statuses
        self.budget = cfg.packet_bytes - cfg.overhead - HEADROOM_BYTES - 2 * len(name) - len(addr)
        self.roster.broadcast_alive(self.roster.local)
        self.at(now + rng.randrange(cfg.probe_interval_ms), "probe")  # staggered, as memberlist does
        self.at(now + rng.randrange(cfg.gossip_interval_ms), "gossip")
        self.at(now + REAP_INTERVAL_MS, "reap")
        if cfg.push_pull_interval_ms:
            self.at(now + rng.randrange(cfg.push_pull_interval_ms), "push_pull")
        if cfg.reconnect_interval_ms:
            self.at(now + cfg.reconnect_interval_ms, "reconnect")

    # -- the common core API ---------------------------------------------------------------

    def step(self, env, now):
        """A datagram. Raises wire.WireError('field') on a malformed update (the shell counts it)."""
        msg = env.msg
        if self.roster.left:
            if isinstance(msg, m.GossipPing) and msg.addr and msg.node in ("", self.name):
                # Whoever did not hear of our leave learns it here instead of suspecting us.
                self.out.append((msg.addr, msg.port, m.GossipAck(seq=msg.seq, updates=[self.leave_update()])))
            return
        self.apply_all(msg.updates, now)
        handler = self.HANDLERS.get(type(msg))
        if handler is not None:
            handler(self, env, now)

    def tick(self, now):
        while self.timers and self.timers[0][0] <= now:
            _, _, kind, arg = heapq.heappop(self.timers)
            self.TIMERS[kind](self, now, arg)

    def deadline(self):
        return self.timers[0][0] if self.timers else None

    def has_ready(self):
        return bool(self.out or self.syncs or self.roster.events or self.events.delivered)

    def ready(self):
        """Hands the pending effects over (the buffers start empty again)."""
        if self.event_maps:
            events = [(k, self.roster.member_map(x, s)) for k, x, s in self.roster.events]
        else:
            events = [(k, {"name": x.name, "status": s}) for k, x, s in self.roster.events]
        rd = Ready(self.out, self.syncs, events, self.events.delivered)
        self.out, self.syncs, self.roster.events, self.events.delivered = [], [], [], []
        return rd

    def advance(self, rd):
        """Kept for the API every core shares; ready() has already handed everything over."""

    # -- commands from the shell -----------------------------------------------------------

    def join(self, addrs, now):
        """Push-pull with each (host, port) until one answers, backing off between rounds."""
        self.joining, self.join_waiting, self.join_attempt = list(addrs), set(), 0
        if self.joining:
            self.at(now, "join")

    def synced(self, token, env, now):
        """The answer to one of our gossip.sync (None: it failed or timed out)."""
        if env is not None and isinstance(env.msg, m.GossipSync) and not self.roster.left:
            self.merge(env.msg, now)
        if token in self.join_waiting:
            self.join_waiting.discard(token)
            if env is not None:
                self.joining, self.join_waiting = [], set()
            elif not self.join_waiting:
                self.join_attempt += 1
                delay = min(self.cfg.retry_max_ms, self.cfg.retry_interval_ms << min(self.join_attempt - 1, 20))
                self.at(now + delay + self.rng.randrange(max(1, delay // 10)), "join")

    def on_sync(self, env, now):
        """Someone's push-pull or join: merge their view, answer with ours."""
        reply = m.GossipSync(members=self.roster.local_state(), ltime=self.events.clock)
        if not self.roster.left:
            self.merge(env.msg, now)
        return reply

    def leave(self, now):
        if self.roster.leaving:
            return
        self.roster.leave(now)
        self.probe = None
        self.at(now + self.cfg.leave_propagate_ms, "left")
        # Told to each member directly too: a leave that misses a member by chance (retransmits
        # are few in small clusters) would otherwise end as a failure there.
        for mem in self.roster.members.values():
            if mem.state in LIVE and mem is not self.roster.local:
                self.out.append((mem.addr, mem.port, m.GossipBroadcast(updates=[self.leave_update()])))

    def leave_update(self):
        return [DEAD, self.name, self.roster.local.inc, self.name]

    def update_meta(self, meta, now):
        if meta != self.roster.local.meta:
            self.roster.update_meta(meta, now)

    def fire_event(self, name, payload, now):
        """A user event (Serf): stamped with our Lamport clock, delivered here and everywhere."""
        return self.events.fire(name, payload)

    def members(self):
        roster = self.roster
        return sorted((roster.member_map(x) for x in roster.members.values()), key=lambda x: x["name"])

    # -- datagrams -------------------------------------------------------------------------

    def apply_all(self, updates, now):
        """Old news (most of what arrives) is passed over here, before any further checks:
        nothing in it would be used. The rest is checked in full, then applied."""
        members, local, suspicions = self.roster.members, self.roster.local, self.roster.suspicions
        for update in updates:
            if type(update) is list and len(update) in (4, 6):
                mem = members.get(update[1])
                if mem is not None and mem is not local and type(update[2]) is int:
                    kind, inc = update[0], update[2]
                    if kind == ALIVE:
                        if inc <= mem.inc:
                            continue
                    elif kind == SUSPECT:
                        if inc < mem.inc or mem.state != ALIVE and (not suspicions.get(update[1])
                                                                    or suspicions[update[1]].knows(update[3])):
                            continue
                    elif kind == DEAD and (inc < mem.inc or mem.state == DEAD or mem.state == LEFT):
                        continue
            self.apply(parse_update(update), now)

    def apply(self, update, now):
        roster, kind = self.roster, update[0]
        if kind == ALIVE:
            roster.on_alive(update[1], update[2], update[3], update[4], update[5], now)
        elif kind == SUSPECT:
            roster.on_suspect(update[1], update[2], update[3], now)
        elif kind == DEAD:
            roster.on_dead(update[1], update[2], update[3], now)
        else:
            self.events.receive(update[1], update[2], update[3])

    def on_ping(self, env, now):
        msg = env.msg
        if msg.node and msg.node != self.name or not msg.addr:
            return  # meant for whoever had this address before us
        extra = []
        sender = self.roster.members.get(env.sender)
        if sender is not None and sender.state == DEAD:
            # It is alive after all but may not know we hold it dead: tell it, so it refutes now
            # rather than at its next push-pull (the buddy idea of Lifeguard §IV.C, for the dead).
            extra.append([DEAD, sender.name, sender.inc, self.name])
        self.send(msg.addr, msg.port, m.GossipAck, extra, seq=msg.seq)

    def on_ping_req(self, env, now):
        msg = env.msg
        seq = self.next_seq()
        self.relays[seq] = (msg.addr, msg.port, msg.seq, msg.nack)
        self.send(msg.target_addr, msg.target_port, m.GossipPing, seq=seq, node=msg.node, addr=self.addr,
                  port=self.port)
        self.at(now + self.cfg.probe_timeout_ms, "relay", seq)

    def on_ack(self, env, now):
        seq, probe = env.msg.seq, self.probe
        if probe is not None and probe.seq == seq:
            if not probe.acked and self.cfg.lifeguard and not probe.indirect:
                self.awareness.apply(-1)
            probe.acked = True
            return
        relay = self.relays.pop(seq, None)
        if relay is not None:
            self.send(relay[0], relay[1], m.GossipAck, seq=relay[2])

    def on_nack(self, env, now):
        if self.probe is not None and self.probe.seq == env.msg.seq:
            self.probe.nacks += 1

    def on_broadcast(self, env, now):
        """Its updates were applied in step()."""

    HANDLERS = {m.GossipPing: on_ping, m.GossipPingReq: on_ping_req, m.GossipAck: on_ack,
                m.GossipNack: on_nack, m.GossipBroadcast: on_broadcast}

    # -- timers ----------------------------------------------------------------------------

    def at(self, due, kind, arg=None):
        self.tseq += 1
        heapq.heappush(self.timers, (due, self.tseq, kind, arg))

    def tick_probe(self, now, _):
        """SWIM §3.1: one member per protocol period, round robin over a shuffled order."""
        self.finish_probe(now)
        if self.roster.leaving:
            return
        self.at(now + self.awareness.scale(self.cfg.probe_interval_ms), "probe")
        target = self.order.next_target()
        if target is None:
            return
        self.probe = Probe(self.next_seq(), target.name)
        buddy = []
        if self.cfg.lifeguard and target.state == SUSPECT:
            buddy.append([SUSPECT, target.name, target.inc, self.name])  # Lifeguard §IV.C: tell the suspect first
        self.send(target.addr, target.port, m.GossipPing, buddy, seq=self.probe.seq, node=target.name,
                  addr=self.addr, port=self.port)
        self.at(now + self.awareness.scale(self.cfg.probe_timeout_ms), "indirect", self.probe.seq)

    def tick_indirect(self, now, seq):
        probe = self.probe
        if probe is None or probe.seq != seq or probe.acked:
            return
        target = self.roster.members.get(probe.target)
        if target is None:
            return
        probe.indirect = True
        peers = self.order.pick(self.cfg.indirect_checks, lambda x: x.state == ALIVE and x is not target)
        for peer in peers:
            self.send(peer.addr, peer.port, m.GossipPingReq, seq=seq, node=target.name, target_addr=target.addr,
                      target_port=target.port, addr=self.addr, port=self.port, nack=self.cfg.lifeguard)
        probe.expected = len(peers) if self.cfg.lifeguard else 0

    def finish_probe(self, now):
        probe, self.probe = self.probe, None
        if probe is None or probe.acked:
            return
        if self.cfg.lifeguard:
            # Lifeguard §IV.A: relays that did not even nack point at us, not at the target.
            self.awareness.apply(probe.expected - probe.nacks if probe.expected else 1)
        target = self.roster.members.get(probe.target)
        if target is not None and target.state in LIVE:
            self.roster.on_suspect(target.name, target.inc, self.name, now)

    def tick_relay(self, now, seq):
        relay = self.relays.pop(seq, None)
        if relay is not None and relay[3]:
            self.send(relay[0], relay[1], m.GossipNack, seq=relay[2])

    def tick_gossip(self, now, _):
        self.at(now + self.cfg.gossip_interval_ms, "gossip")
        if not self.broadcasts or self.roster.left:
            return
        recent = self.cfg.gossip_to_dead_ms
        limit = self.limit()
        for peer in self.order.pick(self.cfg.gossip_nodes,
                                        lambda x: x.state in LIVE or now - x.since <= recent):
            updates = self.broadcasts.take(self.budget, limit)
            if not updates:
                break
            self.out.append((peer.addr, peer.port, m.GossipBroadcast(updates=updates)))

    def tick_push_pull(self, now, _):
        self.at(now + push_pull_interval(self.cfg.push_pull_interval_ms, self.roster.live), "push_pull")
        if not self.roster.leaving:
            for peer in self.order.pick(1, lambda x: x.state == ALIVE):
                self.sync_to(peer.addr, peer.port)

    def tick_reconnect(self, now, _):
        """Serf's reconnect: now and then push-pull with a failed member, which is how the two
        sides of a healed partition find each other (nobody probes or gossips to the dead)."""
        self.at(now + self.cfg.reconnect_interval_ms, "reconnect")
        if self.roster.leaving:
            return
        if self.retry_join and self.roster.live <= 1 and not self.joining:
            self.join(self.retry_join, now)
        failed = [x for x in self.roster.members.values() if x.state == DEAD]
        if failed and self.rng.random() < len(failed) / max(1, self.roster.live):
            peer = self.rng.choice(failed)
            self.sync_to(peer.addr, peer.port, join=True)

    def tick_join(self, now, _):
        if self.joining and not self.join_waiting:
            self.join_waiting = {self.sync_to(host, port, join=True) for host, port in self.joining}

    def tick_reap(self, now, _):
        self.at(now + REAP_INTERVAL_MS, "reap")
        self.roster.reap(now)

    def tick_suspicion(self, now, name):
        self.roster.expire(name, now)

    def tick_left(self, now, _):
        self.roster.left = True
        self.roster.event("leave", self.roster.local)

    TIMERS = {"probe": tick_probe, "indirect": tick_indirect, "relay": tick_relay, "gossip": tick_gossip,
              "push_pull": tick_push_pull, "reconnect": tick_reconnect, "join": tick_join, "reap": tick_reap,
              "suspicion": tick_suspicion, "left": tick_left}

    # -- helpers ---------------------------------------------------------------------------

    def send(self, to_addr, to_port, cls, updates=(), /, **fields):
        """One datagram, with as many pending updates piggybacked as fit (SWIM §4.1)."""
        updates = list(updates)
        room = self.budget - sum(len(wire.pack(x)) for x in updates)
        updates += self.broadcasts.take(room, self.limit())
        self.out.append((to_addr, to_port, cls(updates=updates, **fields)))

    def sync_to(self, addr, port, join=False):
        self.tokens += 1
        self.syncs.append((self.tokens, addr, port,
                           m.GossipSync(members=self.roster.local_state(), ltime=self.events.clock, join=join)))
        return self.tokens

    def merge(self, msg, now):
        self.events.witness(msg.ltime)
        self.roster.merge(msg.members, now)

    def limit(self):
        return retransmit_limit(self.cfg.retransmit_mult, self.roster.live)

    def next_seq(self):
        self.seq += 1
        return self.seq
