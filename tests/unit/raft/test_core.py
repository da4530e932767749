"""services/raft/core.py: one test per rule of the Raft paper (Ongaro & Ousterhout), in the
manner of etcd-io/raft's raft_paper_test.go. Every cluster is founded with its configuration at
index 1 (term 1), so the first election is in term 2. PreVote and CheckQuorum are on, as in
production; test_leadership.py, test_membership.py and test_replication.py cover them and
the other extensions of Ongaro's dissertation, and testdata/*.txt tells scenarios as transcripts."""

import pytest

from common import messages as m
from services.raft.core import (CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE, Entry, Ready, Snapshot,
                                carry_out)

from .network import BOUND, TICK_MS, Network, conf_entry, entries_from, envelope, node


def test_carry_out_installs_persists_sends_applies_then_reads():
    # Raft §5.2, §5.3: nothing that depends on an entry or a vote leaves before its fsync; a
    # snapshot is in place before the log that follows it is written.
    calls = []
    rd = Ready(hard_state=(1, "a", 0), entries=[Entry(1, 1, b"")], messages=[("b", m.RaftVoteResp(granted=True), 1)],
               committed=[Entry(1, 1, b"")], read_states=[(1, 1)], snapshot=Snapshot(0, 0, None))
    carry_out(rd, install=lambda snap: calls.append("install"), persist=lambda hs, e, snap: calls.append("persist"),
              send=lambda *a: calls.append("send"), apply=lambda e: calls.append("apply"),
              read=lambda *a: calls.append("read"))
    assert calls == ["install", "persist", "send", "apply", "read"]


def test_single_voter_elects_itself_and_commits_only_after_persist():
    # Raft §5.2: a candidate with votes from a majority (here: itself) becomes leader.
    # Raft §5.3: an entry is committed once stored on a majority; here that is this node's disk.
    a = node("a", ["a"])
    rd = a.ready()
    assert rd.committed == [conf_entry(1, 1, ["a"])]  # the founding configuration, durable already
    a.advance(rd)
    now = 0
    while a.role != LEADER:
        now += TICK_MS
        a.tick(now)
        assert now < BOUND * TICK_MS, "a single voter never elected itself"
    rd = a.ready()
    assert rd.hard_state == (2, "a", 1)
    assert rd.entries == [Entry(2, 2, b"")]          # §8: the leader's empty entry of its term
    assert rd.committed == []
    assert a.ready().committed == []                 # asking again without persisting commits nothing
    a.advance(rd)
    rd = a.ready()
    assert rd.hard_state == (2, "a", 2)
    assert rd.committed == [Entry(2, 2, b"")]        # applied in a later Ready than it was persisted
    a.advance(rd)

    assert a.propose([b"x"])
    rd = a.ready()
    assert rd.entries == [Entry(3, 2, b"x")] and rd.committed == []
    a.advance(rd)
    rd = a.ready()
    assert rd.entries == [] and rd.committed == [Entry(3, 2, b"x")]
    a.advance(rd)
    assert a.ready().empty()


def test_three_nodes_elect_one_leader_per_term():
    # Raft §5.2: each server votes for at most one candidate per term, so at most one leader
    # per term; randomized timeouts make split votes end. Lockstep ticks provoke split votes.
    for seed in range(25):
        net = Network.of(["a", "b", "c"], seed=seed * 3)
        for _ in range(BOUND):
            net.tick_all()
            roles = [c.role for c in net.cores.values()]
            if roles.count(LEADER) == 1 and roles.count(FOLLOWER) == 2:
                break
        else:
            pytest.fail(f"seed {seed}: no stable leader after {BOUND} ticks: {net.roles()}")
        assert all(len(leaders) == 1 for leaders in net.leaders.values()), (seed, net.leaders)
        leader = net.leader()
        assert {(c.term, c.leader) for c in net.cores.values()} == {(leader.term, leader.id)}


def test_split_vote_is_resolved_by_randomized_timeouts():
    # Raft §5.2: when every server campaigns at once nobody wins; the next, randomized,
    # timeouts differ, so one candidate gets ahead and wins a later term.
    net = Network.of(["a", "b", "c"], seed=7)
    for nid in "abc":
        net.time_out(nid)
    assert {c.role for c in net.cores.values()} == {PRE_CANDIDATE}
    net.stabilize()
    # Each pre-vote is granted (nobody follows a leader), so all three stand in term 2 at once,
    # each votes for itself, and each, rejected by a majority, goes back to following nobody.
    assert [(c.role, c.term, c.vote, c.leader) for c in net.cores.values()] == [(FOLLOWER, 2, n, "") for n in "abc"]
    for _ in range(BOUND):
        net.tick_all()
        if any(c.role == LEADER for c in net.cores.values()):
            break
    else:
        pytest.fail(f"the split vote never ended: {net.roles()}")
    leader = net.leader()
    assert leader.term >= 3 and 2 not in net.leaders
    assert all(len(leaders) == 1 for leaders in net.leaders.values())


def test_vote_is_granted_once_per_term():
    # Raft §5.2: first come, first served within a term.
    c = node("c", "abc")
    c.step(envelope("a", m.RaftVote(last_index=1, last_term=1), 2))
    c.step(envelope("b", m.RaftVote(last_index=1, last_term=1), 2))
    grants = [(to, msg.granted) for to, msg, _ in c.ready().messages]
    assert grants == [("a", True), ("b", False)]
    assert (c.term, c.vote) == (2, "a")


def test_vote_survives_a_restart():
    # Raft §5.2 (Figure 2, persistent state): currentTerm and votedFor are on disk before the
    # vote leaves, so a restarted server does not vote twice in a term.
    net = Network([node("c", "abc")])
    net.cores["c"].step(envelope("a", m.RaftVote(last_index=1, last_term=1), 2))
    net.process("c")
    c = net.restart("c")
    c.step(envelope("b", m.RaftVote(last_index=1, last_term=1), 2))
    [(to, resp, term)] = c.ready().messages
    assert (to, resp.granted, term, c.vote) == ("b", False, 2, "a")


def test_proposal_on_the_leader_commits_and_applies_in_the_same_order_everywhere():
    # Raft §5.3: the leader appends, replicates, commits once on a majority; every server applies
    # the same entries in log order.
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    a = net.cores["a"]
    assert (a.role, a.term) == (LEADER, 2)
    assert a.propose([b"1", b"2"]) and a.propose([b"3"])
    net.stabilize()
    assert net.data("a") == [b"", b"1", b"2", b"3"]
    net.heartbeat("a")
    for nid in "abc":
        assert net.data(nid) == [b"", b"1", b"2", b"3"], nid
        assert [e.index for e in net.applied[nid]] == [1, 2, 3, 4, 5]
        assert net.applied[nid] == net.applied["a"]


def test_replication_survives_the_real_codec():
    # Raft §5.3, with every message encoded and decoded by common/wire.py.
    net = Network.of(["a", "b", "c"], via_wire=True)
    net.campaign("b")
    assert net.cores["b"].propose([b"\x00\xffbinary"])
    assert net.cores["c"].propose([b"forwarded"])
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
    last = c.log.last_index()
    assert c.propose([b"from-c"])
    net.process("c")
    assert net.sent("c") == [("c", "a", m.RaftProp(entries=[[b"from-c", 0]]))]
    assert c.log.last_index() == last  # nothing appended on the follower itself
    net.stabilize()
    for nid in "abc":
        assert net.data(nid) == [b"", b"from-c"], nid


def test_proposals_a_follower_takes_in_one_round_go_to_the_leader_as_one_message():
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    c = net.cores["c"]
    assert c.propose([b"one"]) and c.propose([b"two"])
    c.msgs.append(("b", m.RaftReadIndexResp(ctx=1, index=0), c.term))  # another message in between...
    assert c.propose([b"three"])                                        # ...is not overtaken
    net.process("c")
    assert [(t, msg.TYPE, getattr(msg, "entries", None)) for _, t, msg in net.sent("c")] == [
        ("a", "raft.prop", [[b"one", 0], [b"two", 0]]), ("b", "raft.read_index_resp", None),
        ("a", "raft.prop", [[b"three", 0]])]
    c.conf.max_batch_entries = 1   # batching off: one entry per message, as before
    assert c.propose([b"four"]) and c.propose([b"five"])
    net.process("c")
    assert [msg.entries for _, _, msg in net.sent("c", type_="raft.prop")][-2:] == [[[b"four", 0]], [[b"five", 0]]]
    net.stabilize()
    for nid in "abc":
        assert net.data(nid) == [b"", b"one", b"two", b"three", b"four", b"five"], nid


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
    want = [Entry(2, 1, b"one"), Entry(3, 2, b"leader-two"), Entry(4, 3, b"")]
    assert entries_from(b, 2) == want
    rewrites = [entries for _, entries in net.persisted["b"] if entries]
    assert rewrites[-1][0].index == 3  # the store replaces the log from index 3 on
    assert net.applied["b"][1:] == want


def test_follower_append_with_conflict_in_one_step():
    # Raft §5.3, at the level of one message: the new entries replace the conflicting suffix.
    b = node("b", "abc", hard_state=(1, "b", 1), log=[(1, b"one"), (1, b"x"), (1, b"y")])
    b.advance(b.ready())
    b.step(envelope("a", m.RaftAppend(prev_index=2, prev_term=1, entries=[[3, 2, b"two"]], commit=1), 2))
    rd = b.ready()
    assert entries_from(b, 2) == [Entry(2, 1, b"one"), Entry(3, 2, b"two")]
    assert rd.entries == [Entry(3, 2, b"two")]
    [(to, resp, term)] = rd.messages
    assert (to, resp.success, resp.match, term) == ("a", True, 3, 2)


def test_follower_applies_only_what_it_has_persisted():
    # Raft §5.3 with Figure 2's "respond after storing": an entry learnt committed in the same
    # append that brought it is applied only after the Ready that persists it.
    b = node("b", "abc", hard_state=(1, "a", 1))
    b.advance(b.ready())
    b.step(envelope("a", m.RaftAppend(prev_index=1, prev_term=1, entries=[[2, 1, b"x"]], commit=2), 1))
    rd = b.ready()
    assert rd.entries == [Entry(2, 1, b"x")] and rd.hard_state == (1, "a", 2)
    assert rd.committed == []
    b.advance(rd)
    assert b.ready().committed == [Entry(2, 1, b"x")]


def test_follower_rejects_an_append_whose_previous_entry_does_not_match():
    # Raft §5.3: reply false if the log has no entry at prevLogIndex with term prevLogTerm;
    # the hint says where to retry (the end of the log, or the start of the conflicting term).
    b = node("b", "abc", hard_state=(2, "a", 1), log=[(1, b"one")])
    b.step(envelope("a", m.RaftAppend(prev_index=4, prev_term=2, entries=[[5, 2, b"five"]], commit=1), 2))
    b.step(envelope("a", m.RaftAppend(prev_index=2, prev_term=2, entries=[[3, 2, b"three"]], commit=1), 2))
    replies = [msg for _, msg, _ in b.ready().messages]
    assert [(r.success, r.hint) for r in replies] == [(False, 3), (False, 2)]
    assert entries_from(b, 2) == [Entry(2, 1, b"one")]


def test_candidate_with_a_stale_log_does_not_get_the_vote():
    # Raft §5.4.1: grant only if the candidate's log is at least as up-to-date as the voter's.
    voter = node("b", "abc", hard_state=(2, "", 1), log=[(1, b"one"), (2, b"two")])
    voter.step(envelope("a", m.RaftVote(last_index=6, last_term=1), 3))   # older last term
    voter.step(envelope("c", m.RaftVote(last_index=2, last_term=2), 3))   # same term, shorter log
    replies = [(to, msg.granted) for to, msg, _ in voter.ready().messages]
    assert replies == [("a", False), ("c", False)]
    assert (voter.term, voter.vote) == (3, "")  # §5.1: the term is still taken up


def test_candidate_with_an_up_to_date_log_gets_the_vote():
    # Raft §5.4.1: same last term and a log at least as long.
    voter = node("b", "abc", hard_state=(2, "", 1), log=[(1, b"one"), (2, b"two")])
    voter.step(envelope("c", m.RaftVote(last_index=3, last_term=2), 3))
    [(to, msg, term)] = voter.ready().messages
    assert (to, msg.granted, term) == ("c", True, 3)
    assert voter.vote == "c"


def test_stale_term_append_is_rejected():
    # Raft §5.1: a request with a stale term is rejected, and the reply carries the newer term.
    b = node("b", "abc", hard_state=(5, "c", 1), log=[(1, b"one")])
    b.step(envelope("a", m.RaftAppend(prev_index=2, prev_term=1, entries=[[3, 3, b"old"]], commit=3), 3))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.success, term) == ("a", False, 5)
    assert entries_from(b, 2) == [Entry(2, 1, b"one")] and b.commit == 1
    assert (b.term, b.leader, b.role) == (5, "", FOLLOWER)


def test_stale_term_vote_request_is_rejected():
    # Raft §5.1.
    b = node("b", "abc", hard_state=(5, "", 1))
    b.step(envelope("a", m.RaftVote(last_index=9, last_term=4), 4))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, term, b.vote) == ("a", False, 5, "")


def pre_candidate(node_id, **kw):
    core = node(node_id, "abc", **kw)
    for _ in range(BOUND):
        if core.role != FOLLOWER:
            break
        core.tick(core.deadline())
    assert core.role == PRE_CANDIDATE, core.role
    return core


def candidate(node_id, **kw):
    """A candidate of term+1: its election timeout fired and one peer granted the pre-vote."""
    core = pre_candidate(node_id, **kw)
    core.step(envelope("c" if node_id != "c" else "b", m.RaftVoteResp(granted=True, pre=True), core.term + 1))
    assert core.role == CANDIDATE, core.role
    return core


def test_leader_commits_only_entries_of_its_own_term_by_counting_replicas():
    # Raft §5.4.2: an entry from a previous term is not committed by counting replicas; it is
    # committed indirectly once an entry of the current term is.
    a = candidate("a", hard_state=(2, "a", 1), log=[(1, b"one"), (2, b"two")])
    a.step(envelope("b", m.RaftVoteResp(granted=True), 3))
    assert (a.role, a.term) == (LEADER, 3)
    committed = []

    def carry():
        rd = a.ready()
        committed.extend(e.index for e in rd.committed)
        a.advance(rd)

    carry()  # persists the empty entry 4 of term 3
    a.step(envelope("b", m.RaftAppendResp(success=True, match=3), 3))
    carry()
    assert a.commit == 1 and committed == [1]  # entry 3 is on a and b, a majority, but of term 2
    a.step(envelope("b", m.RaftAppendResp(success=True, match=4), 3))
    carry()
    assert a.commit == 4 and committed == [1, 2, 3, 4]


def test_read_index_needs_an_entry_of_the_leaders_term_committed():
    # Raft §6.4 (and §8): a new leader serves a read only after committing an entry of its term,
    # and only after a heartbeat round confirms it still leads.
    net = Network.of(["a", "b", "c"])
    a = net.cores["a"]
    net.time_out("a")
    net.run_until_leader("a")
    refused = a.read_index()
    net.process("a")
    assert net.reads["a"] == [(refused, 0)]  # index 0: refused, the client retries
    net.stabilize()
    assert a.log.term(a.commit) == a.term
    ctx = a.read_index()
    assert ctx is not None and ctx != refused
    net.process("a")
    assert net.reads["a"] == [(refused, 0)]  # not before a majority acknowledged the heartbeat
    net.stabilize()
    assert net.reads["a"] == [(refused, 0), (ctx, a.commit)]


def test_read_index_on_a_single_voter():
    # Raft §6.4: with one voter the leader's own term entry, once committed, is enough.
    a = node("a", ["a"])
    now = 0
    while a.role != LEADER:
        now += TICK_MS
        a.tick(now)
        assert now < BOUND * TICK_MS, "a single voter never elected itself"
    refused = a.read_index()
    rd = a.ready()
    assert rd.read_states == [(refused, 0)]
    a.advance(rd)
    ctx = a.read_index()
    assert a.ready().read_states == [(ctx, 2)]


def test_stepping_down_on_a_higher_term_reply_does_not_take_the_sender_for_leader():
    # Raft §5.1: a higher term turns a leader or candidate into a follower; only an append
    # (which only a leader sends) names the leader.
    a = candidate("a")
    a.step(envelope("b", m.RaftVoteResp(granted=True), a.term))
    assert (a.role, a.term) == (LEADER, 2)
    a.step(envelope("c", m.RaftAppendResp(success=False, match=0), a.term + 1))
    assert (a.role, a.term, a.leader) == (FOLLOWER, 3, "")
    b = candidate("b")
    b.step(envelope("c", m.RaftVoteResp(granted=False), b.term + 1))
    assert (b.role, b.leader) == (FOLLOWER, "")


def test_higher_term_append_names_the_leader():
    # Raft §5.1, §5.2: a candidate or stale leader that hears from a newer leader follows it.
    a = candidate("a")
    a.step(envelope("b", m.RaftAppend(prev_index=1, prev_term=1, entries=[], commit=1), 4))
    assert (a.role, a.term, a.leader) == (FOLLOWER, 4, "b")


def test_candidate_follows_a_leader_of_its_own_term():
    # Raft §5.2: a candidate that receives an append from a leader of its term steps down.
    a = candidate("a")
    a.step(envelope("b", m.RaftAppend(prev_index=1, prev_term=1, entries=[], commit=1), a.term))
    assert (a.role, a.term, a.leader) == (FOLLOWER, 2, "b")


def test_election_timeout_is_randomized_within_one_to_two_timeouts():
    # Raft §5.2: randomized election timeouts (here in [election_ticks, 2 * election_ticks)).
    timeouts = set()
    for seed in range(40):
        a = node("a", "abc", seed=seed)
        ticks = 0
        while a.role == FOLLOWER:
            ticks += 1
            a.tick(ticks * TICK_MS)
            assert ticks < BOUND, "the election timeout never fired"
        timeouts.add(ticks)
    assert min(timeouts) >= 10 and max(timeouts) < 20 and len(timeouts) > 3


@pytest.mark.parametrize("heartbeats", [1, 3])
def test_leader_keeps_followers_from_campaigning(heartbeats):
    # Raft §5.2: heartbeats reset followers' election timers.
    net = Network.of(["a", "b", "c"])
    net.campaign("a")
    term = net.cores["a"].term
    net.tick_all(heartbeats * 20)
    assert [c.role for c in net.cores.values()] == [LEADER, FOLLOWER, FOLLOWER]
    assert net.cores["b"].term == term
