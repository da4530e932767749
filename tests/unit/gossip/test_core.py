"""The gossip core alone, one rule per test (SWIM §x, Lifeguard §IV, memberlist's behaviour):
datagrams and timers go in, datagrams and events come out; no sockets, no clock."""

import random

import pytest

from common import messages as m, wire
from services.gossip import suspicion
from services.gossip.broadcasts import Broadcasts
from services.gossip.core import HEADROOM_BYTES, Config, Gossip, push_pull_interval
from services.gossip.roster import ALIVE, DEAD, LEFT, SUSPECT, check_meta, local_meta, member_map

ADDRS = {"raft": "tcp://10.0.0.1:8191", "peer": "tcp://10.0.0.1:8190", "state": "tcp://10.0.0.1:8192",
         "gossip": "tcp://10.0.0.1:8947", "run": "tcp://10.0.0.1:6868", "dispatcher": "tcp://10.0.0.1:6869",
         "output": "tcp://10.0.0.1:6870", "executor": "tcp://10.0.0.1:6871"}


def meta(**tags):
    return local_meta("agent", ADDRS, tags, ["shell"])


def core(name="a", *, now=0, **cfg):
    return Gossip(Config(**cfg), name=name, addr=f"h-{name}", port=7946, meta=meta(), rng=random.Random(1), now=now)


def env(msg, sender="x"):
    return wire.Envelope(msg.TYPE, sender, b"", b"", 0, msg)


def know(g, *names, now=0):
    for name in names:
        g.roster.on_alive(name, 0, f"h-{name}", 7946, meta(), now, quiet=True)
    g.broadcasts.clear()


def drain(g):
    rd = g.ready()
    g.advance(rd)
    return rd


def run(g, until):
    while g.deadline() is not None and g.deadline() <= until:
        g.tick(g.deadline())


def first_probe(g):
    """Run timers until the first probe goes out: (when, ping)."""
    while True:
        at = g.deadline()
        g.tick(at)
        pings = [x for _, _, x in drain(g).datagrams if isinstance(x, m.GossipPing)]
        if pings:
            return at, pings[0]


# -- probes ----------------------------------------------------------------------------------


def test_a_ping_is_answered_with_an_ack_of_its_seq_to_the_address_it_names():  # SWIM §3.1
    g = core()
    g.step(env(m.GossipPing(seq=7, node="a", addr="h-x", port=1)), 0)
    [(addr, port, ack)] = drain(g).datagrams
    assert (addr, port, type(ack), ack.seq) == ("h-x", 1, m.GossipAck, 7)


def test_a_ping_meant_for_another_member_is_ignored():
    g = core()
    g.step(env(m.GossipPing(seq=7, node="someone-else", addr="h-x", port=1)), 0)
    assert drain(g).datagrams == []


def test_no_ack_within_the_timeout_asks_k_others_to_probe_and_nack():  # SWIM §3.1, Lifeguard §IV.A
    g = core(indirect_checks=2)
    know(g, "b", "c", "d")
    at, ping = first_probe(g)
    run(g, at + 500)                   # the probe timeout
    reqs = [msg for _, _, msg in drain(g).datagrams]
    assert len(reqs) == 2 and all(isinstance(r, m.GossipPingReq) and r.nack and r.node == ping.node for r in reqs)


def test_a_probe_without_any_ack_makes_the_target_suspect():  # SWIM §4.2
    g = core()
    know(g, "b")
    at, _ = first_probe(g)
    run(g, at + 1000)
    assert g.roster.members["b"].state == SUSPECT
    assert ("update", "suspect") in [(k, x["status"]) for k, x in drain(g).events]


def test_an_acked_probe_lowers_local_health_and_a_failed_one_raises_it():  # Lifeguard §IV.A
    g = core()
    know(g, "b")
    g.awareness.score = 3
    at, ping = first_probe(g)
    g.step(env(m.GossipAck(seq=ping.seq)), at + 10)
    assert g.awareness.score == 2
    run(g, at + 12000)  # later probes of b get no ack; no relay to nack: +1 each
    assert g.awareness.score > 2


def test_missing_nacks_raise_local_health_by_how_many_are_missing():  # Lifeguard §IV.A
    g = core(indirect_checks=3)
    know(g, "b", "c", "d", "e")
    at, ping = first_probe(g)
    run(g, at + 500)                   # indirect probes to 3 relays
    g.step(env(m.GossipNack(seq=ping.seq)), at + 600)
    run(g, at + 1000)                  # the period ends: 1 nack of 3 expected
    assert g.awareness.score == 2


def test_local_health_stretches_probe_interval_and_timeout():
    g = core()
    g.awareness.score = 2
    assert g.awareness.scale(1000) == 3000


def test_a_relay_forwards_the_targets_ack_and_nacks_when_it_stays_silent():  # SWIM §3.1, Lifeguard
    g = core()
    g.step(env(m.GossipPingReq(seq=5, node="t", target_addr="h-t", target_port=2, addr="h-o", port=3, nack=True)), 0)
    [(addr, _, ping)] = drain(g).datagrams
    assert addr == "h-t" and ping.node == "t"
    g.step(env(m.GossipAck(seq=ping.seq)), 10)
    [(addr, port, ack)] = drain(g).datagrams
    assert (addr, port, type(ack), ack.seq) == ("h-o", 3, m.GossipAck, 5)
    g.step(env(m.GossipPingReq(seq=6, node="t", target_addr="h-t", target_port=2, addr="h-o", port=3, nack=True)), 20)
    drain(g)
    run(g, 20 + 500)
    sent = [(type(x), x.seq) for _, _, x in drain(g).datagrams if not isinstance(x, m.GossipPing)]
    assert sent == [(m.GossipNack, 6)]


def test_a_suspect_target_is_pinged_with_its_suspicion_first():  # Lifeguard §IV.C (buddy system)
    g = core()
    know(g, "b")
    g.roster.on_suspect("b", 0, "c", 0)
    drain(g)
    _, ping = first_probe(g)
    assert ping.updates[0] == [SUSPECT, "b", 0, "a"]


# -- suspicion, refutation, death ------------------------------------------------------------


def test_a_suspicion_runs_out_into_dead_unless_refuted():  # SWIM §4.2
    g = core()
    know(g, "b", "c")
    g.roster.on_suspect("b", 0, "c", 0)
    due = g.roster.suspicions["b"].due
    g.roster.on_alive("b", 1, "h-b", 7946, meta(), due - 1)   # refuted with a higher incarnation
    g.tick_suspicion(due, "b")
    assert g.roster.members["b"].state == ALIVE
    g.roster.on_suspect("b", 1, "c", due + 2)
    g.tick_suspicion(g.roster.suspicions["b"].due - 1, "b")
    assert g.roster.members["b"].state == SUSPECT
    g.tick_suspicion(g.roster.suspicions["b"].due, "b")
    assert g.roster.members["b"].state == DEAD and g.roster.declared[-1][:2] == ("b", 1)


def test_suspicion_starts_long_and_shrinks_with_independent_confirmations():  # Lifeguard §IV.B
    low = suspicion.suspicion_timeout(4, 8, 1000)
    assert low == 4000  # max(1, log10(8)) = 1
    s = suspicion.Suspicion(0, "x", 2, low, 6 * low, start=0)
    assert s.due == 24000
    assert not s.confirm("x")            # the origin is no confirmation
    assert s.confirm("y") and 4000 < s.due < 24000
    assert not s.confirm("y")            # one per member
    assert s.confirm("z") and s.due == 4000
    assert not s.confirm("w")            # k reached: no more news


def test_plain_swim_waits_the_fixed_minimum():
    g = core(lifeguard=False)
    know(g, *"bcdefgh")
    g.roster.on_suspect("b", 0, "c", 0)
    assert g.roster.suspicions["b"].due == suspicion.suspicion_timeout(4, 8, 1000)


def test_news_of_our_own_suspicion_or_death_is_refuted_with_a_higher_incarnation():  # SWIM §4.2
    g = core()
    g.step(env(m.GossipBroadcast(updates=[[SUSPECT, "a", 0, "b"]])), 0)
    assert g.roster.local.inc == 1 and g.roster.local.state == ALIVE
    g.step(env(m.GossipBroadcast(updates=[[DEAD, "a", 5, "b"]])), 1)
    assert g.roster.local.inc == 6
    assert [ALIVE, "a", 6] == g.broadcasts.take(1400, 10)[0][:3]
    assert g.awareness.score == 2  # Lifeguard: refuting hints that we are the slow one


def test_old_incarnations_change_nothing():
    g = core()
    know(g, "b")
    g.roster.on_alive("b", 3, "h-b", 7946, meta(), 0)
    g.roster.on_suspect("b", 2, "c", 0)
    g.roster.on_dead("b", 2, "c", 0)
    assert g.roster.members["b"].state == ALIVE and g.roster.members["b"].inc == 3


def test_dead_said_by_the_member_itself_is_a_graceful_leave():  # memberlist's Leave
    g = core()
    know(g, "b")
    g.step(env(m.GossipBroadcast(updates=[[DEAD, "b", 0, "b"]])), 0)
    assert g.roster.members["b"].state == LEFT
    assert [(k, x["status"]) for k, x in drain(g).events] == [("leave", "left")]


def test_a_failed_member_that_pings_us_is_told_so_and_returns_when_it_refutes():
    g = core()
    know(g, "b")
    g.roster.on_dead("b", 0, "c", 0)
    drain(g)
    g.step(env(m.GossipPing(seq=1, node="a", addr="h-b", port=7946), sender="b"), 1)
    [(_, _, ack)] = drain(g).datagrams
    assert ack.updates[0] == [DEAD, "b", 0, "a"]
    g.step(env(m.GossipBroadcast(updates=[[ALIVE, "b", 1, "h-b", 7946, meta()]])), 2)
    assert [(k, x["status"]) for k, x in drain(g).events] == [("join", "alive")]


# -- dissemination, push-pull, join, leave, reap ---------------------------------------------


def test_updates_are_sent_a_bounded_number_of_times_fewest_sent_first():  # SWIM §4.1
    q = Broadcasts()
    q.add("b", [ALIVE, "b", 1, "h", 1, {}])
    q.add("c", [ALIVE, "c", 1, "h", 1, {}])
    assert [u[1] for u in q.take(1000, 2)] == ["c", "b"]
    q.add("d", [ALIVE, "d", 1, "h", 1, {}])
    assert [u[1] for u in q.take(1000, 2)] == ["d", "c", "b"]
    assert [u[1] for u in q.take(1000, 2)] == ["d"] and len(q) == 0


def test_newer_news_about_a_member_replaces_the_queued_one():
    q = Broadcasts()
    q.add("b", [SUSPECT, "b", 1, "x"])
    q.add("b", [ALIVE, "b", 2, "h", 1, {}])
    assert q.take(1000, 5) == [[ALIVE, "b", 2, "h", 1, {}]]


def test_retransmit_limit_grows_with_log_of_members():
    assert suspicion.retransmit_limit(4, 8) == 8 and suspicion.retransmit_limit(4, 99) == 8 and suspicion.retransmit_limit(4, 1000) == 16


def test_a_full_datagram_fits_packet_bytes_with_long_names():
    long = "n" * 64
    g = Gossip(Config(), name=long, addr="255.255.255.255", port=65535, meta=meta(), rng=random.Random(1), now=0)
    for i in range(200):
        g.roster.on_alive(f"{long}{i}", 1, "255.255.255.255", 65535, meta(rack="r" * 40), 0)
    g.send("255.255.255.255", 65535, m.GossipPingReq, seq=2**31, node=long, target_addr="255.255.255.255",
           target_port=65535, addr="255.255.255.255", port=65535, nack=True)
    [(_, _, msg)] = drain(g).datagrams
    assert msg.updates and len(wire.encode_datagram(msg, long)) <= 1400
    assert HEADROOM_BYTES > 0


def test_push_pull_merges_views_both_ways_and_reports_joins():  # memberlist pushPull
    a, b = core("a"), core("b")
    know(b, "c")
    run(a, 0)
    a.join([("h-b", 7946)], 0)
    run(a, 0)
    [(token, addr, _, request)] = drain(a).syncs
    reply = b.on_sync(env(request, "a"), 1)
    a.synced(token, env(reply, "b"), 2)
    assert {x["name"] for x in a.members()} == {"a", "b", "c"}
    assert {x["name"] for x in b.members()} == {"a", "b", "c"}
    assert {x["name"] for k, x in drain(a).events if k == "join"} == {"b", "c"}


def test_a_failed_join_is_retried_with_backoff_until_one_answers():
    a = core("a", retry_interval_ms=1000)
    a.join([("h-b", 7946)], 0)
    run(a, 0)
    [(token, *_)] = drain(a).syncs
    a.synced(token, None, 10)
    run(a, 10 + 999)
    assert drain(a).syncs == []
    run(a, 10 + 1200)
    [(token, *_)] = drain(a).syncs
    a.synced(token, None, 1300)
    run(a, 1300 + 2250)
    assert len(drain(a).syncs) == 1


def test_retry_join_is_tried_again_whenever_we_are_alone():
    a = Gossip(Config(reconnect_interval_ms=30_000), name="a", addr="h-a", port=1, meta=meta(), rng=random.Random(1),
               now=0, retry_join=[("h-b", 7946)])
    run(a, 29_999)
    assert drain(a).syncs == []
    run(a, 30_000)
    assert [(addr, msg.join) for _, addr, _, msg in drain(a).syncs] == [("h-b", True)]


def test_remote_dead_is_only_suspect_here():  # memberlist mergeState
    a = core("a")
    know(a, "b")
    a.roster.merge([["b", "h-b", 7946, 0, DEAD, meta()]], 0)
    assert a.roster.members["b"].state == SUSPECT


def test_leave_spreads_our_own_dead_and_then_stops_taking_part():
    a = core("a", leave_propagate_ms=500)
    know(a, "b")
    a.leave(0)
    assert [(addr, x.updates) for addr, _, x in drain(a).datagrams] == [("h-b", [[DEAD, "a", 0, "a"]])]
    assert a.broadcasts.take(1400, 5)[0][:4] == [DEAD, "a", 0, "a"]
    assert a.members()[0]["status"] == "leaving"
    run(a, 600)
    assert a.members()[0]["status"] == "left"
    drain(a)
    a.step(env(m.GossipPing(seq=1, node="a", addr="h-b", port=1)), 700)
    [(_, _, ack)] = drain(a).datagrams
    assert ack.updates == [[DEAD, "a", 0, "a"]]  # a late prober learns we left, rather than suspect us
    a.step(env(m.GossipBroadcast(updates=[[SUSPECT, "a", 0, "b"]])), 800)
    assert drain(a).datagrams == [] and a.roster.local.inc == 0


def test_failed_members_are_reaped_after_the_reconnect_timeout_and_may_rejoin():
    a = core("a", reconnect_timeout_ms=60_000)
    know(a, "b")
    a.roster.on_dead("b", 0, "c", 0)
    run(a, 59_000)
    assert "b" in a.roster.members
    run(a, 80_000)
    assert "b" not in a.roster.members and ("reap", "b") in [(k, x["name"]) for k, x in drain(a).events]
    a.step(env(m.GossipBroadcast(updates=[[ALIVE, "b", 0, "h-b", 7946, meta()]])), 80_001)
    assert a.roster.members["b"].state == ALIVE


def test_tags_change_as_a_new_incarnation_of_ourselves():
    a = core("a")
    drain(a)
    a.update_meta(meta(role="x"), 5)
    assert a.roster.local.inc == 1
    [(kind, member)] = drain(a).events
    assert kind == "update" and member["tags"]["role"] == "x"


def test_user_events_are_delivered_once_and_ordered_by_a_lamport_clock():  # Serf user events
    a = core("a")
    assert a.fire_event("deploy", b"v1", 0) == 0
    a.step(env(m.GossipBroadcast(updates=[["e", 41, "deploy", b"v2"], ["e", 41, "deploy", b"v2"]])), 1)
    assert [(e["ltime"], e["payload"]) for e in drain(a).user_events] == [(0, b"v1"), (41, b"v2")]
    assert a.fire_event("next", b"", 2) == 42
    with pytest.raises(ValueError):
        a.fire_event("big", b"x" * 600, 3)


@pytest.mark.parametrize("update", [
    "not a list", [], ["a", "b", 1], ["a", "b", -1, "h", 1, {}], ["s", 5, 1, "x"], ["z", 1, 2, 3],
    ["e", 1, "n", "not bytes"],
])
def test_malformed_updates_are_a_wire_error_never_a_crash(update):
    a = core("a")
    with pytest.raises(wire.WireError) as err:
        a.step(env(m.GossipBroadcast(updates=[update])), 0)
    assert err.value.code == "field"


def test_an_alive_update_with_bad_meta_is_a_wire_error():
    a = core("a")
    with pytest.raises(wire.WireError):
        a.step(env(m.GossipBroadcast(updates=[[ALIVE, "b", 1, "h", 1, {"role": 1}]])), 0)


def test_push_pull_interval_scales_past_32_members():
    assert push_pull_interval(30_000, 32) == 30_000 and push_pull_interval(30_000, 1000) == 180_000


def test_member_maps_carry_dkrons_tags_and_user_tags_may_set_role():
    member = member_map("web1", "10.0.0.1", 7946, 2, "alive", meta(role="x", dc="eu"))
    assert member["tags"] == {"role": "x", "dc": "eu", "server": "false", "rpc_addr": "10.0.0.1:8191",
                              "port": "7946", "version": member["tags"]["version"]}
    assert member["addrs"]["run"] == "tcp://10.0.0.1:6868" and member["role"] == "agent"


def test_tags_too_large_to_announce_are_refused():
    with pytest.raises(ValueError):
        local_meta("agent", ADDRS, {"k": "v" * 600}, ["shell"])


def test_members_announce_the_protocols_they_speak_and_older_ones_speak_the_first():
    newer = local_meta("server", ADDRS, {}, ["shell"], [1, 2])
    assert member_map("s3", "10.0.0.3", 7946, 0, "alive", check_meta(newer))["protocol"] == [1, 2]
    older = local_meta("server", ADDRS, {}, ["shell"])
    assert "protocol" not in older  # the meta a release before versions announced, byte for byte
    assert member_map("s1", "10.0.0.1", 7946, 0, "alive", older)["protocol"] == [1, 1]


@pytest.mark.parametrize("bad", [[2, 1], [0, 1], [1], "1..2", [1, True], [1, 1 << 16]])
def test_a_member_announcing_a_malformed_protocol_range_is_refused(bad):
    with pytest.raises(wire.WireError) as err:
        check_meta({**local_meta("server", ADDRS, {}, ["shell"]), "protocol": bad})
    assert "protocol" in str(err.value)


@pytest.mark.parametrize("change", [{"role": "boss"}, {"ports": {"gossip": 8947}}, {"ports": {**{
    k: int(v.rsplit(":", 1)[1]) for k, v in ADDRS.items()}, "run": 70000}}])
def test_a_member_whose_meta_every_service_could_not_read_is_refused(change):
    """A server without a run port would fail every executor that follows it: refused here."""
    with pytest.raises(wire.WireError):
        check_meta({**local_meta("server", ADDRS, {}, ["shell"]), **change})
