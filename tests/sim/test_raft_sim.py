"""The Raft core in the deterministic simulator: hundreds of seeds of drops, delays, reorders,
duplicates, partitions, crashes (at any point of a Ready) and restarts, membership changes,
leadership transfers, compaction with snapshots and ReadIndex reads, with Raft's safety
properties checked after every step. Three deliberately broken cores show the checks bite."""

import pytest

from common import messages as m
from scripts.sim.raft import Violation, run_seed
from services.raft.core import LEADER, Entry, Raft

SEEDS = 250        # per cluster size: 500 in all
STEPS = 1000
HUNT_SEEDS = 200   # budget to catch each broken core


def reproduce(seed, nodes, err):
    trace = "\n".join(err.sim.trace[-40:])
    return f"{err}\n{trace}\nreproduce: scripts/simulate raft --seed {seed} --nodes {nodes} --steps {STEPS}"


@pytest.mark.parametrize("nodes", [3, 5])
def test_safety_holds_for_every_seed(nodes):
    committed = reads = 0
    for seed in range(1, SEEDS + 1):
        try:
            sim = run_seed(seed, nodes=nodes, steps=STEPS)
        except Violation as err:
            pytest.fail(reproduce(seed, nodes, err))
        committed += len(sim.committed)
        reads += sim.reads_served
    # The runs did work worth checking: entries committed and reads served.
    assert committed > SEEDS * 5 and reads > SEEDS


class CommitsWithoutMajority(Raft):
    """Broken: the leader commits whatever it has stored itself."""

    def maybe_commit(self):
        if self.role == LEADER and self.log.stable > self.commit and self.log.term(self.log.stable) == self.term:
            self.commit = self.log.stable


class VotesTwice(Raft):
    """Broken: grants every up-to-date candidate, even after voting in the term."""

    def step_vote(self, sender, msg, term):
        if msg.pre:
            return super().step_vote(sender, msg, term)
        up_to_date = (msg.last_term, msg.last_index) >= (self.log.last_term(), self.log.last_index())
        granted = up_to_date and self.role != LEADER
        if granted:
            self.vote = sender
        self.send(sender, m.RaftVoteResp(granted=granted))


class KeepsConflictingSuffix(Raft):
    """Broken: a follower keeps its own entries where the leader's conflict with them."""

    def step_append(self, sender, msg):
        self.role, self.leader = "follower", sender
        self.reset_timeout()
        if msg.prev_index > self.log.last_index() or (
                msg.prev_index >= self.log.offset and self.log.term(msg.prev_index) != msg.prev_term
                and msg.prev_index > self.commit):
            return self.send(sender, m.RaftAppendResp(success=False, match=0, hint=min(msg.prev_index, self.log.last_index() + 1) or 1))
        new = [Entry.from_wire(e) for e in msg.entries if e[0] > self.log.last_index()]
        self.log.append(new)
        match = msg.prev_index + len(msg.entries)
        self.commit = max(self.commit, min(msg.commit, match, self.log.last_index()))
        self.send(sender, m.RaftAppendResp(success=True, match=match))


@pytest.mark.parametrize("core", [CommitsWithoutMajority, VotesTwice, KeepsConflictingSuffix])
def test_each_broken_core_is_caught(core):
    for seed in range(1, HUNT_SEEDS + 1):
        for nodes in (3, 5):
            try:
                run_seed(seed, nodes=nodes, steps=STEPS, core_class=core)
            except Violation as err:
                print(f"{core.__name__} caught at seed {seed} ({nodes} nodes): {err}")
                return
    pytest.fail(f"{core.__name__} survived {HUNT_SEEDS} seeds: the invariant checks are too weak")
