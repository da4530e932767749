"""The run ledger of protocol 2, mixed into the state machine: every claim under an idempotency
key, a failed attempt's pending retry with its due time, and a firing's follow-ups (effects: a
dependent job's run, the ephemeral delete, notices) kept until a dispatcher carries them out;
skipped rows and claimed ticks kept within the job's bounds. Deterministic: every due time comes
from the times an entry carries, never from a clock."""

from __future__ import annotations

import json

from common import models
from services.raft.runs import SKIPPED_ROWS_KEPT, failure

KINDS = ("tick", "manual", "retry", "child")
REQUESTS_KEPT = 10_000   # run-now requests remembered: one sent again within these runs once
MIN_WINDOW_MS = 1000     # as the scheduler's grace: a tick this close behind the newest is on time
# What a dispatcher's record may not decide: the state machine sets these on an execution.
DECIDED_HERE = ("retrying", "retry_at", "retried_by", "notified")


class FollowUps:
    """Mixed into StateMachine: uses its SQL helpers, job(), _save_state(), apply_job_delete()
    and the RunLedger's rows, runs and group outcomes."""

    entry_index = 0  # the index of the entry being applied (run-now requests are trimmed by it)

    # -- claims --------------------------------------------------------------------------------

    def apply_run_claim(self, entry_term, job, scheduled_at, group, term, executions, kind="tick", key="",
                        reason="", notify=()):
        if term != entry_term:
            return failure("not_leader", f"claim of term {term} in an entry of term {entry_term}: stale leader")
        if kind not in KINDS:
            return failure("bad_request", f"run.claim: kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "manual" and key:
            seen = self._one("SELECT result FROM requestrow WHERE key = ?", (key,))
            if seen is not None:
                return dict(json.loads(seen[0]), duplicate=True)
        if kind == "child" and not self._take_effect(key):
            return failure("conflict", f"dependent run {key!r} already claimed (or its job was deleted)")
        stored = self.job(job)
        if stored is None:
            return failure("not_found", f"job {job!r} not found")
        if kind == "retry":
            return self._claim_retry(stored, key, executions)
        if kind == "tick":
            refused = self._tick_refusal(stored, scheduled_at)
            if refused:
                return refused
        if kind == "child" and stored["disabled"]:
            return {"executions": [], "skipped": f"job {job!r} is disabled"}
        running = self.running_ids(job)
        if not executions or running and stored["concurrency"] == "forbid":
            reason = reason if not executions else f"concurrency forbid: {', '.join(running)} still running"
            if kind == "tick":
                result = self._skip_ticks(stored, [scheduled_at], reason, notify)
            else:
                result = self._skip_run(stored, group, reason, notify)
            return self._remember_request(kind, key, job, dict(result, skipped=reason))
        result = self._claimed(entry_term, stored, scheduled_at, group, executions, running, tick=kind == "tick")
        if kind == "tick":
            self._trim_ticks(stored)
        return self._remember_request(kind, key, job, result)

    def apply_run_skip(self, entry_term, job, ticks, reason, notify=()):
        """Ticks that will not run (misfire policy, no node), recorded so they are visible."""
        stored = self.job(job)
        if stored is None:
            return failure("not_found", f"job {job!r} not found")
        return self._skip_ticks(stored, ticks, reason, notify)

    def _tick_refusal(self, job, at):
        if at < self._tick_floor(job):
            return failure("conflict", f"tick {models.rfc3339(at)} of {job['name']!r} is older than its catch-up "
                                       f"window ({job['catchup_window']}) behind its newest tick: not claimed")
        if self._one("SELECT 1 FROM tickrow WHERE job = ? AND scheduled_at = ?", (job["name"], at)):
            return failure("conflict", f"tick {at} of {job['name']!r} already claimed")
        return None

    def _claim_retry(self, job, key, executions):
        """The next attempt of a failed one, once: the pending retry (keyed by the failed
        attempt) is taken by the claim. No concurrency check: it is the same firing."""
        if not self._one("SELECT 1 FROM retryrow WHERE id = ?", (key,)):
            return failure("conflict", f"retry after {key!r} already claimed (or its history was deleted)")
        self._run("DELETE FROM retryrow WHERE id = ?", (key,))
        failed = self.execution(job["name"], key)
        if failed is not None:
            # Superseded: the group's outcome is the retry's, wherever it runs.
            failed.pop("retrying", None)
            failed.pop("retry_at", None)
            failed["retried_by"] = executions[0]["id"]
            self._save_execution(failed)
        for execution in executions:
            self._save_execution(execution)
        return {"executions": executions}

    def _remember_request(self, kind, key, job, result):
        if kind == "manual" and key:
            self._run("INSERT INTO requestrow (key, job, result, applied) VALUES (?, ?, ?, ?)",
                      (key, job, json.dumps({k: v for k, v in result.items() if k != "effects"}), self.entry_index))
        return result

    # -- records -------------------------------------------------------------------------------

    def apply_run_record(self, entry_term, acks=(), finishes=(), done=(), notify=()):
        """Follow-ups carried out since the last record, then the round's acks and final
        records, each as alone, with what the dispatcher needs next in its result."""
        for mark in done:
            self.guarded("done mark", lambda: self._carried_out(entry_term, mark))
        return {"acks": [self.guarded("ack", lambda: self.apply_exec_ack(entry_term, **ack)) for ack in acks],
                "finishes": [self.guarded("execution record", lambda: self._finish(execution, notify))
                             for execution in finishes]}

    def _finish(self, execution, notify):
        job, old, execution, answer = self._final({k: v for k, v in execution.items() if k not in DECIDED_HERE})
        if answer is not None:
            return answer
        retry, before = None, None
        if old is not None and old["status"] == "lost":
            # Late: a success needs no retry (one already claimed runs, and decides the firing);
            # the firing may have ended already, and only a changed outcome follows up again.
            before = self.group_outcome(execution["job"], execution["group"])
            execution.update({k: old[k] for k in ("retried_by", "retrying", "retry_at") if k in old})
            if execution["success"] and execution.pop("retrying", None):
                execution.pop("retry_at", None)
                self._run("DELETE FROM retryrow WHERE id = ?", (execution["id"],))
        elif execution["status"] in ("failed", "lost") and not execution["success"] \
                and execution["attempt"] <= job.get("retries", 0):
            retry = self._pend_retry(job, execution)
        self._save_execution(execution)
        self._count(job, execution)
        if execution["status"] == "skipped":
            job["skipped_count"] = job.get("skipped_count", 0) + 1
        previous = job.get("status", "")
        done, status = self.group_outcome(execution["job"], execution["group"])
        effects = []
        if done:
            job["status"] = status
            if before != (True, status):
                effects = self._firing_effects(job, execution, status, previous, notify)
        self._save_state(job)
        self._trim_finished(job)
        return {"execution": execution, "group_done": done, "group_status": status, "previous_status": previous,
                "retry": retry, "effects": effects}

    def _pend_retry(self, job, execution):
        """The next attempt, due a backoff after this one ended (its own finish time, from the
        entry), kept until a dispatcher claims it."""
        ended = execution.get("finished_at") or execution.get("started_at") or execution["scheduled_at"] or 0
        due = ended + models.retry_delay_ms(job, execution["attempt"])
        nxt = dict(models.new_execution(job["name"], execution["node"], group=execution["group"],
                                        scheduled_at=execution["scheduled_at"], attempt=execution["attempt"] + 1,
                                        manual=execution.get("manual", False)), jitter_ms=0)
        execution.update(retrying=True, retry_at=due)
        self._run("INSERT OR REPLACE INTO retryrow (id, job, grp, due_at, body) VALUES (?, ?, ?, ?, ?)",
                  (execution["id"], job["name"], execution["group"], due, json.dumps(nxt)))
        return {"key": execution["id"], "due_at": due, "execution": nxt, "job": job}

    # -- effects -------------------------------------------------------------------------------

    def _firing_effects(self, job, record, status, previous, notify):
        """What must follow a firing that ended: on success its dependent jobs' runs and an
        ephemeral job's delete; a notice when a notification hears its event."""
        name, group, effects = job["name"], record["group"], []
        if status == "success":
            for child in job["dependent_jobs"]:
                effects.append(self._add_effect(f"child:{name}:{group}:{child}", name, group, "child", child,
                                                {"parent": name}))
            if job["ephemeral"]:
                effects.append(self._add_effect(f"delete:{name}:{group}", name, group, "delete", name, {}))
        notice = self._notice(job, record, status, models.notify_event(status, previous), notify)
        return effects + notice

    def _notice(self, job, record, status, event, notify, count=1):
        """A notice effect when any notification (the leader's own rules, or the job's) hears the
        event; it carries the job and the record as they were, so that a later edit or delete
        of either does not change what is sent."""
        if not models.rules_hear([*notify, *(n["rule"] for n in job.get("notifications") or [])], event):
            return []
        body = {"event": event, "status": status, "count": count, "record": record, "job": job}
        return [self._add_effect(f"notify:{job['name']}:{record['group']}:{event}", job["name"], record["group"],
                                 "notify", job["name"], body)]

    def _add_effect(self, effect_id, job, group, kind, target, body):
        self._run("INSERT OR IGNORE INTO effectrow (id, job, grp, kind, target, body) VALUES (?, ?, ?, ?, ?, ?)",
                  (effect_id, job, group, kind, target, json.dumps(body)))
        return self._effect_item(effect_id, job, group, kind, target, body)

    def _effect_item(self, effect_id, job, group, kind, target, body):
        """An effect as a dispatcher gets it; a dependent run's with the child job to claim for."""
        return {"id": effect_id, "kind": kind, "job": job, "group": group, "body": body,
                "target": self.job(target) if kind == "child" else None}

    def _take_effect(self, effect_id):
        if not self._one("SELECT 1 FROM effectrow WHERE id = ?", (effect_id,)):
            return False
        self._run("DELETE FROM effectrow WHERE id = ?", (effect_id,))
        return True

    def _carried_out(self, entry_term, mark):
        """A follow-up the dispatcher carried out: gone from the pending ones; the ephemeral job
        deleted, or each delivery of a notice recorded on the record it tells of."""
        row = self._one("SELECT kind, target, body FROM effectrow WHERE id = ?", (mark["id"],))
        if row is None:
            return  # marked before, or its job was deleted meanwhile
        kind, target, body = row[0], row[1], json.loads(row[2])
        self._run("DELETE FROM effectrow WHERE id = ?", (mark["id"],))
        if kind == "delete":
            self.apply_job_delete(entry_term, target)  # refused (dependents, gone) is as good as done
        elif kind == "notify" and mark.get("deliveries"):
            record = self.execution(target, body["record"]["id"])
            if record is not None:
                record["notified"] = record.get("notified", []) + mark["deliveries"]
                self._save_execution(record)

    def pending(self):
        """Retries and follow-ups a new leader takes over."""
        retries = [{"key": key, "due_at": due, "execution": json.loads(body), "job": self.job(job)}
                   for key, job, due, body in self.db.execute_sql(
                       "SELECT id, job, due_at, body FROM retryrow ORDER BY due_at")]
        effects = [self._effect_item(i, job, group, kind, target, json.loads(body))
                   for i, job, group, kind, target, body in self.db.execute_sql(
                       "SELECT id, job, grp, kind, target, body FROM effectrow ORDER BY grp, id")]
        return {"retries": [r for r in retries if r["job"] is not None], "effects": effects}

    def forget_followups(self, name):
        """A job deleted: its pending retries, follow-ups on it and run-now requests go too."""
        self._run("DELETE FROM retryrow WHERE job = ?", (name,))
        self._run("DELETE FROM effectrow WHERE target = ?", (name,))
        self._run("DELETE FROM requestrow WHERE job = ?", (name,))

    # -- bounds --------------------------------------------------------------------------------

    def _skip_ticks(self, job, ticks, reason, notify):
        """Ticks that will not run, counted, each keyed in tickrow (within the catch-up window)
        so that a later claim of it is refused; rows for the newest few, the first of them
        naming the rest, within the job's history limit."""
        floor = self._tick_floor(job)
        fresh = [t for t in ticks if t >= floor and not self._one(
            "SELECT 1 FROM tickrow WHERE job = ? AND scheduled_at = ?", (job["name"], t))]
        if not fresh:
            return {"executions": [], "effects": []}
        shown, hidden = fresh[-SKIPPED_ROWS_KEPT:], len(fresh) - min(len(fresh), SKIPPED_ROWS_KEPT)
        for tick in fresh:
            self._run("INSERT OR IGNORE INTO tickrow (job, scheduled_at, grp, term) VALUES (?, ?, ?, 0)",
                      (job["name"], tick, tick * 1_000_000))
        rows = [self._skipped_row(job, tick * 1_000_000, tick, reason + (
            f" (and {hidden} earlier ticks)" if hidden and i == 0 else "")) for i, tick in enumerate(shown)]
        job["last_scheduled_at"] = max(job.get("last_scheduled_at") or 0, max(fresh))
        return self._skipped(job, rows, len(fresh), notify)

    def _skip_run(self, job, group, reason, notify):
        """A run that will not go (a manual or dependent run under forbid, or with no node)."""
        return self._skipped(job, [self._skipped_row(job, group, None, reason)], 1, notify)

    def _skipped(self, job, rows, count, notify):
        job["skipped_count"] = job.get("skipped_count", 0) + count
        self._save_state(job)
        self._trim_finished(job)
        self._trim_ticks(job)
        return {"executions": rows, "effects": self._notice(job, rows[0], "skipped", "skipped", notify, count)}

    def _tick_floor(self, job):
        """Ticks older than this, behind the newest tick settled by the catch-up window, are not
        kept: the scheduler never fires them, and a claim of one is refused."""
        window = max(models.duration_ms(job, "catchup_window"), MIN_WINDOW_MS)
        return (job.get("last_scheduled_at") or 0) - window

    def _trim_ticks(self, job):
        self._run("DELETE FROM tickrow WHERE job = ? AND scheduled_at < ?", (job["name"], self._tick_floor(job)))

    def trim_requests(self):
        cutoff = self._one("SELECT applied FROM requestrow ORDER BY applied DESC LIMIT 1 OFFSET ?", (REQUESTS_KEPT,))
        if cutoff is not None:
            self._run("DELETE FROM requestrow WHERE applied <= ?", (cutoff[0],))
