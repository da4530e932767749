"""Scheduling through failover in the deterministic simulator, which drives the shipped
scheduler, dispatcher and executor cores with their own carry_out orders over the real state
machine, with lost, duplicated and reordered messages, leaders dying mid-claim and executors
crashing. No tick may run twice or early, and every tick of the window must run once or be
recorded as skipped; each due retry is attempted once, each successful parent firing runs its
child once, each ephemeral job that succeeds is deleted once, each run-now request runs once,
and each notice is delivered at least once, always with one id (scripts/sim/followups.py).
Broken variants of the real cores show the checks bite."""

import dataclasses

import pytest

from common import messages as m
from scripts.sim.scheduler import Violation, run_seed
from services.dispatcher.claims import Claim
from services.dispatcher.core import Dispatcher
from services.executor.core import Executor, carry_out
from services.executor.waiting import Waiting
from services.scheduler.core import Scheduler

SEEDS = 120
SECONDS = 45
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


class PublishesOnce(Dispatcher):
    """Broken: a run goes out at its claim and never again, so a run.start lost on the way
    loses the run."""

    def publish(self, run, now):
        again = run.publications > 0
        super().publish(run, now)
        if again:
            self.outgoing.remove(run)


class ConfirmsBeforeRecording(Dispatcher):
    """Broken: an executor's result is confirmed when it arrives, not once Raft has recorded
    it; a leader that dies in between loses it, and the executor no longer sends it."""

    def step(self, msg, now, reply=None):
        if isinstance(msg, m.ExecResult) and self.active:
            self.answer(reply, m.ResultRecorded(id=msg.execution["id"]))
            reply = None
        return super().step(msg, now, reply)


class KeepsRetriesInMemory(Dispatcher):
    """Broken: a retry lives only in the memory of the leader that heard of it; a new leader
    does not take over the pending retries the state reports."""

    def take_over_followups(self, retries, effects):
        super().take_over_followups([], effects)


class MarksNoticesDoneWhenSent(Dispatcher):
    """Broken: a notice is marked delivered as its deliveries go out, not once the receiver took
    them; a leader that dies while the receiver is down loses it."""

    def deliver(self, effect):
        super().deliver(effect)
        sent = self.notices.pop(effect["id"], [])
        self.mark(effect["id"], [dict(d.mark(), outcome="delivered") for d in sent])


class ClaimsChildrenWithoutKey(Dispatcher):
    """Broken: a dependent job's run is claimed as a plain manual run, without the effect's key,
    so the state cannot take the effect: the next leader runs the child again."""

    def claim_child(self, effect):
        if effect["target"] is not None:
            self.enqueue(Claim(effect["target"], self.now, kind="manual"))


class DedupesRunNowInMemory(Dispatcher):
    """Broken: a run-now request is remembered by the leader that claimed it (as before issue
    14), not by the state: sent again to the next leader, it runs again."""

    def run_job(self, context, reply, error):
        request, asked = context
        seen = self.__dict__.setdefault("requests", set())
        if request in seen:
            return self.answer(asked, m.RunStarted(executions=[]))
        seen.add(request)
        super().run_job(("", asked), reply, error)


class StartsWhatWaitsAtOnce(Waiting):
    """Broken: once one run waiting on the executor is due, every waiting run starts, so a
    tick claimed ahead (or a jittered run) starts early."""

    def due(self, now):
        due = super().due(now)
        return due + super().due(float("inf")) if due else due


class ForgetsStartedIds(Executor):
    """Broken: the executor takes every run.start for a new run (no dedupe by id)."""

    def start(self, execution, job):
        self.started.discard(execution["id"])
        super().start(execution, job)


class DropsUnconfirmedResults(Executor):
    """Broken: a result that was not confirmed (lost, refused, timed out) is not sent again."""

    def result_failed(self, execution_id):
        super().result_failed(execution_id)
        self.journal.unconfirmed.pop(execution_id, None)


def launches_before_storing(rd, *, launch, **effects):
    """Broken carry_out order: runs start before their ids are durable, so an executor that
    dies before its commit starts the run again when it is sent again."""
    for run in rd.launches:
        launch(run)
    carry_out(dataclasses.replace(rd, launches=[]), launch=launch, **effects)


@pytest.mark.parametrize("variant", [
    {"scheduler_class": FiresOutOfOrder},
    {"dispatcher_class": ForgetsUnfinishedRuns},
    {"dispatcher_class": PublishesOnce},
    {"dispatcher_class": ConfirmsBeforeRecording},
    {"waiting_class": StartsWhatWaitsAtOnce},
    {"executor_class": ForgetsStartedIds},
    {"executor_class": DropsUnconfirmedResults},
    {"executor_carry_out": launches_before_storing},
    {"dispatcher_class": KeepsRetriesInMemory},
    {"dispatcher_class": MarksNoticesDoneWhenSent},
    {"dispatcher_class": ClaimsChildrenWithoutKey},
    {"dispatcher_class": DedupesRunNowInMemory},
], ids=["fires-out-of-order", "forgets-unfinished-runs", "publishes-once", "confirms-before-recording",
        "starts-what-waits-at-once", "executor-without-dedupe", "drops-unconfirmed-results",
        "launches-before-storing", "retries-only-in-memory", "notices-done-when-sent",
        "children-claimed-without-key", "run-now-deduplicated-in-memory"])
def test_each_broken_variant_is_caught(variant):
    for seed in range(1, HUNT_SEEDS + 1):
        try:
            run_seed(seed, seconds=SECONDS, **variant)
        except Violation as err:
            print(f"caught at seed {seed}: {err}")
            return
    pytest.fail(f"{variant} survived {HUNT_SEEDS} seeds: the checks are too weak")
