"""Scheduling through failover in the deterministic simulator: successive leaders' scheduler
and dispatcher cores over the real state machine, with lost and delayed messages and leaders
dying mid-claim. No tick may run twice, and every tick of the window must run once or be
recorded as skipped. Broken variants show the checks bite."""

import pytest

from scripts.sim.scheduler import Violation, run_seed
from services.dispatcher.core import Dispatcher
from services.executor.core import Waiting
from services.scheduler.core import Scheduler

SEEDS = 30
SECONDS = 60
HUNT_SEEDS = 30


def test_every_tick_runs_once_or_is_recorded_skipped_through_failovers():
    started = 0
    for seed in range(1, SEEDS + 1):
        try:
            sim = run_seed(seed, seconds=SECONDS)
        except Violation as err:
            trace = "\n".join(err.sim.trace[-20:])
            pytest.fail(f"{err}\n{trace}\nreproduce: scripts/simulate scheduler --seed {seed} --seconds {SECONDS}")
        started += len(sim.started)
    assert started > SEEDS * 100  # the runs did real work


class FiresOutOfOrder(Scheduler):
    """Broken: fires every due tick at once, so a later tick can be claimed before an earlier
    one is settled, and a new leader's catch-up starts above a tick nobody claimed."""

    def fire(self, name, now):
        for tick in self.pending[name]:
            self.fires.append((self.jobs[name], tick))
        self.resend_at[name] = now + 3000

    def resolved(self, name, at, now):
        queue = self.pending.get(name)
        if queue and at in queue:
            queue.remove(at)
        if not queue:
            self.pending.pop(name, None)
            self.resend_at.pop(name, None)


class ForgetsUnfinishedRuns(Dispatcher):
    """Broken: a new leader does not take over the runs the old one claimed."""

    def adopt(self, execution, job, now):
        pass


class StartsWhatWaitsAtOnce(Waiting):
    """Broken: once one run waiting on the executor is due, every waiting run starts, so a
    tick claimed ahead (or a jittered run) starts early."""

    def due(self, now):
        due = super().due(now)
        return due + super().due(float("inf")) if due else due


@pytest.mark.parametrize("variant", [
    {"scheduler_class": FiresOutOfOrder},
    {"dispatcher_class": ForgetsUnfinishedRuns},
    {"waiting_class": StartsWhatWaitsAtOnce},
    {"executor_dedupes": False},
], ids=["fires-out-of-order", "forgets-unfinished-runs", "starts-what-waits-at-once", "executor-without-dedupe"])
def test_each_broken_variant_is_caught(variant):
    for seed in range(1, HUNT_SEEDS + 1):
        try:
            run_seed(seed, seconds=SECONDS, **variant)
        except Violation as err:
            print(f"caught at seed {seed}: {err}")
            return
    pytest.fail(f"{variant} survived {HUNT_SEEDS} seeds: the checks are too weak")
