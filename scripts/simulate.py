"""`scripts/simulate CORE --seed N`: runs a pure core in its deterministic simulator and prints
what it found; on an invariant violation, the rule broken and the trace that led there. The
same seed always replays the same run, so a failing test names the command that reproduces it."""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import sys
from pathlib import Path

from docopt import docopt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.sim import gossip as gossip_sim  # noqa: E402
from scripts.sim import raft as raft_sim  # noqa: E402
from scripts.sim import scheduler as scheduler_sim  # noqa: E402

USAGE = """Usage:
  simulate raft [--seed N] [--seeds K] [--nodes N] [--steps K]
  simulate gossip [--seed N] [--nodes N] [--minutes M] [--only NAMES]
  simulate scheduler [--seed N] [--seeds K] [--jobs J] [--seconds S]

Options:
  --seed N    First seed [default: 1].
  --seeds K   How many consecutive seeds to run [default: 1].
  --nodes N   Cluster size [default: 3].
  --steps K   Steps per seed [default: 1000].
  --minutes M  Simulated minutes per gossip configuration [default: 10].
  --jobs J     Jobs in the scheduler simulation [default: 8].
  --seconds S  Simulated seconds of scheduling before the check [default: 60].
  --only NAMES Gossip configurations to run, comma-separated (clean, loss-lifeguard, loss-swim,
               slow-lifeguard, slow-swim); all of them when not given.
"""


def main(argv=None):
    args = docopt(USAGE, argv=argv)
    if args["gossip"]:
        return gossip(args)
    if args["scheduler"]:
        return scheduler(args)
    seed, count = int(args["--seed"]), int(args["--seeds"])
    nodes, steps = int(args["--nodes"]), int(args["--steps"])
    for s in range(seed, seed + count):
        try:
            sim = raft_sim.run_seed(s, nodes=nodes, steps=steps)
        except raft_sim.Violation as err:
            print("\n".join(err.sim.trace[-80:]))
            print(f"\nseed {s}: VIOLATION {err}")
            print(f"reproduce: scripts/simulate raft --seed {s} --nodes {nodes} --steps {steps}")
            return 1
        print(f"seed {s}: ok  steps={steps} committed={len(sim.committed)} proposed={sim.proposed} "
              f"terms={len(sim.leaders)} simulated={sim.now / 1000:.1f}s")
    return 0


def scheduler(args):
    """Issue 5's exactly-once check, with issue 14's follow-ups: leaders die and come back while
    ticks, retries, dependent runs and run-now requests are claimed and notices delivered."""
    seed, count = int(args["--seed"]), int(args["--seeds"])
    jobs, seconds = int(args["--jobs"]), int(args["--seconds"])
    for s in range(seed, seed + count):
        try:
            sim = scheduler_sim.run_seed(s, seconds=seconds, jobs=jobs)
        except scheduler_sim.Violation as err:
            print("\n".join(err.sim.trace[-40:]))
            print(f"\nseed {s}: VIOLATION {err}")
            print(f"reproduce: scripts/simulate scheduler --seed {s} --jobs {jobs} --seconds {seconds}")
            return 1
        f = sim.followups
        print(f"seed {s}: ok  runs started={len(sim.started)} leaders={sim.term} "
              f"policies={dict(sorted(collections.Counter(sim.policies.values()).items()))} "
              f"retries={len(f.retried)} children={len(f.claimed.get('child', ()))} run-now={len(f.requests)} "
              f"ephemeral deleted={sum(f.deleted.values())} notices={len(f.notices)}")
    return 0


def gossip(args):
    """Issue 4's figures: each configuration on its own simulated cluster, printed as it ends."""
    names = args["--only"].split(",") if args["--only"] else list(gossip_sim.CONFIGS)
    unknown = [n for n in names if n not in gossip_sim.CONFIGS]
    if unknown:
        print(f"unknown configuration {', '.join(unknown)}; one of {', '.join(gossip_sim.CONFIGS)}")
        return 2
    nodes, seed, minutes = int(args["--nodes"]), int(args["--seed"]), float(args["--minutes"])
    print(f"gossip: {nodes} members, {minutes:g} simulated minutes per configuration, one healthy member killed "
          f"every {gossip_sim.KILL_EVERY_MS // 1000} s; memberlist's LAN defaults (conf/node.toml). "
          f"False failures per hour are extrapolated from the {minutes:g}-minute window.", flush=True)
    # Each configuration in a fresh process: its wall time and memory are its own, whatever
    # configurations ran before it.
    fork = multiprocessing.get_context("fork")
    for name in names:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=fork) as pool:
            print(gossip_sim.report(pool.submit(gossip_sim.figures, name, nodes, seed, minutes).result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
