"""The dispatcher core's claim queue, mixed into Dispatcher (core.py): ticks, manual runs,
retries and dependent jobs' runs wait per job and are claimed through Raft one at a time, each
with its executions on the target nodes its tags select; a firing that is over starts its
dependent jobs and removes an ephemeral job."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from common import errors, messages as m, models
from services.dispatcher.targets import select_targets

log = logging.getLogger(__name__)

MANUAL_RUNS_KEPT = 1000  # run-now requests remembered, so a retried request starts nothing more


@dataclass
class Claim:
    """A tick (or a manual run, a retry, a dependent job's run) waiting its turn to be claimed."""

    job: dict
    scheduled_at: int
    manual: bool = False
    reply: object = None              # whom to answer once it is settled (the shell's, opaque here)
    request: str = ""                 # a client's run-now request: a retry of it starts nothing more
    execution: dict | None = None     # a retry's next attempt, claimed as it is


class ClaimQueue:
    """Uses the Dispatcher's claims, manual_runs, members, untagged, rng, now, active, term and
    Ready, and its call, answer, dispatch, kill and skipped."""

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
        self.call(m.TickClaim(job=name, scheduled_at=claim.scheduled_at, group=executions[0]["group"], term=self.term,
                              executions=executions, manual=claim.manual), "claimed", claim)

    def claimed(self, claim, reply, error):
        name = claim.job["name"]
        queue = self.claims.get(name)
        if not queue or queue[0] is not claim:
            return  # leadership was lost (and maybe won again) meanwhile: this claim is stale
        queue.popleft()
        if error is not None:
            log.warning("claim refused job=%s scheduled_at=%d: %s", name, claim.scheduled_at, error)
            self.answer(claim.reply, error)
        elif reply.skipped:
            log.info("tick skipped job=%s scheduled_at=%d: %s", name, claim.scheduled_at, reply.skipped)
            self.answer(claim.reply, m.Executions(executions=reply.executions, skipped=reply.skipped))
            self.skipped(name, reply.executions)
        else:
            self.dispatch(claim.job, reply.executions)
            for victim in reply.replace:
                self.kill(victim, f"concurrency replace: replaced by the tick at {claim.scheduled_at}")
            if claim.request:
                self.manual_runs[claim.request] = reply.executions
                while len(self.manual_runs) > MANUAL_RUNS_KEPT:
                    self.manual_runs.pop(next(iter(self.manual_runs)))
            self.answer(claim.reply, m.Executions(executions=reply.executions))
        if self.active:
            self.claim_next(name)

    def no_target(self, claim):
        job = claim.job
        reason = f"no alive node offers executor {job['executor']!r} with tags {job['tags'] or {}}"
        log.warning("%s job=%s", reason, job["name"])
        self.claims[job["name"]].popleft()
        if claim.manual:
            self.answer(claim.reply, errors.Conflict(reason))
        else:
            self.call(m.TickSkip(job=job["name"], ticks=[claim.scheduled_at], reason=reason), "skips_recorded",
                      (job["name"], claim.reply))
        self.claim_next(job["name"])

    def skips_recorded(self, context, reply, error):
        name, asked = context
        self.answer(asked, error or reply)
        if error is None:
            self.skipped(name, reply.executions)

    def new_executions(self, job, scheduled_at, manual=False):
        """The executions of one tick (or manual run), ready to be claimed; [] when no node fits."""
        if manual:
            self.manual_seq = (self.manual_seq + 1) % 1000
            group = self.now * 1_000_000 + self.manual_seq * 1000
        else:
            group = scheduled_at * 1_000_000
        jitter = models.duration_ms(job, "jitter")
        delay = self.rng.randrange(jitter) if jitter else 0
        return [dict(models.new_execution(job["name"], node, group=group, scheduled_at=scheduled_at, manual=manual),
                     jitter_ms=delay)
                for node in select_targets(job, self.members, self.rng, self.untagged)]

    def run_now(self, msg, reply):
        if msg.request in self.manual_runs:
            return self.answer(reply, m.Executions(executions=self.manual_runs[msg.request]))
        self.call(m.JobGet(name=msg.name, stale=True), "run_job", (msg.request, reply))

    def run_job(self, context, reply, error):
        request, asked = context
        if error is not None:
            return self.answer(asked, error)
        self.enqueue(Claim(reply.job, self.now, manual=True, reply=asked, request=request))

    def retry(self, job, execution):
        if not self.active:
            return  # the new leader's catch-up and the group's record take it from here
        alive = {x["name"] for x in self.members if x["status"] == "alive"}
        if execution["node"] not in alive:
            others = self.new_executions(job, execution["scheduled_at"], manual=True)
            if others:  # the node is gone: the retry runs elsewhere
                node = others[0]["node"]
                execution = dict(execution, node=node,
                                 id=models.execution_id(job["name"], execution["group"], node, execution["attempt"]))
        log.info("retrying job=%s attempt=%d node=%s", job["name"], execution["attempt"], execution["node"])
        self.enqueue(Claim(job, execution["scheduled_at"], manual=True, execution=execution))

    # -- a firing that is over -------------------------------------------------------------

    def group_done(self, record, status):
        """A firing is over: its notices go out; on success its dependent jobs run, and an
        ephemeral job goes."""
        if self.active:
            self.call(m.JobGet(name=record["job"], stale=True), "group_job", (record, status))

    def group_job(self, context, reply, error):
        if error is not None:
            return
        (record, status), job = context, reply.job
        self.rd.groups.append((job, record, status))
        if status != "success":
            return
        for child in job["dependent_jobs"]:
            self.call(m.JobGet(name=child, stale=True), "run_child", job["name"])
        if job["ephemeral"]:
            log.info("ephemeral job succeeded, removing it job=%s", job["name"])
            self.call(m.JobDelete(name=job["name"]), "deleted", record["id"])

    def run_child(self, parent, reply, error):
        if error is None and not reply.job["disabled"]:
            log.info("running dependent job=%s after parent=%s", reply.job["name"], parent)
            self.enqueue(Claim(reply.job, self.now, manual=True))

    def deleted(self, execution_id, reply, error):
        if error is not None:
            log.warning("recording ephemeral delete failed id=%s: %s", execution_id, error)
