"""services/raft/core.py, who leads, beyond the paper's Figure 2: one test per rule of Ongaro's
dissertation ("Consensus: bridging theory and practice", 2014) — PreVote (§9.6), CheckQuorum and
leases (§6.2, §4.2.3), leadership transfer (§3.10)."""

import pytest

from common import messages as m
from services.raft.core import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE, Entry

from .network import ELECTION_TICKS, Network, cluster, entries_from, envelope, node


# -- PreVote (§9.6) -------------------------------------------------------------------------


def test_prevote_keeps_a_partitioned_server_from_raising_its_term():
    # §9.6: a server cut off keeps timing out, but PreVote is never granted, so its term stays;
    # when it comes back it follows the leader instead of deposing it.
    net = cluster()
    net.isolate("c")
    for _ in range(5 * ELECTION_TICKS):
        net.tick_all()
    c = net.cores["c"]
    assert (c.role, c.term) == (PRE_CANDIDATE, 2)
    net.heal()
    net.heartbeat("a")
    assert net.roles() == {"a": (LEADER, 2), "b": (FOLLOWER, 2), "c": (FOLLOWER, 2)}
    assert c.leader == "a"


def test_without_prevote_a_rejoining_server_deposes_the_leader():
    # §9.6, the reason for PreVote: without it the isolated server's term climbs, and its reply
    # to the leader's next heartbeat makes the leader step down.
    net = cluster(pre_vote=False)
    net.isolate("c")
    for _ in range(5 * ELECTION_TICKS):
        net.tick_all()
    assert net.cores["c"].term > 2
    net.heal()
    net.heartbeat("a")
    a, c = net.cores["a"], net.cores["c"]
    assert a.role == FOLLOWER and a.term == c.term > 2


def test_prevote_is_answered_without_changing_term_or_vote():
    # §9.6: a pre-vote is a question; granting it carries the candidate's next term but changes
    # nothing at the voter.
    b = node("b", "abc")
    b.step(envelope("a", m.RaftVote(last_index=1, last_term=1, pre=True), 2))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, resp.pre, term) == ("a", True, True, 2)
    assert (b.term, b.vote, b.role) == (1, "", FOLLOWER)


def test_prevote_is_refused_to_a_stale_log():
    # §9.6 with §5.4.1: a pre-vote is granted only when a real vote would be.
    b = node("b", "abc", hard_state=(2, "", 1), log=[(2, b"two")])
    b.step(envelope("a", m.RaftVote(last_index=5, last_term=1, pre=True), 3))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, resp.pre, term) == ("a", False, True, 2)
    assert (b.term, b.vote) == (2, "")


def test_pre_candidate_campaigns_only_after_a_majority_of_prevotes():
    # §9.6: the term goes up only once a majority said the election could be won.
    net = Network.of(["a", "b", "c"])
    net.isolate("a")
    net.time_out("a")
    net.stabilize()
    a = net.cores["a"]
    assert (a.role, a.term) == (PRE_CANDIDATE, 1)
    a.step(envelope("b", m.RaftVoteResp(granted=True, pre=True), 2))
    assert (a.role, a.term, a.vote) == (CANDIDATE, 2, "a")


# -- CheckQuorum and leases (§6.2, §4.2.3) ----------------------------------------------------


def test_leader_cut_off_from_a_majority_steps_down():
    # §6.2 (CheckQuorum): a leader that heard from no majority for an election timeout steps
    # down. Acks that came just before the cut still count for the round under way, so it
    # takes at most two election timeouts.
    net = cluster()
    net.isolate("a")
    took = net.ticks_until("a", lambda: net.cores["a"].role != LEADER)
    assert took <= 2 * ELECTION_TICKS
    assert (net.cores["a"].role, net.cores["a"].leader, net.cores["a"].term) == (FOLLOWER, "", 2)


def test_leader_with_a_majority_stays():
    # §6.2: one follower lost is not a lost quorum.
    net = cluster()
    net.isolate("c")
    for _ in range(5 * ELECTION_TICKS):
        net.tick("a")
        net.tick("b")
        net.stabilize()
    assert net.cores["a"].role == LEADER


def test_follower_in_lease_ignores_vote_requests():
    # §4.2.3: a server that heard from a leader within the minimum election timeout ignores
    # requests to vote (real or pre), so a removed or partitioned server cannot disrupt it.
    net = cluster()
    b = net.cores["b"]
    for pre in (False, True):
        b.step(envelope("c", m.RaftVote(last_index=9, last_term=9, pre=pre), 7))
        assert b.ready().messages == []
        assert (b.term, b.vote, b.leader) == (2, "a", "a")
    net.tick("b", ELECTION_TICKS)  # no heartbeat: the lease runs out
    b.step(envelope("c", m.RaftVote(last_index=9, last_term=9), 7))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, term, b.vote) == ("c", True, 7, "c")


def test_forced_vote_bypasses_the_lease():
    # §3.10 with §4.2.3: a transfer's election (TimeoutNow) must win while followers hold a lease.
    net = cluster()
    b = net.cores["b"]
    b.step(envelope("c", m.RaftVote(last_index=9, last_term=9, force=True), 3))
    [(to, resp, term)] = b.ready().messages
    assert (to, resp.granted, term) == ("c", True, 3)


# -- leadership transfer (§3.10) --------------------------------------------------------------


def test_transfer_to_an_up_to_date_follower():
    # §3.10: the leader tells a follower whose log matches its own to campaign at once.
    net = cluster()
    a = net.cores["a"]
    assert a.transfer_leader("b")
    net.process("a")
    assert [msg.TYPE for _, _, msg in net.sent("a", "b")] == ["raft.timeout_now"]
    net.stabilize()
    assert net.roles() == {"a": (FOLLOWER, 3), "b": (LEADER, 3), "c": (FOLLOWER, 3)}


def test_transfer_target_catches_up_first():
    # §3.10: a target that lags is brought up to date, then told to campaign; it wins because
    # its log is as up to date as anyone's.
    net = cluster()
    a = net.cores["a"]
    net.isolate("c")
    assert a.propose([b"1", b"2", b"3"])
    net.stabilize()
    net.heal()
    assert a.transfer_leader("c")
    c = net.cores["c"]
    net.ticks_until("a", lambda: c.role == LEADER, limit=ELECTION_TICKS - 1)  # before it aborts
    assert (c.role, c.term) == (LEADER, 3)
    assert entries_from(c, 3)[:3] == [Entry(3, 2, b"1"), Entry(4, 2, b"2"), Entry(5, 2, b"3")]


def test_proposals_are_refused_during_a_transfer():
    # §3.10: the leader stops accepting requests while leadership moves.
    net = cluster()
    net.isolate("b")
    a = net.cores["a"]
    assert a.transfer_leader("b")
    last = a.log.last_index()
    assert a.propose([b"x"]) is False
    net.cores["c"].propose([b"forwarded"])
    net.stabilize()
    assert a.log.last_index() == last


def test_transfer_aborts_after_an_election_timeout():
    # §3.10: if the transfer does not complete within an election timeout, the leader aborts
    # it and accepts requests again.
    net = cluster()
    net.isolate("b")
    a = net.cores["a"]
    assert a.transfer_leader("b")
    net.tick("a", ELECTION_TICKS - 1)
    assert a.propose([b"x"]) is False
    net.tick("a")
    assert a.role == LEADER and a.propose([b"x"])


@pytest.mark.parametrize("target", ["a", "zz"])
def test_transfer_to_self_or_a_stranger_is_refused(target):
    net = cluster()
    assert net.cores["a"].transfer_leader(target) is False


def test_transfer_to_a_learner_is_refused():
    net = Network([node(n, "ab", learners="c", seed=k) for k, n in enumerate("abc")])
    net.campaign("a")
    assert net.cores["a"].transfer_leader("c") is False
