"""The dispatcher core's follow-ups, mixed into Dispatcher (core.py): what the state machine keeps
pending after a run, carried out by whichever leader is in office. A retry that comes due is
claimed under its key (the failed attempt); a firing's effects are carried out: a dependent
job's run claimed under the effect's key, each notification of a notice delivered (sent again
with backoff, then given up), and, once the rest of its firing's follow-ups are done, the
ephemeral delete. A follow-up is marked done in the next run.record, never before it is carried
out, so a leader that dies first leaves it to the next."""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

from common import messages as m, models
from services.dispatcher import notices
from services.dispatcher.claims import Claim

log = logging.getLogger(__name__)

DONE_RECORD_DELAY_MS = 1000    # done-marks wait this long for a round's record to ride in
SWEEP_MS = 5000                # the leader reads what is pending this often: a record's reply
                               # lost (a timeout, though it committed) must not lose its follow-ups
FOLLOWUP_RETRY_MS = 1000       # a claim refused for want of a leader or quorum is tried again
NOTIFY_BACKOFF_MS = 1000       # the wait after a failed delivery, doubled per attempt
NOTIFY_BACKOFF_MAX_MS = 60_000
NOTIFY_ATTEMPTS = 5            # without [notify] settings (the simulator's servers)
SETTLED = ("conflict", "not_found")  # a claim refused for good: claimed before, or its job is gone


@dataclass
class Delivery:
    """One notification of one notice, on its way: sent, waiting to be sent again, or settled."""

    id: str                  # stable across attempts and leaders (notices.delivery_id)
    notice: str              # the notify effect's id
    kind: str                # webhook | email
    payload: dict | None
    what: str                # for logs
    attempts: int = 0
    due_at: int = 0
    sending: bool = False
    outcome: str = ""        # delivered | gave_up
    error: str = ""

    def mark(self):
        return {"id": self.id, "kind": self.kind, "outcome": self.outcome, "attempts": self.attempts,
                "error": self.error}


class FollowUps:
    """Uses the Dispatcher's node, now, active, members, rd, notify settings, enqueue and
    new_executions; keeps retries, effects, deliveries and done-marks."""

    def init_followups(self, notify):
        self.notify = notify
        self.notify_rules = notices.own_rules(notify)
        self.notify_attempts = notify.attempts if notify is not None else NOTIFY_ATTEMPTS
        self.retries = {}        # key (the failed attempt's id) → pending retry, until its claim settles
        self.retry_heap = []     # (due_at, key) of retries, and of dependent runs to claim again
        self.effects = {}        # id → effect pending here
        self.of_job = {}         # job → ids of its pending effects: an ephemeral delete goes last
        self.notices = {}        # notify effect id → its Deliveries
        self.deliveries = {}     # delivery id → Delivery not yet settled
        self.done, self.done_at = [], None
        self.settled = {}        # effect id → when it was settled here: a sweep read before may list it
        self.sweep_at = None

    def forget_followups(self):
        """Leadership lost: what is pending stays in the state for the next leader."""
        self.init_followups(self.notify)

    def take_over_followups(self, retries, effects):
        if not self.active:
            return
        for retry in retries:
            self.pend_retry(retry)
        self.take_effects([e for e in effects if e["id"] not in self.settled])
        self.sweep_at = self.now + SWEEP_MS

    def swept(self, _, reply, error):
        if not self.active:
            return  # out of office since: no more sweeps (a deadline kept would wake it for nothing)
        if error is None:
            horizon = self.now - 2 * SWEEP_MS
            self.settled = {i: at for i, at in self.settled.items() if at > horizon}
            self.take_over_followups(reply.retries, reply.effects)
        else:
            self.sweep_at = self.now + SWEEP_MS

    def followups_deadline(self):
        dues = [self.retry_heap[0][0]] if self.retry_heap else []
        dues += [d.due_at for d in self.deliveries.values() if not d.sending]
        dues += [at for at in (self.done_at, self.sweep_at) if at is not None]
        return min(dues, default=None)

    def tick_followups(self, now):
        if self.sweep_at is not None and now >= self.sweep_at:
            self.sweep_at = None  # again once answered
            self.call(m.ExecUnfinished(followups_only=True), "swept")
        while self.retry_heap and self.retry_heap[0][0] <= now:
            _, key = heapq.heappop(self.retry_heap)
            if key in self.retries:
                self.claim_retry(self.retries[key])
            elif key in self.effects:
                self.claim_child(self.effects[key])  # its claim was refused for want of a leader
        for delivery in self.deliveries.values():
            if not delivery.sending and delivery.due_at <= now:
                delivery.sending, delivery.attempts = True, delivery.attempts + 1
                self.rd.sends.append(delivery)

    # -- retries -------------------------------------------------------------------------------

    def pend_retry(self, retry):
        if not self.active or retry["key"] in self.retries or retry.get("job") is None:
            return  # a dispatcher that takes office takes over what is pending then
        self.retries[retry["key"]] = retry
        heapq.heappush(self.retry_heap, (retry["due_at"], retry["key"]))

    def claim_retry(self, retry):
        """The next attempt, on the failed one's node, or on another when that node is gone."""
        job, execution = retry["job"], retry["execution"]
        alive = {x["name"] for x in self.members if x["status"] == "alive"}
        if execution["node"] not in alive:
            others = self.new_executions(job, execution["scheduled_at"], manual=True)
            if others:
                node = others[0]["node"]
                execution = dict(execution, node=node,
                                 id=models.execution_id(job["name"], execution["group"], node, execution["attempt"]))
        log.info("retrying job=%s attempt=%d node=%s", job["name"], execution["attempt"], execution["node"])
        self.enqueue(Claim(job, execution["scheduled_at"], kind="retry", key=retry["key"], execution=execution))

    # -- effects -------------------------------------------------------------------------------

    def take_effects(self, effects):
        if not self.active:
            return  # a skip recorded by a follower's dispatcher: the leader's takes its notice over
        fresh = [e for e in effects if e["id"] not in self.effects]
        for effect in fresh:  # all known before any is carried out: the delete waits for the others
            self.effects[effect["id"]] = effect
            self.of_job.setdefault(effect["job"], set()).add(effect["id"])
        for effect in fresh:
            if effect["kind"] == "child":
                self.claim_child(effect)
            elif effect["kind"] == "notify":
                self.deliver(effect)
            else:
                self.maybe_delete(effect["job"])

    def claim_child(self, effect):
        child = effect["target"]
        if child is None:
            return self.mark(effect["id"])  # deleted meanwhile: nothing to run
        log.info("running dependent job=%s after parent=%s", child["name"], effect["job"])
        self.enqueue(Claim(child, self.now, kind="child", key=effect["id"]))

    def claim_settled(self, claim, error):
        """A retry's or a dependent run's claim answered: committed or refused for good, it is
        no longer pending here; refused for want of a leader, it is tried again."""
        if error is not None and error.code not in SETTLED:
            if claim.key in self.retries or claim.key in self.effects:
                heapq.heappush(self.retry_heap, (self.now + FOLLOWUP_RETRY_MS, claim.key))
            return
        if claim.kind == "retry":
            self.retries.pop(claim.key, None)
        elif claim.kind == "child":
            self.settle(claim.key)  # the claim took the effect in the state: no done-mark

    def mark(self, effect_id, deliveries=()):
        """Carried out: marked done in the next record (before a delete it lets go)."""
        if effect_id in self.effects:
            self.done.append({"id": effect_id, "deliveries": list(deliveries)})
            if self.done_at is None:
                self.done_at = self.now + DONE_RECORD_DELAY_MS
            self.settle(effect_id)

    def settle(self, effect_id):
        effect = self.effects.pop(effect_id, None)
        if effect is None:
            return False
        self.settled[effect_id] = self.now
        job = effect["job"]
        self.of_job[job].discard(effect_id)
        if not self.of_job[job]:
            del self.of_job[job]
        self.maybe_delete(job)
        return True

    def maybe_delete(self, job):
        """An ephemeral job goes once the rest of its follow-ups are done (of every firing: runs
        may overlap): deleting it drops what is still pending on it, its notices."""
        left = self.of_job.get(job, ())
        if left and all(self.effects[i]["kind"] == "delete" for i in left):
            log.info("ephemeral job succeeded, removing it job=%s", job)
            self.mark(min(left))  # the others (of firings that overlapped) follow as it settles

    def records_failed(self, done):
        """The record carrying these done-marks failed: they ride in the next one."""
        if self.active:
            self.done = done + self.done
            self.done_at = self.now + FOLLOWUP_RETRY_MS if self.done_at is None else self.done_at

    def take_done(self, force):
        """The done-marks for this round's record: with its acks and results, or alone once
        they have waited long enough."""
        if not self.done or not (force or self.now >= self.done_at):
            return []
        done, self.done, self.done_at = self.done, [], None
        return done

    # -- notices -------------------------------------------------------------------------------

    def deliver(self, effect):
        notice = dict(effect["body"], id=effect["id"])
        payloads, problems = notices.deliveries(notice, self.notify, self.node) if self.notify else ([], [])
        event = notice["event"]
        found = [Delivery(p["delivery"], effect["id"], p["kind"], p, f"job={effect['job']} event={event} "
                          f"{notices.target(p)}", due_at=self.now) for p in payloads]
        for delivery, kind, why in problems:
            log.warning("notification not sent job=%s event=%s: %s", effect["job"], event, why)
            found.append(Delivery(delivery, effect["id"], kind, None, why, outcome="gave_up", error=why))
        self.notices[effect["id"]] = found
        self.deliveries.update((d.id, d) for d in found if not d.outcome)
        self.maybe_noticed(effect["id"])

    def sent(self, delivery_id, error, now):
        """A delivery's outcome from the shell: error None when the receiver took it."""
        self.now = now
        delivery = self.deliveries.get(delivery_id)
        if delivery is None or not delivery.sending:
            return  # sent by this node before a change of leadership: the new round sends it again
        delivery.sending = False
        if error is None:
            delivery.outcome, delivery.error = "delivered", ""
        elif delivery.attempts >= self.notify_attempts:
            log.warning("notification given up after %d attempts %s: %s", delivery.attempts, delivery.what, error)
            delivery.outcome, delivery.error = "gave_up", error
        else:
            delivery.error = error
            delivery.due_at = now + min(NOTIFY_BACKOFF_MS << (delivery.attempts - 1), NOTIFY_BACKOFF_MAX_MS)
            return
        del self.deliveries[delivery_id]
        self.maybe_noticed(delivery.notice)

    def maybe_noticed(self, notice_id):
        found = self.notices.get(notice_id)
        if found is not None and all(d.outcome for d in found):
            del self.notices[notice_id]
            self.mark(notice_id, [d.mark() for d in found])
