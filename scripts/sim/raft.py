"""A deterministic, seeded simulator for the pure Raft core: a virtual clock, a network that
drops, delays, reorders, duplicates and partitions, crashes at any point of a Ready, and
restarts from what was fsync'd. After every step it checks Raft's safety properties (§5.2,
§5.3, §5.4). `scripts/simulate raft --seed N` runs one seed and prints the failing trace."""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field

from common import wire
from services.raft.core import LEADER, Config, Membership, Raft, Snapshot, carry_out

TICK_MS = 10


class Violation(AssertionError):
    pass


class Crash(Exception):
    """Raised inside carry_out to stop a node at a chosen point of its Ready."""


@dataclass
class Faults:
    drop: float = 0.05
    duplicate: float = 0.02
    delay_ms: tuple = (1, 30)
    crash: float = 0.004          # per step, chance that one node crashes
    restart: float = 0.02         # per step, chance that one crashed node restarts
    partition: float = 0.004      # per step, chance to cut the cluster in two
    heal: float = 0.01
    propose: float = 0.05
    read: float = 0.03            # a linearizable read (ReadIndex) at a random node
    conf_change: float = 0.01     # the leader adds, removes or promotes one server
    transfer: float = 0.005       # the leader hands leadership to another voter
    compact: float = 0.01         # a node snapshots its state machine and compacts its log

    @staticmethod
    def none():
        return Faults(drop=0, duplicate=0, crash=0, restart=0, partition=0, heal=0, conf_change=0,
                      transfer=0, compact=0)


@dataclass
class Disk:
    """What a node's fsync made durable: hard state, log, and the applied entries."""

    hard_state: tuple = (0, "", 0)
    snapshot: Snapshot | None = None
    entries: list = field(default_factory=list)
    applied: list = field(default_factory=list)  # (index, term, data) in apply order; a snapshot is a prefix


class Node:
    def __init__(self, name, founders, seed, now, core_class):
        self.name, self.seed, self.core_class = name, seed, core_class
        self.disk = Disk()
        self.start(now)
        if name in founders:
            self.core.bootstrap(Membership({n: {} for n in founders}, {}))

    def start(self, now):
        conf = Config(self.name, tick_ms=TICK_MS, heartbeat_ticks=2, election_ticks=10, max_batch_entries=64)
        self.core = self.core_class(conf, rng=random.Random(self.seed), hard_state=self.disk.hard_state,
                                    entries=list(self.disk.entries), snapshot=self.disk.snapshot, now=now,
                                    applied=len(self.disk.applied))
        self.seed += 1
        self.up = True
        self.checked = (0, 0)

    def persist(self, hard_state, entries, snapshot):
        if snapshot:
            self.disk.snapshot, self.disk.entries = snapshot, []
        if hard_state:
            self.disk.hard_state = hard_state
        if entries:
            first = self.disk.snapshot.index + 1 if self.disk.snapshot else 1
            self.disk.entries = self.disk.entries[:entries[0].index - first] + list(entries)

    def compact(self):
        """Snapshot the state machine at its applied index and drop the log up to it."""
        index = len(self.disk.applied)
        if index <= self.core.log.offset or index > self.core.log.stable:
            return
        term = self.core.log.term(index)
        self.core.compact(index, term)
        self.disk.snapshot = self.core.log.snapshot
        self.disk.entries = [e for e in self.disk.entries if e.index > index]


class Simulation:
    def __init__(self, seed, nodes=3, faults=None, core_class=Raft):
        self.seed, self.rng = seed, random.Random(seed)
        self.faults = faults or Faults()
        self.now = 0
        names = [f"n{i + 1}" for i in range(nodes)]
        founders = names[:3]  # the rest start with empty logs, for membership changes to add
        self.nodes = {n: Node(n, founders, seed * 1000 + i, 0, core_class) for i, n in enumerate(names)}
        self.snapshots = {}   # (node, index) → the applied prefix a snapshot carries
        self.net = []         # (deliver_at, seq, to, env)
        self.seq = 0
        self.cut = None       # (group_a, group_b) while partitioned
        self.trace = []
        self.leaders = {}     # term → leader name (election safety)
        self.entries = {}     # (index, term) → (data digest, prev term) (log matching)
        self.committed = {}   # index → (term, data) once any node applied it
        self.commit_term = {} # index → a term at or after the one it was committed in
        self.proposed = 0
        self.steps = 0
        self.reads = {}       # (node, ctx) → highest index known committed when the read began
        self.reads_served = 0

    # -- running ---------------------------------------------------------------------------

    def run(self, steps):
        for _ in range(steps):
            self.step()
        return self

    def step(self):
        self.steps += 1
        self.maybe_fault()
        due = [(n.core.deadline(), name) for name, n in self.nodes.items() if n.up]
        next_tick = min(due) if due else (self.now + TICK_MS, None)
        if self.net and self.net[0][0] <= next_tick[0]:
            at, _, to, env = heapq.heappop(self.net)
            self.now = max(self.now, at)
            node = self.nodes[to]
            if node.up and self.reachable(env.sender, to):
                self.log(f"deliver {env.sender}->{to} {env.type} term={env.term}")
                node.core.step(env, self.now)
                self.process(node)
        else:
            self.now = max(self.now, next_tick[0])
            if next_tick[1] is not None:
                node = self.nodes[next_tick[1]]
                node.core.tick(self.now)
                self.process(node)
        self.check()

    def process(self, node):
        for _ in range(4):
            rd = node.core.ready()
            if rd.empty():
                return
            point = self.rng.random() < self.faults.crash * 5 and self.rng.choice(("persist", "send", "apply"))
            try:
                carry_out(rd, install=lambda snap: self.install(node, snap),
                          persist=self.guard(point, "persist", node.persist),
                          send=self.guard(point, "send", lambda to, msg, term: self.send(node.name, to, msg, term)),
                          apply=self.guard(point, "apply", lambda entries: self.apply(node, entries)),
                          read=lambda ctx, index: self.check_read(node, ctx, index))
            except Crash:
                self.log(f"crash {node.name} before {point}")
                node.up = False
                return
            node.core.advance(rd)
            if rd.soft_state:
                self.log(f"{node.name} becomes {rd.soft_state[0]} leader={rd.soft_state[1]} term={rd.soft_state[2]}")

    @staticmethod
    def guard(point, name, fn):
        def guarded(*args):
            if point == name:
                raise Crash()
            return fn(*args)
        return guarded

    def install(self, node, snap):
        """The snapshot's bytes travel with it in the real shell; here they are looked up."""
        data = self.snapshots.get((node.core.leader, snap.index))
        if data is None:
            raise Violation(f"{node.name} installs snapshot {snap.index} that {node.core.leader} never took")
        for index, entry in enumerate(data, 1):
            known = self.committed.get(index)
            if known is not None and known != entry[1:]:
                raise Violation(f"snapshot {snap.index} differs from the committed entry {index}")
        node.disk.applied = list(data)
        self.snapshots[(node.name, snap.index)] = list(data)  # it may pass this snapshot on as leader

    def send(self, frm, to, msg, term):
        if self.rng.random() < self.faults.drop:
            return
        env = wire.Envelope(msg.TYPE, frm, b"", b"", term, msg)
        for _ in range(2 if self.rng.random() < self.faults.duplicate else 1):
            self.seq += 1
            heapq.heappush(self.net, (self.now + self.rng.randint(*self.faults.delay_ms), self.seq, to, env))

    def apply(self, node, entries):
        for entry in entries:
            node.disk.applied.append((entry.index, entry.term, entry.data))
            known = self.committed.get(entry.index)
            if known is None:
                self.committed[entry.index] = (entry.term, entry.data)
                # The committing leader's term is at most the applier's current term.
                self.commit_term[entry.index] = node.core.term
            elif known != (entry.term, entry.data):
                raise Violation(f"state machine safety: {node.name} applied {entry.index}/{entry.term} "
                                f"but {known[0]} was applied there before")

    def reachable(self, a, b):
        return self.cut is None or (a in self.cut[0]) == (b in self.cut[0])

    # -- faults and clients ----------------------------------------------------------------

    def maybe_fault(self):
        f, rng = self.faults, self.rng
        up = [n for n in self.nodes.values() if n.up]
        down = [n for n in self.nodes.values() if not n.up]
        if up and rng.random() < f.crash:
            victim = rng.choice(up)
            victim.up = False
            self.log(f"crash {victim.name}")
        if down and rng.random() < f.restart:
            node = rng.choice(down)
            node.start(self.now)
            self.log(f"restart {node.name}")
        if self.cut is None and rng.random() < f.partition:
            names = list(self.nodes)
            rng.shuffle(names)
            k = rng.randint(1, len(names) - 1)
            self.cut = (set(names[:k]), set(names[k:]))
            self.log(f"partition {sorted(self.cut[0])} | {sorted(self.cut[1])}")
        elif self.cut is not None and rng.random() < f.heal:
            self.cut = None
            self.log("heal")
        if up and rng.random() < f.compact:
            node = rng.choice(up)
            node.compact()
            if node.core.log.snapshot.index:
                self.snapshots[(node.name, node.core.log.snapshot.index)] = node.disk.applied[:node.core.log.snapshot.index]
                self.log(f"compact {node.name} at {node.core.log.snapshot.index}")
        leaders = [n for n in up if n.core.role == LEADER]
        if leaders and rng.random() < f.conf_change:
            self.change_membership(rng.choice(leaders))
        if leaders and rng.random() < f.transfer:
            leader = rng.choice(leaders)
            target = rng.choice(sorted(self.nodes))
            if leader.core.transfer_leader(target):
                self.log(f"transfer {leader.name} -> {target}")
                self.process(leader)
        if up and rng.random() < f.read:
            node = rng.choice(up)
            ctx = node.core.read_index()
            if ctx is not None:
                self.reads[(node.name, ctx)] = max(self.committed, default=0)
                self.process(node)
        if up and rng.random() < f.propose:
            node = rng.choice(up)
            self.proposed += 1
            data = f"cmd{self.proposed}".encode()
            if node.core.propose([data]):
                self.log(f"propose {data.decode()} at {node.name}")
                self.process(node)

    def change_membership(self, leader):
        old = leader.core.log.membership()
        voters, learners = dict(old.voters), dict(old.learners)
        outside = sorted(set(self.nodes) - set(voters) - set(learners))
        choice = self.rng.choice(("add", "learn", "promote", "remove"))
        if choice == "add" and outside:
            voters[self.rng.choice(outside)] = {}
        elif choice == "learn" and outside:
            learners[self.rng.choice(outside)] = {}
        elif choice == "promote" and learners:
            name = self.rng.choice(sorted(learners))
            voters[name] = learners.pop(name)
        elif choice == "remove" and len(voters) > 2:
            voters.pop(self.rng.choice(sorted(voters)))
        else:
            return
        error = leader.core.propose_membership(Membership(voters, learners))
        self.log(f"membership at {leader.name}: {choice} -> voters={sorted(voters)} learners={sorted(learners)}"
                 + (f" refused: {error}" if error else ""))
        self.process(leader)

    def check_read(self, node, ctx, index):
        """ReadIndex (§6.4): a read may be served at index only if every entry committed
        before the read began is at or below it; otherwise it could miss a completed write."""
        must_see = self.reads.pop((node.name, ctx), None)
        if must_see is None or index == 0:
            return
        if index < must_see:
            raise Violation(f"stale read at {node.name}: read index {index}, but {must_see} was committed before")
        self.reads_served += 1

    # -- invariants ------------------------------------------------------------------------

    def check(self):
        for node in self.nodes.values():
            if not node.up:
                continue
            core = node.core
            if core.role == LEADER:
                seen = self.leaders.setdefault(core.term, node.name)
                if seen != node.name:
                    raise Violation(f"election safety: {seen} and {node.name} both lead term {core.term}")
                self.check_completeness(node)
            self.check_log(node)

    def check_log(self, node):
        """Log matching (§5.3): an (index, term) pair names one entry with one predecessor.
        Checks the entries new since the last step; a truncation rewinds to the commit index."""
        log = node.core.log
        index, term = node.checked
        if index > log.last_index() or log.term(index) != term:
            index = min(node.core.commit, index, log.last_index())
        for i in range(max(index, log.offset + 1), log.last_index() + 1):
            entry = log.entry(i)
            key = (entry.index, entry.term)
            value = (hashlib.blake2b(entry.data, digest_size=8).digest(), log.term(i - 1))
            known = self.entries.setdefault(key, value)
            if known[0] != value[0] or (value[1] != -1 and known[1] != -1 and known[1] != value[1]):
                raise Violation(f"log matching: {node.name} has a different entry at {key}")
        node.checked = (log.last_index(), log.last_term())

    def check_completeness(self, leader):
        """Leader completeness (§5.4): a leader of a later term holds every committed entry.
        (A deposed leader cut off by a partition may still believe it leads an older term.)"""
        term = leader.core.term
        log = leader.core.log
        owed = [i for i in self.committed if self.commit_term[i] < term and i > log.offset]
        if not owed:
            return
        top = max(owed)
        if top > log.last_index():
            raise Violation(f"leader completeness: {leader.name} (term {term}) lacks committed {top}")
        for index in (top, *self.rng.sample(owed, min(4, len(owed)))):
            entry = log.entry(index)
            if (entry.term, entry.data) != self.committed[index]:
                raise Violation(f"leader completeness: {leader.name} differs at committed index {index}")

    def log(self, text):
        self.trace.append(f"{self.now:>8}ms  {text}")
        if len(self.trace) > 400:
            del self.trace[:100]


def run_seed(seed, *, nodes=3, steps=1000, faults=None, core_class=Raft):
    """Run one seed; returns the simulation, or raises Violation with the trace attached."""
    sim = Simulation(seed, nodes, faults, core_class)
    try:
        sim.run(steps)
    except Violation as err:
        err.sim = sim
        raise
    return sim
