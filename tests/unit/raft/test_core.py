"""services/raft/core.py: one test per rule of the Raft paper (Ongaro & Ousterhout), in the
manner of etcd-io/raft's raft_paper_test.go. A tiny in-memory network carries each Ready's
messages as wire Envelopes; nothing here reads a clock or sleeps."""

import random

import pytest

from common import messages as m, wire
from services.raft.core import CANDIDATE, CONF, FOLLOWER, LEADER, Config, Entry, Membership, Raft, Ready, carry_out

TICK_MS = 50


def envelope(sender, msg, term, via_wire=False):
    if via_wire:  # through the real codec: proves the core's messages are valid on the wire
        return wire.decode(wire.encode(msg, sender, term=term))
    return wire.Envelope(msg.TYPE, sender, wire.new_id(), b"", term, msg)


def node(node_id, voters, *, seed=1, hard_state=None, log=()):
    """A core of a founded cluster: index 1 is the founding configuration (term 1), and log
    is [(term, data)] from index 2 on."""
    conf = Entry(1, 1, wire.pack(Membership({v: {} for v in voters}, {}).to_plain()), CONF)
    entries = [conf] + [Entry(i, t, d) for i, (t, d) in enumerate(log, start=2)]
    return Raft(Config(node_id, tick_ms=TICK_MS), rng=random.Random(seed),
                hard_state=hard_state or (1, "", 1), entries=entries, now=0)


class Network:
    """Cores wired together in memory. process() carries out one Ready per node in the shell's
    order; deliver() hands every queued message to its destination as an Envelope."""

    def __init__(self, cores, via_wire=False):
        self.cores = {c.id: c for c in cores}
        self.via_wire = via_wire
        self.clock = {c.id: 0 for c in cores}
        self.queue = []                                 # (sender, to, msg, term)
        self.persisted = {i: [] for i in self.cores}    # (hard_state, entries) per persist
        self.applied = {i: [] for i in self.cores}      # Entry, in apply order
        self.reads = {i: [] for i in self.cores}        # (ctx, index)
        self.leaders = {}                               # term → set of nodes that led it
        self.cut = set()                                # nodes whose traffic is dropped

    @classmethod
    def of(cls, ids, seed=1, **kw):
        return cls([node(i, ids, seed=seed + k) for k, i in enumerate(ids)], **kw)

    def process(self, nid):
        core = self.cores[nid]
        rd = core.ready()
        if rd.empty():
            return False
        carry_out(rd,
                  persist=lambda hs, entries, snap: self.persisted[nid].append((hs, list(entries))),
                  send=lambda to, msg, term: self.queue.append((nid, to, msg, term)),
                  apply=self.applied[nid].extend,
                  read=lambda ctx, index: self.reads[nid].append((ctx, index)))
        core.advance(rd)
        if rd.soft_state and rd.soft_state[0] == LEADER:
            self.leaders.setdefault(rd.soft_state[2], set()).add(nid)
        return True

    def deliver(self):
        batch, self.queue = self.queue, []
        for sender, to, msg, term in batch:
            if sender in self.cut or to in self.cut:
                continue
            self.cores[to].step(envelope(sender, msg, term, self.via_wire), self.clock[to])
        return bool(batch)

    def stabilize(self, rounds=100):
        for _ in range(rounds):
            busy = [self.process(i) for i in self.cores]
            if not any(busy) and not self.queue:
                return
            self.deliver()
        raise AssertionError("network did not stabilize")

    def tick(self, nid, ticks=1):
        for _ in range(ticks):
            self.clock[nid] += TICK_MS
            self.cores[nid].tick(self.clock[nid])

    def campaign(self, nid):
        """Let nid's election timeout pass (and nobody else's), then run the election out."""
        core = self.cores[nid]
        for _ in range(2 * core.conf.election_ticks):
            if core.role != FOLLOWER:
                break
            self.tick(nid)
        assert core.role != FOLLOWER, "election timeout never fired"
        self.stabilize()

    def heartbeat(self, nid):
        self.tick(nid, self.cores[nid].conf.heartbeat_ticks)
        self.stabilize()

    def data(self, nid):
        return [e.data for e in self.applied[nid]]


def test_carry_out_persists_then_sends_then_applies_then_reads():
    # Raft §5.2, §5.3: nothing that depends on an entry or a vote leaves before its fsync.
    calls = []
    rd = Ready(hard_state=(1, "a", 0), entries=[Entry(1, 1, b"")], messages=[("b", m.RaftVoteResp(granted=True), 1)],
               committed=[Entry(1, 1, b"")], read_states=[(1, 1)])
    carry_out(rd, persist=lambda hs, e, snap: calls.append("persist"), send=lambda *a: calls.append("send"),
              apply=lambda e: calls.append("apply"), read=lambda *a: calls.append("read"))
    assert calls == ["persist", "send", "apply", "read"]


def test_single_voter_elects_itself_and_commits_only_after_persist():
    # Raft §5.2: a candidate with votes from a majority (here: itself) becomes leader.
    # Raft §5.3: an entry is committed once stored on a majority; here that is this node's disk.
    a = node("a", ["a"])
    now = 0
    while a.role != LEADER:
        now += TICK_MS
        a.tick(now)
        assert now < 100 * TICK_MS
    rd = a.ready()
    assert rd.hard_state == (1, "a", 0)
    assert rd.entries == [Entry(1, 1, b"")]          # §8: the leader's empty entry of its term
    assert rd.committed == []
    assert a.ready().committed == []                 # asking again without persisting commits nothing
    a.advance(rd)
    rd = a.ready()
    assert rd.hard_state == (1, "a", 1)
    assert rd.committed == [Entry(1, 1, b"")]        # applied in a later Ready than it was persisted
    a.advance(rd)

    assert a.propose([b"x"])
    rd = a.ready()
    assert rd.entries == [Entry(2, 1, b"x")] and rd.committed == []
    a.advance(rd)
    rd = a.ready()
    assert rd.entries == [] and rd.committed == [Entry(2, 1, b"x")]
    a.advance(rd)
    assert a.ready().empty()


def test_three_nodes_elect_one_leader_per_term():
    # Raft §5.2: each server votes for at most one candidate per term, so at most one leader
    # per term; randomized timeouts make split votes end. Lockstep ticks provoke split votes.
    for seed in range(25):
        net = Network.of(["a", "b", "c"], seed=seed * 3)
        for _ in range(400):
            for nid in net.cores:
                net.tick(nid)
            net.stabilize()
            roles = [c.role for c in net.cores.values()]
            if roles.count(LEADER) == 1 and roles.count(FOLLOWER) == 2:
                break
        assert all(len(leaders) == 1 for leaders in net.leaders.values()), (seed, net.leaders)
        leader = next(c for c in net.cores.values() if c.role == LEADER)
        assert {(c.term, c.leader) for c in net.cores.values()} == {(leader.term, leader.id)}


def test_split_vote_is_resolved_by_randomized_timeouts():
    # Raft §5.2: when every server campaigns at once nobody wins; the next, randomized,
    # timeouts differ, so one candidate gets ahead and wins a later term.
    net = Network.of(["a", "b", "c"], seed=7)
    for nid in "abc":
        while net.cores[nid].role != CANDIDATE:
            net.tick(nid)
    net.stabilize()
    assert [(c.role, c.term) for c in net.cores.values()] == [(CANDIDATE, 1)] * 3
    for _ in range(200):
        for nid in "abc":
            net.tick(nid)
        net.stabilize()
        if any(c.role == LEADER for c in net.cores.values()):
            break
    leader = next(c for c in net.cores.values() if c.role == LEADER)
    assert leader.term >= 2 and 1 not in net.leaders
    assert all(len(leaders) == 1 for leaders in net.leaders.values())


def test_vote_is_granted_once_per_term():
    # Raft §5.2: first come, first served within a term.
    c = node("c", ["a", "b", "c"], hard_state=(1, "", 0))
    c.step(envelope("a", m.RaftVote(last_index=0, last_term=0), 2))
    c.step(envelope("b", m.RaftVote(last_index=0, last_term=0), 2))
    grants = [(to, msg.granted) for to, msg, _ in c.ready().messages]
    assert grants == [("a", True), ("b", False)]
    assert (c.term, c.vote) == (2, "a")


def test_proposal_on_the_leader_commits_and_applies_in_the_same_order_everywhere():
    # Raft §5.3: the leader appends, replicates, commits once on a majority; every server applies
    # the same entries in log order.
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    a = net.cores["a"]
    assert a.role == LEADER
    assert a.propose([b"1", b"2"]) and a.propose([b"3"])
    net.stabilize()
    assert net.data("a") == [b"", b"1", b"2", b"3"]
    net.heartbeat("a")  # followers learn the commit index with the next append
    for nid in "abc":
        assert net.data(nid) == [b"", b"1", b"2", b"3"], nid
        assert [e.index for e in net.applied[nid]] == [1, 2, 3, 4]
        assert net.applied[nid] == net.applied["a"]


def test_replication_survives_the_real_codec():
    # Raft §5.3, with every message encoded and decoded by common/wire.py.
    net = Network.of(["a", "b", "c"], via_wire=True)
    net.campaign("b")
    net.cores["b"].propose([b"\x00\xffbinary"])
    net.cores["c"].propose([b"forwarded"])
    net.stabilize()
    net.heartbeat("b")
    for nid in "abc":
        assert net.data(nid) == [b"", b"\x00\xffbinary", b"forwarded"], nid


def test_proposal_on_a_follower_is_forwarded_to_the_leader():
    # Raft §8: clients may contact any server; a follower hands the request to the leader.
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    c = net.cores["c"]
    assert c.leader == "a"
    assert c.propose([b"from-c"])
    net.process("c")
    assert [(to, msg) for _, to, msg, _ in net.queue] == [("a", m.RaftProp(entries=[b"from-c"]))]
    assert c.log[-1].data == b""  # nothing appended on the follower itself
    net.stabilize()
    net.heartbeat("a")
    for nid in "abc":
        assert net.data(nid) == [b"", b"from-c"], nid


def test_proposal_without_a_known_leader_is_refused():
    # Raft §8: with no leader known the request is refused, and the client retries later.
    b = node("b", ["a", "b", "c"])
    assert b.propose([b"x"]) is False
    assert b.ready().messages == []


def test_follower_truncates_a_conflicting_suffix():
    # Raft §5.3: if an existing entry conflicts with a new one (same index, different terms),
    # delete it and all that follow, then append the leader's entries.
    a = node("a", "abc", hard_state=(2, "a", 1), log=[(1, b"one"), (2, b"leader-two")])
    b = node("b", "abc", hard_state=(1, "b", 1), log=[(1, b"one"), (1, b"stale-two"), (1, b"stale-three")])
    c = node("c", "abc", hard_state=(2, "a", 1), log=[(1, b"one"), (2, b"leader-two")])
    net = Network([a, b, c])
    net.campaign("a")
    assert a.role == LEADER and a.term == 3
    net.heartbeat("a")
    want = [Entry(1, 1, b"one"), Entry(2, 2, b"leader-two"), Entry(3, 3, b"")]
    assert b.log[1:] == want
    rewrites = [entries for _, entries in net.persisted["b"] if entries]
    assert rewrites[-1][0].index == 2  # the store replaces the log from index 2 on
    assert net.applied["b"] == want


def test_follower_append_with_conflict_in_one_step():
    # Raft §5.3, at the level of one message: the new entries replace the conflicting suffix.
    b = node("b", "abc", hard_state=(1, "b", 1), log=[(1, b"one"), (1, b"x"), (1, b"y")])
    b.advance(b.ready())
    b.step(envelope("a", m.RaftAppend(prev_index=1, prev_term=1, entries=[[2, 2, b"two"]], commit=1), 2))
    rd = b.ready()
    assert b.log[1:] == [Entry(1, 1, b"one"), Entry(2, 2, b"two")]
    assert rd.entries == [Entry(2, 2, b"two")]
    [(to, resp, term)] = rd.messages
    assert (to, resp.success, resp.match, term) == ("a", True, 2, 2)


def test_follower_applies_only_what_it_has_persisted():
    # Raft §5.3 with Figure 2's "respond after storing": an entry learnt committed in the same
    # append that brought it is applied only after the Ready that persists it.
    b = node("b", "abc", hard_state=(1, "a", 0))
    b.step(envelope("a", m.RaftAppend(prev_index=0, prev_term=0, entries=[[1, 1, b"x"]], commit=1), 1))
    rd = b.ready()
    assert rd.entries == [Entry(1, 1, b"x")] and rd.hard_state == (1, "a", 1)
    assert rd.committed == []
    b.advance(rd)
    assert b.ready().committed == [Entry(1, 1, b"x")]


def test_follower_rejects_an_append_whose_previous_entry_does_not_match():
    # Raft §5.3: reply false if the log has no entry at prevLogIndex with term prevLogTerm.
    b = node("b", "abc", hard_state=(2, "a", 0), log=[(1, b"one")])
    b.step(envelope("a", m.RaftAppend(prev_index=3, prev_term=2, entries=[[4, 2, b"four"]], commit=0), 2))
    b.step(envelope("a", m.RaftAppend(prev_index=1, prev_term=2, entries=[[2, 2, b"two"]], commit=0), 2))
    replies = [msg for _, msg, _ in b.ready().messages]
    assert [(r.success, r.hint) for r in replies] == [(False, 2), (False, 1)]
    assert b.log[1:] == [Entry(1, 1, b"one")]


def test_candidate_with_a_stale_log_does_not_get_the_vote():
    # Raft §5.4.1: grant only if the candidate's log is at least as up-to-date as the voter's.
    voter = node("b", "abc", hard_state=(2, "", 0), log=[(1, b"one"), (2, b"two")])
    voter.step(envelope("a", m.RaftVote(last_index=5, last_term=1), 3))   # older last term
    voter.step(envelope("c", m.RaftVote(last_index=1, last_term=2), 3))   # same term, shorter log
    replies = [(to, msg.granted) for to, msg, _ in voter.ready().messages]
    assert replies == [("a", False), ("c", False)]
    assert (voter.term, voter.vote) == (3, "")  # §5.1: the term is still taken up


def test_candidate_with_an_up_to_date_log_gets_the_vote():
    # Raft §5.4.1: same last term and a log at least as long.
    voter = node("b", "abc", hard_state=(2, "", 0), log=[(1, b"one"), (2, b"two")])
    voter.step(envelope("c", m.RaftVote(last_index=2, last_term=2), 3))
    [(to, msg, term)] = voter.ready().messages
    assert (to, msg.granted, term) == ("c", True, 3)
    assert voter.vote == "c"


def test_stale_term_append_is_rejected():
    # Raft §5.1: a request with a stale term is rejected, and the reply carries the newer term.
    b = node("b", "abc", hard_state=(5, "c", 0), log=[(1, b"one")])
    b.step(envelope("a", m.RaftAppend(prev_index=1, prev_term=1, entries=[[2, 3, b"old"]], commit=2), 3))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.success, term) == ("a", False, 5)
    assert b.log[1:] == [Entry(1, 1, b"one")] and b.commit == 0
    assert (b.term, b.leader, b.role) == (5, "", FOLLOWER)


def test_stale_term_vote_request_is_rejected():
    # Raft §5.1.
    b = node("b", "abc", hard_state=(5, "", 0))
    b.step(envelope("a", m.RaftVote(last_index=9, last_term=4), 4))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, term, b.vote) == ("a", False, 5, "")


def test_leader_commits_only_entries_of_its_own_term_by_counting_replicas():
    # Raft §5.4.2: an entry from a previous term is not committed by counting replicas; it is
    # committed indirectly once an entry of the current term is.
    a = node("a", "abc", hard_state=(2, "a", 1), log=[(1, b"one"), (2, b"two")])
    now = 0
    while a.role != CANDIDATE:
        now += TICK_MS
        a.tick(now)
    a.step(envelope("b", m.RaftVoteResp(granted=True), 3))
    assert (a.role, a.term) == (LEADER, 3)
    committed = []

    def carry():
        rd = a.ready()
        committed.extend(e.index for e in rd.committed)
        a.advance(rd)

    carry()  # persists the empty entry 3 of term 3
    a.step(envelope("b", m.RaftAppendResp(success=True, match=2), 3))
    carry()
    assert a.commit == 1 and committed == [1]  # entry 2 is on a and b, a majority, but of term 2
    a.step(envelope("b", m.RaftAppendResp(success=True, match=3), 3))
    carry()
    assert a.commit == 3 and committed == [1, 2, 3]


def test_read_index_needs_an_entry_of_the_leaders_term_committed():
    # Raft §6.4: a new leader serves a read only after committing an entry of its term, and
    # only after a heartbeat round confirms it still leads.
    net = Network.of(["a", "b", "c"])
    a = net.cores["a"]
    while a.role == FOLLOWER:
        net.tick("a")
    net.process("a")
    net.deliver()              # vote requests
    net.process("b")
    net.process("c")
    net.deliver()              # votes: a leads but has not committed its empty entry
    assert a.role == LEADER
    assert a.read_index() is None
    net.stabilize()
    assert a.log_term(a.commit) == a.term
    assert net.cores["b"].read_index() is None  # a follower never serves one
    ctx = a.read_index()
    assert ctx is not None
    net.process("a")
    assert net.reads["a"] == []  # not before a majority acknowledged the heartbeat
    net.stabilize()
    assert net.reads["a"] == [(ctx, a.commit)]


def test_read_index_on_a_single_voter():
    # Raft §6.4: with one voter the leader's own term entry, once committed, is enough.
    a = node("a", ["a"])
    now = 0
    while a.role != LEADER:
        now += TICK_MS
        a.tick(now)
    assert a.read_index() is None
    a.advance(a.ready())
    ctx = a.read_index()
    assert a.ready().read_states == [(ctx, 1)]


def candidate(node_id, **kw):
    core = node(node_id, "abc", **kw)
    while core.role != CANDIDATE:
        core.tick(core.deadline())
    return core


def test_stepping_down_on_a_higher_term_reply_does_not_take_the_sender_for_leader():
    # Raft §5.1: a higher term turns a leader or candidate into a follower; only an append
    # (which only a leader sends) names the leader.
    a = candidate("a", hard_state=(1, "a", 0))
    a.step(envelope("b", m.RaftVoteResp(granted=True), a.term))
    assert a.role == LEADER
    a.step(envelope("c", m.RaftAppendResp(success=False, match=0), a.term + 1))
    assert (a.role, a.term, a.leader) == (FOLLOWER, 3, "")
    b = candidate("b")
    b.step(envelope("c", m.RaftVoteResp(granted=False), b.term + 1))
    assert (b.role, b.leader) == (FOLLOWER, "")


def test_higher_term_append_names_the_leader():
    # Raft §5.1, §5.2: a candidate or stale leader that hears from a newer leader follows it.
    a = node("a", "abc", hard_state=(1, "", 0))
    a.step(envelope("b", m.RaftAppend(prev_index=0, prev_term=0, entries=[], commit=0), 4))
    assert (a.role, a.term, a.leader) == (FOLLOWER, 4, "b")


def test_election_timeout_is_randomized_within_one_to_two_timeouts():
    # Raft §5.2: randomized election timeouts (here in [election_ticks, 2 * election_ticks)).
    timeouts = set()
    for seed in range(40):
        a = node("a", "abc", seed=seed)
        ticks = 0
        while a.role == FOLLOWER:
            ticks += 1
            a.tick(ticks * TICK_MS)
        timeouts.add(ticks)
    assert min(timeouts) >= 10 and max(timeouts) < 20 and len(timeouts) > 3


@pytest.mark.parametrize("heartbeats", [1, 3])
def test_leader_keeps_followers_from_campaigning(heartbeats):
    # Raft §5.2: heartbeats reset followers' election timers.
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    term = net.cores["a"].term
    for _ in range(heartbeats * 20):
        for nid in "abc":
            net.tick(nid)
        net.stabilize()
    assert [c.role for c in net.cores.values()] == [LEADER, FOLLOWER, FOLLOWER]
    assert net.cores["b"].term == term
