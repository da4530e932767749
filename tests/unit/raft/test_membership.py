"""services/raft/core.py, who belongs: single-server membership changes (Ongaro's dissertation
§4.1-§4.3: voters, learners, promotion, removal, one change at a time) and bootstrap (§4.4)."""

import pytest

from common import messages as m
from services.raft.core import CONF, FOLLOWER, LEADER, PRE_CANDIDATE

from .network import BOUND, ELECTION_TICKS, Network, cluster, conf_entry, empty_node, envelope, membership, node


# -- membership changes (§4.1-§4.3) -----------------------------------------------------------


def members(core):
    ms = core.log.membership()
    return sorted(ms.voters), sorted(ms.learners)


def test_add_a_voter():
    # §4.1: one server added; the new configuration takes effect as soon as it is appended,
    # and the new server is brought up to date from the start of the log.
    net = cluster()
    net.add(empty_node("d", seed=9))
    a = net.cores["a"]
    assert a.propose_membership(membership("abcd")) is None
    assert members(a) == (["a", "b", "c", "d"], [])  # in use before it commits
    net.stabilize()
    net.heartbeat("a")
    d = net.cores["d"]
    assert members(d) == (["a", "b", "c", "d"], []) and d.is_voter()
    assert d.commit == a.commit == 3 and net.applied["d"] == net.applied["a"]
    net.isolate("c")
    net.cores["a"].propose([b"x"])
    net.stabilize()
    assert net.data("d")[-1] == b"x"  # a, b, d: 3 of 4


def test_commit_needs_a_majority_of_the_new_configuration():
    # §4.1: after adding d, a and b alone (2 of 4) no longer commit.
    net = cluster()
    net.add(empty_node("d", seed=9))
    a = net.cores["a"]
    assert a.propose_membership(membership("abcd")) is None
    net.stabilize()
    net.partition(["a", "b"], ["c", "d"])
    commit = a.commit
    assert a.propose([b"x"])
    net.stabilize()
    assert a.commit == commit
    net.heal()
    net.ticks_until("a", lambda: a.commit == commit + 1, limit=3 * a.conf.heartbeat_ticks)


def test_learner_replicates_but_neither_campaigns_nor_counts():
    # §4.2.1: a learner (non-voting member) receives the log; it never stands for election and
    # its acks do not count towards commitment.
    net = Network([node(n, "ab", learners="c", seed=k) for k, n in enumerate("abc")])
    net.campaign("a")
    a, c = net.cores["a"], net.cores["c"]
    assert a.propose([b"x"])
    net.stabilize()
    assert net.data("c") == [b"", b"x"]
    net.isolate("b")
    commit = a.commit
    assert a.propose([b"y"])
    net.stabilize()
    assert c.log.last_index() == a.log.last_index() and a.commit == commit
    net.isolate("c")
    for _ in range(5 * ELECTION_TICKS):
        net.tick("c")
        net.stabilize()
    assert c.role == FOLLOWER and c.term == 2


def test_learner_vote_does_not_count():
    # §4.2.1: a pre-candidate with votes from itself and a learner has no majority of voters.
    net = Network([node(n, "ab", learners="c", seed=k) for k, n in enumerate("abc")])
    net.isolate("a")
    net.time_out("a")
    net.stabilize()
    a = net.cores["a"]
    assert [to for _, to, _, _ in net.dropped] == ["b"]  # pre-votes go to voters only
    a.step(envelope("c", m.RaftVoteResp(granted=True, pre=True), 2))
    assert (a.role, a.term) == (PRE_CANDIDATE, 1)


def test_add_a_learner_then_promote_it():
    # §4.2.1: a new server joins as a learner until it has caught up, then becomes a voter.
    net = cluster()
    net.add(empty_node("e", seed=9))
    a = net.cores["a"]
    assert a.propose_membership(membership("abc", learners="e")) is None
    net.stabilize()
    net.heartbeat("a")
    e = net.cores["e"]
    assert members(e) == (["a", "b", "c"], ["e"]) and not e.is_voter()
    assert e.commit == a.commit
    assert a.propose_membership(membership("abce")) is None
    net.stabilize()
    net.heartbeat("a")
    assert members(e) == (["a", "b", "c", "e"], []) and e.is_voter()


def test_only_one_change_at_a_time():
    # §4.1: a new change may start only once the previous one is committed.
    net = cluster()
    a = net.cores["a"]
    assert a.propose_membership(membership("ab")) is None
    assert a.propose_membership(membership("a")) is not None
    net.stabilize()
    assert a.propose_membership(membership("a")) is None


@pytest.mark.parametrize("voters, learners", [
    ("abcef", "d"),    # two voters added
    ("a", "d"),        # two voters removed
    ("abce", "df"),    # a voter and a learner added
    ("abcde", ""),     # learner d promoted and e added: two voters more at once
    ("abcd", "e"),     # learner d promoted and e added as a learner
    ("abd", ""),       # learner d promoted and c removed
    ("", "d"),         # no voter left
])
def test_changes_of_more_than_one_server_are_refused(voters, learners):
    # §4.1: only single-server changes keep every majority of the old configuration
    # overlapping every majority of the new one.
    net = Network([node(n, "abc", learners="d", seed=k) for k, n in enumerate("abcd")])
    net.campaign("a")
    before = net.cores["a"].log.last_index()
    error = net.cores["a"].propose_membership(membership(voters, learners))
    assert isinstance(error, str) and error
    assert net.cores["a"].log.last_index() == before


def test_new_leader_changes_membership_only_after_committing_an_entry_of_its_term():
    # §4.1 (the single-server change bug, raft-dev 2015): a leader must not append a
    # configuration before an entry of its own term is committed, or a configuration of a
    # deposed leader it never saw can overwrite a committed one.
    net = Network.of(["a", "b", "c"])
    net.time_out("a")
    net.run_until_leader("a")
    a = net.cores["a"]
    assert a.log.term(a.commit) != a.term
    assert a.propose_membership(membership("ab")) is not None
    net.stabilize()
    assert a.propose_membership(membership("ab")) is None


def test_change_refused_by_a_follower():
    net = cluster()
    assert net.cores["b"].propose_membership(membership("ab")) == "not the leader"


def test_remove_a_voter():
    # §4.1: a removed server gets nothing more; the rest commit with a majority of themselves.
    net = cluster()
    a = net.cores["a"]
    assert a.propose_membership(membership("ab")) is None
    net.stabilize()
    assert sorted(a.progress) == ["a", "b"]
    net.isolate("c")
    assert a.propose([b"x"])
    net.stabilize()
    assert net.data("b")[-1] == b"x"
    assert not [d for d in net.dropped if d[1] == "c" and d[2].TYPE == "raft.append"]


def test_removed_leader_steps_down_once_the_change_commits():
    # §4.2.2: a leader removing itself manages the cluster until the new configuration is
    # committed (without counting itself), then steps down; the others elect a new leader.
    net = cluster()
    a = net.cores["a"]
    assert a.propose_membership(membership("bc")) is None
    assert a.role == LEADER
    net.process("a")
    assert a.role == LEADER  # not before the change commits
    net.stabilize()
    assert (a.role, a.is_voter()) == (FOLLOWER, False)
    assert net.cores["b"].commit == a.commit  # the commit went out before it stepped down
    for _ in range(BOUND):
        net.tick_all()
        if any(net.cores[n].role == LEADER for n in "bc"):
            break
    else:
        pytest.fail(f"no new leader: {net.roles()}")
    assert net.cores["a"].role == FOLLOWER
    leader = next(net.cores[n] for n in "bc" if net.cores[n].role == LEADER)
    assert leader.term >= 3 and members(leader) == (["b", "c"], [])


# -- bootstrap (§4.4) ------------------------------------------------------------------------


def test_bootstrap_writes_and_commits_entry_one_on_an_empty_log_only():
    # §4.4: a cluster starts from one configuration entry that every founder writes alike.
    a = empty_node("a")
    assert a.bootstrap(membership("abc"))
    rd = a.ready()
    assert rd.hard_state == (1, "", 1)
    assert rd.entries == [conf_entry(1, 1, "abc")] and rd.entries[0].kind == CONF
    assert rd.committed == []  # applied only once durable
    a.advance(rd)
    assert a.ready().committed == [conf_entry(1, 1, "abc")]
    assert a.bootstrap(membership("abc")) is False
    assert node("b", "abc").bootstrap(membership("abc")) is False
    voted = empty_node("c", hard_state=(3, "b", 0))  # voted in some election, yet holds no entry
    assert voted.bootstrap(membership("abc")) is False


def test_bootstrapped_founders_elect_and_replicate():
    # §4.4: founders that bootstrapped alike form a cluster; the first election is in term 2.
    net = Network([empty_node(n, seed=k) for k, n in enumerate("abc")])
    for core in net.cores.values():
        assert core.bootstrap(membership("abc"))
    net.stabilize()
    net.campaign("b")
    assert net.roles() == {"a": (FOLLOWER, 2), "b": (LEADER, 2), "c": (FOLLOWER, 2)}
    assert net.cores["b"].propose([b"x"])
    net.stabilize()
    assert all(net.data(n) == [b"", b"x"] for n in "abc")
