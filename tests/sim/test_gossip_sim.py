"""The gossip core in the deterministic simulator: seeded clusters of at most 50 members over a
network with loss and latency, with joins, crashes, stalls, leaves and partitions, invariants
checked every half second of simulated time (scripts/sim/gossip.py), and bounded in time."""

import pytest

from scripts.sim.gossip import Faults, Sim, figures
from services.gossip.core import Config

SEEDS = (1, 2, 3)


def until(sim, done, limit_ms, every_ms=100):
    """Run until done() holds; the simulated time it took, or a failure naming the seed."""
    start = sim.now
    while not done():
        if sim.now - start > limit_ms:
            pytest.fail(f"seed {sim.seed}: not reached within {limit_ms / 1000:.0f} simulated seconds")
        sim.run_for(every_ms)
    return sim.now - start


@pytest.mark.parametrize("seed", SEEDS)
def test_every_alive_member_learns_of_a_join(seed):
    sim = Sim(20, seed, faults=Faults(loss=0.05), wire_check=True, check=True)
    sim.run_for(3000)
    new = sim.add(join=["node-0003"])
    until(sim, lambda: all(sim.status(n.name, new.name) == "alive" and sim.status(new.name, n.name) == "alive"
                           for n in sim.live() if n is not new), 30_000)


@pytest.mark.parametrize("seed", range(1, 61))
def test_a_tag_change_reaches_every_member_of_a_small_cluster_by_gossip_alone(seed):
    """Push-pull off, so gossip alone must carry it: 8 members, one of them dead (still a gossip
    target for a while), as tests/cluster/test_gossip.py has it. With 4 sends per update about
    one change in twelve missed a member here until the next push-pull, 30 s or more later."""
    sim = Sim(8, seed, cfg=Config(push_pull_interval_ms=0), check=True)
    sim.kill("node-0007")
    sim.run_for(8000)   # the dead member is failed everywhere, as in the cluster test
    node = sim.nodes["node-0003"]
    meta = dict(node.core.roster.local.meta, tags={"role": "x"})
    node.core.update_meta(meta, sim.now)
    sim.after(node)
    until(sim, lambda: all(n.core.roster.members["node-0003"].meta == meta for n in sim.live() if n is not node),
          15_000)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_alive_member_learns_of_a_failure(seed):
    sim = Sim(30, seed, faults=Faults(loss=0.05), check=True)
    sim.run_for(3000)
    victims = ["node-0007", "node-0021"]
    for name in victims:
        sim.kill(name)
    until(sim, lambda: all(sim.status(n.name, v) == "failed" for n in sim.live() for v in victims), 60_000)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_member_that_refutes_suspicion_is_not_declared_dead(seed):
    sim = Sim(20, seed, check=True)
    sim.run_for(3000)
    sim.pause("node-0011", 3000)   # silent long enough to be suspected, not to be declared dead
    sim.run_for(60_000)
    assert sim.suspected.get("node-0011"), f"seed {seed}: the stall went unnoticed; the test proves nothing"
    assert "node-0011" not in sim.failed_at and sim.nodes["node-0011"].core.roster.refuted > 0
    assert all(sim.status(n.name, "node-0011") == "alive" for n in sim.live())


def test_without_refutation_the_suspect_is_declared_dead():
    """The check above bites: a core that does not refute is declared failed."""
    sim = Sim(20, SEEDS[0], check=True)
    sim.nodes["node-0011"].core.roster.refute = lambda accused: None
    sim.run_for(3000)
    sim.pause("node-0011", 3000)
    sim.run_for(60_000)
    assert "node-0011" in sim.failed_at


@pytest.mark.parametrize("seed", SEEDS)
def test_a_graceful_leave_is_not_reported_as_a_failure(seed):
    sim = Sim(20, seed, faults=Faults(loss=0.05), check=True)
    sim.run_for(3000)
    sim.leave("node-0004")
    until(sim, lambda: all(sim.status(n.name, "node-0004") == "left" for n in sim.live() if n.name != "node-0004"),
          20_000)
    sim.run_for(30_000)
    assert "node-0004" not in sim.failed_at
    assert not [d for d in sim.declarations if d[2] == "node-0004"]


@pytest.mark.parametrize("seed", SEEDS)
def test_views_converge_after_a_partition_heals(seed):
    sim = Sim(20, seed, faults=Faults(loss=0.02), check=True)
    names = sorted(sim.nodes)
    left, right = names[:10], names[10:]
    sim.run_for(3000)
    sim.partition(left, right)
    until(sim, lambda: all(sim.status(a, b) == "failed" for a in left for b in right), 60_000, every_ms=1000)
    sim.heal()
    took = until(sim, sim.converged, 300_000, every_ms=1000)
    assert took > 0


def test_the_same_seed_replays_the_same_run():
    def run():
        sim = Sim(15, 42, faults=Faults(loss=0.1), check=True)
        sim.run_for(2000)
        sim.kill("node-0003")
        sim.pause("node-0005", 4000)
        sim.run_for(30_000)
        return sim.bytes_udp, sim.datagrams, sim.declarations, sim.failed_at
    assert run() == run()


def test_the_figures_script_at_50_members():
    """What `scripts/simulate gossip` prints, small: every kill detected everywhere and no
    healthy member falsely declared failed on a clean network; bytes stay modest."""
    fig = figures("clean", 50, 5, minutes=2)
    assert fig["kills"] == 3 and fig["undetected"] == 0 and fig["false_declarations"] == 0
    assert fig["detect_p99_s"] < 20 and fig["udp_bytes_per_member_s"] < 2000


@pytest.mark.parametrize("seed", SEEDS)
def test_lifeguard_cuts_false_failures_caused_by_slowed_members(seed):
    """Lifeguard §V in small: slowed members (reading datagrams seconds late) make plain SWIM
    declare healthy members failed; Lifeguard's local health and long first suspicions do not."""
    faults = Faults(slow=0.1, episode_gap_ms=20_000)  # denser episodes than the figures', to fit 3 minutes
    swim = figures("slow-swim", 50, seed, minutes=3, faults=faults)
    lifeguard = figures("slow-lifeguard", 50, seed, minutes=3, faults=faults)
    assert swim["false_about_healthy_per_hour"] > 0 and lifeguard["false_about_healthy_per_hour"] == 0
    assert lifeguard["undetected"] == swim["undetected"] == 0


def test_the_simulators_byte_count_is_the_wire_encodings():
    """The figures' bytes per member come from datagram_size, which counts without encoding."""
    from common import messages as m, wire
    from scripts.sim.gossip import datagram_size

    updates = [["a", "node-0001", 7, "10.0.0.1", 7946, {"role": "agent", "tags": {"k": "é" * 40}}],
               ["s", "node-0002", 70000, "node-0003"], ["d", "node-0004", 2**33, "node-0005"]]
    messages = [m.GossipPing(seq=1, node="node-0009", addr="10.0.0.9", port=7946, updates=updates),
                m.GossipPing(seq=2**40, node="", addr="", port=0),
                m.GossipPingReq(seq=300, node="n" * 40, target_addr="10.0.0.2", target_port=65535,
                                addr="10.0.0.3", port=7946, updates=updates * 6),
                m.GossipAck(seq=70000, updates=updates[:1]), m.GossipNack(seq=5),
                m.GossipBroadcast(updates=updates * 30)]
    for msg in messages:
        for sender in ("node-0001", "ü" * 20):
            assert datagram_size(msg, sender) == len(wire.encode_datagram(msg, sender)), msg


def test_a_datagram_is_sized_when_the_size_cache_is_cleared_while_sizing_it(monkeypatch):
    from common import messages as m, wire
    from scripts.sim import gossip as gossip_sim

    monkeypatch.setattr(gossip_sim, "SIZES_KEPT", 1)
    updates = [["s", f"node-{i}", 1, "node-9"] for i in range(4)]
    for update in updates[::2]:
        gossip_sim.remember_size(update, len(wire.pack(update)))
    msg = m.GossipBroadcast(updates=updates)
    assert gossip_sim.datagram_size(msg, "node-9") == len(wire.encode_datagram(msg, "node-9"))
