"""services/raft/core.py, how the log travels, beyond the paper's Figure 2: log compaction and
InstallSnapshot (paper §7, dissertation §5), retries, batching and pipelining (§10.2), and
ReadIndex (dissertation §6.4)."""

import pytest

from common import messages as m
from services.raft.core import MAX_INFLIGHT, SNAPSHOT_RESEND_ROUNDS, Entry

from .network import BOUND, ELECTION_TICKS, cluster, entries_from, envelope, membership, node


# -- log compaction and snapshots (§5; paper §7) ---------------------------------------------


def test_compaction_keeps_the_entries_after_the_snapshot():
    # §5.1: the snapshot replaces the log up to its index; the rest stays.
    net = cluster()
    a = net.cores["a"]
    a.propose([b"1", b"2", b"3"])
    net.stabilize()
    net.compact("a", 3)
    assert (a.log.offset, a.log.term(3), a.log.last_index()) == (3, 2, 5)
    assert a.log.term(2) == -1 and [e.data for e in entries_from(a, 4)] == [b"2", b"3"]
    assert a.log.snapshot.membership == membership("abc")


def test_follower_far_behind_gets_a_snapshot_then_appends():
    # §5.2 (paper §7): a follower that needs entries the leader has discarded gets the
    # snapshot (InstallSnapshot), installs it through Ready.snapshot, then takes appends.
    net = cluster()
    a, c = net.cores["a"], net.cores["c"]
    net.isolate("c")
    a.propose([b"1", b"2", b"3", b"4"])
    net.stabilize()
    net.compact("a")
    assert a.log.offset == 6
    net.heal()
    net.tick("a", 2)
    net.process("a")
    [(_, _, snap)] = net.sent("a", "c")  # the heartbeat to c is the snapshot: a has no entry c needs
    assert (snap.TYPE, snap.index, snap.term) == ("raft.snapshot", 6, 2)
    net.deliver()
    rd = net.process("c")
    assert rd.snapshot is not None and rd.snapshot.index == 6 and rd.committed == []
    assert net.installed["c"] == [6] and (c.log.offset, c.commit, c.applied) == (6, 6, 6)
    assert a.propose([b"5"])
    net.stabilize()
    assert net.data("c") == net.data("a") == [b"", b"1", b"2", b"3", b"4", b"5"]
    assert [e.index for e in net.applied["c"]] == list(range(1, 8))


def test_snapshot_describing_a_prefix_of_the_log_keeps_what_follows():
    # Paper §7: "If instead the follower receives a snapshot that describes a prefix of its log
    # (due to retransmission or by mistake), then log entries covered by the snapshot are
    # deleted but entries following the snapshot are still valid and must be retained."
    b = node("b", "abc", hard_state=(2, "a", 1), log=[(1, b"one"), (2, b"two"), (2, b"three")])
    b.advance(b.ready())
    b.step(envelope("a", m.RaftSnapshot(index=3, term=2, membership=membership("abc").to_plain()), 2))
    rd = b.ready()
    assert rd.snapshot is None and b.commit == 3
    assert entries_from(b, 4) == [Entry(4, 2, b"three")]
    assert [e.index for e in rd.committed] == [2, 3]
    [(to, resp, term)] = rd.messages
    assert (to, resp.success, resp.match, term) == ("a", True, 3, 2)


def test_snapshot_racing_an_acked_append_does_not_lose_acked_entries():
    # Paper §7 and §5.3, end to end: b acked entries 3..7 in an append that still carried an old
    # commit index; the leader, having compacted to 6 before that ack came, sent b a snapshot.
    # Were b to throw away entry 7 it acked, the leader would count a copy that is gone, and
    # b would reject every later append at 7 while the leader never went below match+1.
    net = cluster()
    a, b = net.cores["a"], net.cores["b"]
    assert a.propose([b"%d" % i for i in range(5)])
    net.process("a")
    append_to_b = net.sent("a", "b")
    net.partition(["a", "c"], ["b"])
    net.stabilize()
    net.compact("a", 6)
    net.heal()
    net.tick("a", 2)
    net.process("a")
    snapshot_to_b = [q for q in net.queue if q[1] == "b" and q[2].TYPE == "raft.snapshot"]
    net.queue = [(s, t, msg, 2) for s, t, msg in append_to_b] + snapshot_to_b
    assert len(net.queue) == 2
    net.stabilize()
    assert (b.log.last_index(), b.commit) == (7, 6) and net.installed["b"] == []
    assert a.propose([b"more"])
    net.stabilize()
    assert net.data("b") == net.data("a")


def test_snapshot_that_does_not_match_the_log_replaces_it():
    # Paper §7: otherwise the follower discards its entire log; it is superseded by the snapshot.
    b = node("b", "abc", hard_state=(2, "a", 1), log=[(1, b"one"), (1, b"stale")])
    b.advance(b.ready())
    b.step(envelope("a", m.RaftSnapshot(index=3, term=2, membership=membership("abc").to_plain()), 2))
    rd = b.ready()
    assert rd.snapshot.index == 3 and rd.committed == [] and rd.entries == []
    assert (b.log.offset, b.log.last_index(), b.commit) == (3, 3, 3)
    [(to, resp, term)] = rd.messages
    assert (to, resp.success, resp.match) == ("a", True, 3)


def test_snapshot_at_or_below_the_commit_index_is_ignored():
    # Paper §7: a stale (retransmitted) snapshot changes nothing; the reply tells the leader
    # where the follower is.
    b = node("b", "abc", hard_state=(2, "a", 3), log=[(1, b"one"), (2, b"two")])
    b.advance(b.ready())
    b.step(envelope("a", m.RaftSnapshot(index=2, term=1, membership=membership("abc").to_plain()), 2))
    rd = b.ready()
    assert rd.snapshot is None and b.log.last_index() == 3
    [(to, resp, term)] = rd.messages
    assert (to, resp.success, resp.match) == ("a", True, 3)


def test_lost_snapshot_is_sent_again():
    # Paper §5.3 and §7: the leader retries indefinitely, InstallSnapshot as AppendEntries.
    net = cluster()
    a, c = net.cores["a"], net.cores["c"]
    net.isolate("c")
    a.propose([b"1", b"2"])
    net.stabilize()
    net.compact("a")
    net.heal()
    net.drop_types = {"raft.snapshot"}
    net.heartbeat("a")
    net.drop_types = set()
    for _ in range((SNAPSHOT_RESEND_ROUNDS + 2) * ELECTION_TICKS):
        net.tick("a")
        net.stabilize()
    assert c.log.offset == a.log.offset and c.leader == "a"


# -- replication details (§5.3, §10.2.2) ----------------------------------------------------


def test_lost_appends_are_sent_again_at_the_next_heartbeat():
    # Paper §5.3: "the leader retries AppendEntries RPCs indefinitely": a follower that missed
    # appends catches up with heartbeats alone, with no new proposal to uncover the gap.
    net = cluster()
    a, c = net.cores["a"], net.cores["c"]
    net.isolate("c")
    a.propose([b"1", b"2"])
    net.stabilize()
    net.heal()
    net.ticks_until("a", lambda: c.commit == a.commit, limit=4 * a.conf.heartbeat_ticks)
    assert net.data("c") == [b"", b"1", b"2"]


def test_pipelining_is_bounded_by_max_inflight():
    # §10.2.2: the leader sends appends without waiting for each ack, up to MAX_INFLIGHT per
    # follower; acks free the window, and everything arrives.
    net = cluster(max_batch_entries=1)
    a = net.cores["a"]
    for i in range(3 * MAX_INFLIGHT):
        assert a.propose([b"%d" % i])
    net.process("a")
    carrying = [msg for _, _, msg in net.sent("a", "b", "raft.append") if msg.entries]
    assert len(carrying) == MAX_INFLIGHT
    assert [msg.entries[0][0] for msg in carrying] == list(range(3, 3 + MAX_INFLIGHT))
    net.stabilize()
    assert net.data("b") == net.data("a") and len(net.data("b")) == 1 + 3 * MAX_INFLIGHT


def test_appends_batch_many_entries():
    # §10.2.1: one append carries up to max_batch_entries entries; each ack brings the next.
    net = cluster(max_batch_entries=4)
    a = net.cores["a"]
    assert a.propose([b"%d" % i for i in range(10)])
    sizes = []
    for _ in range(BOUND):
        if not net.process("a") and not net.queue:
            break
        sizes += [len(msg.entries) for _, _, msg in net.sent("a", "b", "raft.append") if msg.entries]
        for nid in "bc":
            net.deliver(nid)
            net.process(nid)
        net.deliver("a")
    assert sizes == [4, 4, 2]
    assert net.data("b")[1:] == [b"%d" % i for i in range(10)]


def test_a_rejected_append_probes_one_append_at_a_time():
    # §5.3: after a rejection the leader finds the match point before pipelining again.
    net = cluster()
    a = net.cores["a"]
    net.isolate("c")
    a.propose([b"1"])
    net.stabilize()
    net.heal()
    a.propose([b"2"])
    net.process("a")
    net.deliver()
    net.process("c")    # c: rejects, it lacks entry 3
    net.deliver()
    assert a.progress["c"].probing
    a.propose([b"3"])
    net.process("a")
    to_c = [msg for _, _, msg in net.sent("a", "c", "raft.append") if msg.entries]
    assert len(to_c) == 1 and to_c[0].prev_index == 2
    net.stabilize()
    assert net.data("c") == [b"", b"1", b"2", b"3"]


# -- ReadIndex (§6.4) ------------------------------------------------------------------------


def test_read_index_on_a_follower_is_answered_by_the_leader_after_a_heartbeat_quorum():
    # §6.4.1: a follower asks the leader for its commit index; the leader answers once a
    # heartbeat round confirmed it still leads; the follower then waits to apply up to it.
    net = cluster()
    a, b = net.cores["a"], net.cores["b"]
    ctx = b.read_index()
    net.process("b")
    assert net.sent("b") == [("b", "a", m.RaftReadIndex(ctx=ctx))]
    net.deliver()
    net.process("a")
    assert net.sent("a", "b", "raft.read_index_resp") == []  # first the heartbeat round
    heartbeats = net.sent("a", None, "raft.append")
    assert heartbeats and all(msg.ctx for _, _, msg in heartbeats)
    net.stabilize()
    assert net.reads["b"] == [(ctx, a.commit)]


def test_read_index_is_not_answered_without_a_quorum():
    # §6.4: a leader that cannot reach a majority might be deposed: no answer.
    net = cluster()
    a = net.cores["a"]
    net.isolate("a")
    ctx = a.read_index()
    net.stabilize()
    assert ctx is not None and net.reads["a"] == []


def test_read_index_sent_to_a_non_leader_is_refused():
    # §6.4: only a leader answers; index 0 tells the follower to retry.
    net = cluster()
    c = net.cores["c"]
    c.step(envelope("b", m.RaftReadIndex(ctx=42), 2))
    [(to, resp, term)] = c.ready().messages
    assert (to, resp) == ("b", m.RaftReadIndexResp(ctx=42, index=0))


def test_read_index_without_a_known_leader():
    assert node("b", "abc").read_index() is None


def test_appends_are_cut_by_bytes_and_one_entry_goes_whatever_its_size():
    # etcd's MaxSizePerMsg: a batch of large entries once passed the frame limit, and a follower
    # behind it never caught up. An entry larger than the bound still goes, alone.
    net = cluster(max_batch_entries=512, max_append_bytes=10_000)
    a = net.cores["a"]
    assert a.propose([b"x" * 3000 for _ in range(7)] + [b"y" * 25_000, b"z"])
    sizes = []
    for _ in range(BOUND):
        if not net.process("a") and not net.queue:
            break
        sizes += [sum(len(e[2]) for e in msg.entries) for _, _, msg in net.sent("a", "b", "raft.append") if msg.entries]
        for nid in "bc":
            net.deliver(nid)
            net.process(nid)
        net.deliver("a")
    assert max(sizes) == 25_000 and all(size <= 10_000 for size in sizes if size != 25_000)
    assert net.data("b")[1:] == [b"x" * 3000] * 7 + [b"y" * 25_000, b"z"]
