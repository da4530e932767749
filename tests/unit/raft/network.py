"""Pure Raft cores wired together in memory, for the unit tests and the transcripts: each Ready
is carried out in the shell's order (install, persist, send, apply, read), messages travel as
wire Envelopes, and a partition drops them as they leave. No clock, no sleep, no loop without
a bound: a run that does not settle fails with a message."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from common import wire
from services.raft.core import CONF, FOLLOWER, LEADER, NORMAL, Config, Entry, Membership, Raft, carry_out

TICK_MS = 50
STABILIZE_ROUNDS = 100
BOUND = 400  # ticks or rounds any loop of a test may take before the test fails
ELECTION_TICKS = Config("").election_ticks


def envelope(sender, msg, term, via_wire=False):
    if via_wire:  # through the real codec: proves the core's messages are valid on the wire
        return wire.decode(wire.encode(msg, sender, term=term))
    return wire.Envelope(msg.TYPE, sender, wire.new_id(), b"", term, msg)


def membership(voters, learners=()):
    return Membership({v: {} for v in voters}, {n: {} for n in learners})


def conf_entry(index, term, voters, learners=()):
    return Entry(index, term, wire.pack(membership(voters, learners).to_plain()), CONF)


def config(node_id, **conf):
    return Config(node_id, tick_ms=TICK_MS, **conf)


def node(node_id, voters, *, seed=1, hard_state=None, log=(), learners=(), **conf):
    """A core of a founded cluster: index 1 is the founding configuration (term 1, committed),
    and log is [(term, data)] from index 2 on."""
    entries = [conf_entry(1, 1, voters, learners)] + [Entry(i, t, d) for i, (t, d) in enumerate(log, start=2)]
    return Raft(config(node_id, **conf), rng=random.Random(seed), hard_state=hard_state or (1, "", 1),
                entries=entries, now=0)


def empty_node(node_id, *, seed=1, hard_state=(0, "", 0), **conf):
    """A server with an empty log: it founds a cluster (bootstrap) or waits to be added."""
    return Raft(config(node_id, **conf), rng=random.Random(seed), hard_state=hard_state, now=0)


def entries_from(core, index):
    return core.log.slice(index, core.log.last_index() + 1)


def cluster(ids="abc", leader="a", **kw):
    """A founded cluster whose `leader` won the first election (term 2)."""
    net = Network.of(list(ids), **kw)
    net.campaign(leader)
    assert net.cores[leader].role == LEADER, net.roles()
    return net


@dataclass
class Disk:
    hard_state: tuple = (0, "", 0)
    snapshot: object = None
    entries: list = field(default_factory=list)


class Network:
    """process() carries out one node's Ready; deliver() steps the queued messages into their
    destinations; stabilize() alternates the two until nothing moves."""

    def __init__(self, cores=(), via_wire=False):
        self.via_wire = via_wire
        self.cores, self.clock, self.disk = {}, {}, {}
        self.persisted, self.applied, self.reads, self.installed = {}, {}, {}, {}
        self.queue = []          # (sender, to, msg, term) in send order
        self.dropped = []        # (sender, to, msg, term) lost to a partition or a missing node
        self.leaders = {}        # term → set of nodes that led it
        self.snapshots = {}      # index → the applied entries a snapshot at that index holds
        self.groups = None       # list of sets of node ids while partitioned
        self.drop_types = set()  # message types lost on the way (e.g. "raft.snapshot")
        for core in cores:
            self.add(core)

    @classmethod
    def of(cls, ids, seed=1, via_wire=False, **kw):
        return cls([node(i, ids, seed=seed + k, **kw) for k, i in enumerate(ids)], via_wire=via_wire)

    def add(self, core):
        nid = core.id
        self.cores[nid] = core
        self.clock.setdefault(nid, 0)
        self.disk[nid] = Disk(core.hs_saved, core.log.snapshot, list(core.log.slice(core.log.offset + 1,
                                                                                     core.log.last_index() + 1)))
        for book in (self.persisted, self.applied, self.reads, self.installed):
            book.setdefault(nid, [])
        return core

    # -- partitions ------------------------------------------------------------------------

    def partition(self, *groups):
        """Only nodes of one group talk; a node named in no group is cut off alone."""
        self.groups = [set(g) for g in groups]

    def isolate(self, nid):
        self.partition([nid], [n for n in self.cores if n != nid])

    def heal(self):
        self.groups = None

    def reachable(self, a, b):
        return self.groups is None or any(a in g and b in g for g in self.groups)

    # -- running ---------------------------------------------------------------------------

    def process(self, nid):
        """Carry out nid's Ready; the Ready, or None when it had nothing to do."""
        core = self.cores[nid]
        rd = core.ready()
        if rd.empty():
            return None
        carry_out(rd, install=lambda snap: self.install(nid, snap),
                  persist=lambda hs, entries, snap: self.persist(nid, hs, entries, snap),
                  send=lambda to, msg, term: self.send(nid, to, msg, term),
                  apply=self.applied[nid].extend,
                  read=lambda ctx, index: self.reads[nid].append((ctx, index)))
        core.advance(rd)
        if rd.soft_state and rd.soft_state[0] == LEADER:
            self.leaders.setdefault(rd.soft_state[2], set()).add(nid)
        return rd

    def persist(self, nid, hard_state, entries, snapshot):
        disk = self.disk[nid]
        self.persisted[nid].append((hard_state, list(entries)))
        if snapshot:
            disk.snapshot, disk.entries = snapshot, []
        if hard_state:
            disk.hard_state = hard_state
        if entries:
            disk.entries = [e for e in disk.entries if e.index < entries[0].index] + list(entries)

    def install(self, nid, snap):
        if snap.index not in self.snapshots:
            raise AssertionError(f"{nid} installs a snapshot at {snap.index} that nobody took")
        self.applied[nid] = list(self.snapshots[snap.index])
        self.installed[nid].append(snap.index)

    def send(self, sender, to, msg, term):
        item = (sender, to, msg, term)
        if to not in self.cores or not self.reachable(sender, to) or msg.TYPE in self.drop_types:
            self.dropped.append(item)
            return False
        self.queue.append(item)
        return True

    def deliver(self, to=None):
        """Step the queued messages (those for `to` only, if given) in send order."""
        batch = [q for q in self.queue if to is None or q[1] == to]
        self.queue = [q for q in self.queue if not (to is None or q[1] == to)]
        for sender, dest, msg, term in batch:
            self.cores[dest].step(envelope(sender, msg, term, self.via_wire), self.clock[dest])
        return batch

    def stabilize(self, rounds=STABILIZE_ROUNDS):
        for _ in range(rounds):
            busy = [self.process(i) for i in self.cores]
            if not any(busy) and not self.queue:
                return
            self.deliver()
        raise AssertionError(f"network did not stabilize in {rounds} rounds; queue={self.queue[:6]}")

    def tick(self, nid, ticks=1):
        for _ in range(ticks):
            self.clock[nid] += TICK_MS
            self.cores[nid].tick(self.clock[nid])

    def tick_all(self, ticks=1):
        for _ in range(ticks):
            for nid in self.cores:
                self.tick(nid)
            self.stabilize()

    def time_out(self, nid):
        """Tick nid (and nobody else) until its election timeout fires; bounded."""
        core = self.cores[nid]
        for _ in range(3 * core.conf.election_ticks):
            if core.role != FOLLOWER:
                return
            self.tick(nid)
        raise AssertionError(f"{nid}: election timeout never fired (role {core.role})")

    def campaign(self, nid):
        """Let nid's election timeout pass, then run the election out."""
        self.time_out(nid)
        self.stabilize()

    def run_until_leader(self, nid):
        """Ready and deliver one round at a time until nid leads (its empty entry not yet committed)."""
        for _ in range(BOUND):
            if self.cores[nid].role == LEADER:
                return
            for i in self.cores:
                self.process(i)
            self.deliver()
        raise AssertionError(f"{nid} never became leader: {self.roles()}")

    def ticks_until(self, nid, done, limit=BOUND):
        """Tick nid alone, stabilizing after each tick, until done(); how many ticks it took."""
        for n in range(1, limit + 1):
            self.tick(nid)
            self.stabilize()
            if done():
                return n
        raise AssertionError(f"{nid}: condition not reached in {limit} ticks: {self.roles()}")

    def heartbeat(self, nid):
        self.tick(nid, self.cores[nid].conf.heartbeat_ticks)
        self.stabilize()

    def compact(self, nid, index=None):
        """nid's state machine snapshots at index (default: all it applied); the log before goes."""
        core = self.cores[nid]
        index = core.applied if index is None else index
        assert index <= core.applied, f"{nid} cannot snapshot {index} beyond applied {core.applied}"
        self.snapshots[index] = [e for e in self.applied[nid] if e.index <= index]
        core.compact(index, core.log.term(index))
        disk = self.disk[nid]
        disk.snapshot, disk.entries = core.log.snapshot, [e for e in disk.entries if e.index > index]

    def restart(self, nid, seed=99):
        """nid crashes and comes back from what it fsync'd; its state machine keeps what it applied."""
        old, disk = self.cores[nid], self.disk[nid]
        core = Raft(old.conf, rng=random.Random(seed), hard_state=disk.hard_state, entries=list(disk.entries),
                    snapshot=disk.snapshot, now=self.clock[nid])
        core.applied = self.applied[nid][-1].index if self.applied[nid] else core.log.snapshot.index
        self.cores[nid] = core
        self.queue = [q for q in self.queue if q[1] != nid]  # what was on its way in is lost
        return core

    # -- reading ---------------------------------------------------------------------------

    def leader(self):
        leaders = [c for c in self.cores.values() if c.role == LEADER]
        assert len(leaders) == 1, f"expected one leader, roles: {self.roles()}"
        return leaders[0]

    def roles(self):
        return {nid: (c.role, c.term) for nid, c in self.cores.items()}

    def data(self, nid):
        """The data of the normal entries nid applied, in order (configurations left out)."""
        return [e.data for e in self.applied[nid] if e.kind == NORMAL]

    def sent(self, sender=None, to=None, type_=None):
        """Messages still queued, filtered."""
        return [(s, t, msg) for s, t, msg, _ in self.queue
                if (sender is None or s == sender) and (to is None or t == to) and (type_ is None or msg.TYPE == type_)]
