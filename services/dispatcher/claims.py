"""The dispatcher core's claim queue, mixed into Dispatcher (core.py): ticks, manual runs,
retries and dependent jobs' runs wait per job and are claimed through Raft one at a time, each
with its executions on the target nodes its tags select, and each under its idempotency key
(the tick, the run-now request, the failed attempt, the parent's firing), which the state
machine checks: a request sent again, or a second leader, claims nothing more."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from common import errors, messages as m, models
from services.dispatcher.targets import select_targets

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """A tick (or a manual run, a retry, a dependent job's run) waiting its turn to be claimed."""

    job: dict
    scheduled_at: int
    kind: str = "tick"                # tick | manual | retry | child (m.RunClaim)
    reply: object = None              # whom to answer once it is settled (the shell's, opaque here)
    key: str = ""                     # its idempotency key beyond the tick (m.RunClaim)
    execution: dict | None = None     # a retry's next attempt, claimed as it is

    @property
    def manual(self):
        return self.kind != "tick"


class ClaimQueue:
    """Uses the Dispatcher's claims, members, untagged, rng, now, active, term, notify_rules and
    Ready, and its call, answer, dispatch, kill, skipped, take_effects and claim_settled."""

    def enqueue(self, claim):
        queue = self.claims.setdefault(claim.job["name"], collections.deque())
        queue.append(claim)
        if len(queue) == 1:
            self.claim_next(claim.job["name"])

    def claim_next(self, name):
        """Claims of one job are serialized, so a tick is never claimed before an earlier one
        is settled: a new leader's catch-up then starts from the newest claimed tick."""
        queue = self.claims.get(name)
        if not queue:
            self.claims.pop(name, None)
            return
        claim = queue[0]
        executions = [claim.execution] if claim.execution else self.new_executions(claim.job, claim.scheduled_at,
                                                                                   manual=claim.manual)
        if not executions:
            return self.no_target(claim)
        self.call(self.run_claim(claim, executions), "claimed", claim)

    def run_claim(self, claim, executions, reason=""):
        return m.RunClaim(job=claim.job["name"], scheduled_at=claim.scheduled_at,
                          group=executions[0]["group"] if executions else self.new_group(claim),
                          term=self.term, executions=executions, kind=claim.kind, key=claim.key, reason=reason,
                          notify=self.notify_rules)

    def claimed(self, claim, reply, error):
        name = claim.job["name"]
        queue = self.claims.get(name)
        if not queue or queue[0] is not claim:
            return  # leadership was lost (and maybe won again) meanwhile: this claim is stale
        queue.popleft()
        self.claim_settled(claim, error)
        if error is not None:
            log.warning("claim refused job=%s scheduled_at=%d: %s", name, claim.scheduled_at, error)
            self.answer(claim.reply, error)
        else:
            self.take_effects(reply.effects)
            if reply.skipped:
                log.info("run skipped job=%s scheduled_at=%d: %s", name, claim.scheduled_at, reply.skipped)
                if not reply.duplicate:
                    self.skipped(name, reply.executions)
            elif not reply.duplicate:  # a request claimed before: answered, nothing runs again
                self.dispatch(claim.job, reply.executions)
                for victim in reply.replace:
                    self.kill(victim, f"concurrency replace: replaced by the tick at {claim.scheduled_at}")
            self.answer(claim.reply, self.claim_answer(claim, reply.executions, reply.skipped))
        if self.active:
            self.claim_next(name)

    @staticmethod
    def claim_answer(claim, executions, skipped=""):
        if claim.kind == "manual":
            return m.RunStarted(executions=executions, job=claim.job, skipped=skipped)
        return m.Executions(executions=executions, skipped=skipped)

    def no_target(self, claim):
        """No alive node can run it: a tick is recorded skipped, a dependent run too (its key
        taken, so no leader tries it again), a manual run refused."""
        job = claim.job
        reason = f"no alive node offers executor {job['executor']!r} with tags {job['tags'] or {}}"
        log.warning("%s job=%s", reason, job["name"])
        if claim.kind == "child":
            return self.call(self.run_claim(claim, [], reason), "claimed", claim)
        self.claims[job["name"]].popleft()
        if claim.kind == "manual":
            self.answer(claim.reply, errors.Conflict(reason))
        else:
            self.call(m.RunSkip(job=job["name"], ticks=[claim.scheduled_at], reason=reason, notify=self.notify_rules),
                      "skips_recorded", (job["name"], claim.reply))
        self.claim_next(job["name"])

    def skips_recorded(self, context, reply, error):
        name, asked = context
        self.answer(asked, error or m.Executions(executions=reply.executions))
        if error is None:
            self.skipped(name, reply.executions)
            self.take_effects(reply.effects)

    def new_group(self, claim):
        if not claim.manual:
            return claim.scheduled_at * 1_000_000
        self.manual_seq = (self.manual_seq + 1) % 1000
        return self.now * 1_000_000 + self.manual_seq * 1000

    def new_executions(self, job, scheduled_at, manual=False):
        """The executions of one tick (or manual run), ready to be claimed; [] when no node fits."""
        group = self.new_group(Claim(job, scheduled_at, kind="manual" if manual else "tick"))
        jitter = models.duration_ms(job, "jitter")
        delay = self.rng.randrange(jitter) if jitter else 0
        return [dict(models.new_execution(job["name"], node, group=group, scheduled_at=scheduled_at, manual=manual),
                     jitter_ms=delay)
                for node in select_targets(job, self.members, self.rng, self.untagged)]

    def run_now(self, msg, reply):
        """The job is read once; the claim carries the request, which the state machine keeps."""
        self.call(m.JobGet(name=msg.name, stale=True, secrets=True), "run_job", (msg.request, reply))

    def run_job(self, context, reply, error):
        request, asked = context
        if error is not None:
            return self.answer(asked, error)
        self.enqueue(Claim(reply.job, self.now, kind="manual", reply=asked, key=request))
