"""The state machine's ledger of runs: claimed ticks (one row per job and scheduled time, the
key that makes a tick run once), executions through claimed → running → finished, ticks
skipped with their reason, and each group's outcome (the last attempt on every node)."""

from __future__ import annotations

import json

from common import models

SKIPPED_ROWS_KEPT = 20  # individual rows for skipped ticks of one batch; the rest are summed up


def failure(code, message):
    return {"error": code, "message": message}


class RunLedger:
    """Mixed into StateMachine: uses its _one/_run SQL helpers, job() and _save_state()."""

    def apply_tick_claim(self, entry_term, job, scheduled_at, group, term, executions, manual=False):
        # A claim made by a leader of an older term may reach the log through a newer leader;
        # only the leader that appended the entry may claim, so a deposed one cannot dispatch.
        if term != entry_term:
            return failure("not_leader", f"claim of term {term} in an entry of term {entry_term}: stale leader")
        stored = self.job(job)
        if stored is None:
            return failure("not_found", f"job {job!r} not found")
        if not manual and self._one("SELECT 1 FROM tickrow WHERE job = ? AND scheduled_at = ?", (job, scheduled_at)):
            return failure("conflict", f"tick {scheduled_at} of {job!r} already claimed")
        running = self.running_ids(job)
        if running and stored["concurrency"] == "forbid":
            reason = f"concurrency forbid: {', '.join(running)} still running"
            skipped = self._skip(stored, [scheduled_at], reason, group=group, manual=manual)
            return {"skipped": reason, "executions": skipped}
        return self._claimed(entry_term, stored, scheduled_at, group, executions, running, tick=not manual)

    def _claimed(self, entry_term, stored, scheduled_at, group, executions, running, tick):
        """A claim taken: a scheduled tick keyed in tickrow, the executions stored."""
        if tick:
            self._run("INSERT INTO tickrow (job, scheduled_at, grp, term) VALUES (?, ?, ?, ?)",
                      (stored["name"], scheduled_at, group, entry_term))
            stored["last_scheduled_at"] = max(stored.get("last_scheduled_at") or 0, scheduled_at)
            self._save_state(stored)
        for execution in executions:
            self._save_execution(execution)
        result = {"executions": executions}
        if running and stored["concurrency"] == "replace":
            result["replace"] = running  # the dispatcher stops these, recorded as killed
        return result

    def apply_tick_skip(self, entry_term, job, ticks, reason):
        """Ticks that will not run (misfire policy, no node), recorded so they are visible."""
        stored = self.job(job)
        if stored is None:
            return failure("not_found", f"job {job!r} not found")
        fresh = [t for t in ticks if not self._one("SELECT 1 FROM tickrow WHERE job = ? AND scheduled_at = ?", (job, t))]
        skipped = self._skip(stored, fresh, reason)
        return {"executions": skipped}

    def apply_exec_ack(self, entry_term, job, id, started_at):
        execution = self.execution(job, id)
        if execution is None:
            return failure("not_found", f"execution {id!r} not found")
        if execution["status"] == "claimed":
            execution.update(status="running", started_at=started_at)
            self._save_execution(execution)
        return {"execution": execution}

    def apply_exec_finish(self, entry_term, execution):
        job, old, execution, answer = self._final(execution)
        if answer is not None:
            return answer
        self._save_execution(execution)
        self._count(job, execution)
        done, status = self.group_outcome(execution["job"], execution["group"])
        if done:
            job["status"] = status
        self._save_state(job)
        self._trim(job)
        return {"execution": execution, "group_done": done, "group_status": status}

    def _final(self, execution):
        """What every final record meets first → (job, the record before, the record to store,
        or the answer when there is nothing to store: the job is gone, or it finished before)."""
        old = self.execution(execution["job"], execution["id"])
        job = self.job(execution["job"])
        if job is None:
            return None, old, execution, failure("not_found", f"job {execution['job']!r} not found")
        late = old is not None and old["status"] == "lost" and execution["status"] != "lost"
        if old is not None and old["status"] in models.FINISHED and not late:
            return job, old, execution, {"execution": old, "duplicate": True}
        if late:
            # The node was presumed gone, then its result arrived: the real outcome wins.
            execution = dict(execution, reason=(execution.get("reason") or "") + " (reported after the run was "
                             f"marked lost: {old['reason']})".strip())
            job["error_count"] -= 1
        return job, old, execution, None

    @staticmethod
    def _count(job, execution):
        if execution["status"] != "skipped":
            ok = execution["success"]
            job["success_count" if ok else "error_count"] += 1
            key = "last_success_at" if ok else "last_error_at"
            job[key] = max(job[key] or 0, execution["finished_at"] or 0)

    def apply_exec_record(self, entry_term, acks=(), finishes=()):
        """A dispatcher round's acks and final records in one entry: a burst of runs costs a
        log entry per round, not two per run (in case a of the schedule benchmark, most of the
        servers' Raft work was the per-entry cost, not the state machine's)."""
        return {"acks": [self.guarded("ack", lambda: self.apply_exec_ack(entry_term, **ack)) for ack in acks],
                "finishes": [self.guarded("execution record", lambda: self.apply_exec_finish(entry_term, execution))
                             for execution in finishes]}

    def apply_exec_delete_all(self, entry_term, job):
        stored = self.job(job)
        if stored is None:
            return failure("not_found", f"job {job!r} not found")
        self._run("DELETE FROM executionrow WHERE job = ?", (job,))
        self._run("DELETE FROM retryrow WHERE job = ?", (job,))  # retries of the history deleted
        stored.update(success_count=0, error_count=0, skipped_count=0, last_success_at=None, last_error_at=None,
                      status="")
        self._save_state(stored)
        return {"job": stored}

    # -- reading ---------------------------------------------------------------------------

    def execution(self, job, execution_id):
        row = self._one("SELECT body FROM executionrow WHERE id = ? AND job = ?", (execution_id, job))
        return json.loads(row[0]) if row else None

    def executions(self, job, limit=models.MAX_HISTORY):
        rows = self.db.execute_sql("SELECT body FROM executionrow WHERE job = ? ORDER BY grp DESC, id DESC LIMIT ?",
                                   (job, limit))
        return [json.loads(r[0]) for r in rows]

    def running_ids(self, job):
        return [r[0] for r in self.db.execute_sql(
            "SELECT id FROM executionrow WHERE job = ? AND status IN ('claimed', 'running') ORDER BY id", (job,))]

    def unfinished(self):
        """Every claimed or running execution with its job: what a new leader takes over."""
        rows = self.db.execute_sql("SELECT body FROM executionrow WHERE status IN ('claimed', 'running') ORDER BY grp")
        found = []
        for (body,) in rows:
            execution = json.loads(body)
            job = self.job(execution["job"])
            if job is not None:
                found.append({"execution": execution, "job": job})
        return found

    def unfinished_page(self, after_group=0, after_id="", max_bytes=1 << 20):
        """(runs, more): unfinished() after (after_group, after_id) in (group, id) order, cut at
        `max_bytes` of stored JSON (a run's and its job's; one run at least)."""
        rows = self.db.execute_sql(
            "SELECT body FROM executionrow WHERE status IN ('claimed', 'running') AND (grp > ? OR grp = ? AND id > ?) "
            "ORDER BY grp, id", (after_group, after_group, after_id))
        found, size, jobs = [], 0, {}
        for (body,) in rows:
            execution = json.loads(body)
            if execution["job"] not in jobs:
                job = self.job(execution["job"])
                jobs[execution["job"]] = job, len(json.dumps(job)) if job is not None else 0
            job, job_size = jobs[execution["job"]]
            size += len(body) + job_size
            if found and size > max_bytes:
                return found, True
            if job is not None:
                found.append({"execution": execution, "job": job})
        return found, False

    def group_outcome(self, job, group):
        """(done, status) of one firing: done when the last attempt on every node finished and
        none will be retried; success when all of those succeeded (earlier attempts may not)."""
        latest = {}
        for (body,) in self.db.execute_sql("SELECT body FROM executionrow WHERE job = ? AND grp = ?", (job, group)):
            ex = json.loads(body)
            if ex["status"] == "skipped" or ex.get("retried_by"):
                continue  # a superseded attempt: its retry (perhaps on another node) decides
            if ex["node"] not in latest or ex["attempt"] > latest[ex["node"]]["attempt"]:
                latest[ex["node"]] = ex
        if not latest or any(ex["status"] in models.RUNNING or ex.get("retrying") for ex in latest.values()):
            return False, ""
        outcomes = {ex["success"] for ex in latest.values()}
        return True, "success" if outcomes == {True} else "failed" if outcomes == {False} else "partially_failed"

    # -- plumbing --------------------------------------------------------------------------

    def _skip(self, job, ticks, reason, group=None, manual=False):
        """Record ticks that will not run, each keyed in tickrow so a later claim of it is
        refused too; rows for the newest few, the first of them counting the rest. A manual
        run that is refused gets one row in its own group."""
        if manual:
            return [self._skipped_row(job, group, None, reason)]
        shown = ticks[-SKIPPED_ROWS_KEPT:]
        hidden = len(ticks) - len(shown)
        for tick in ticks:
            self._run("INSERT OR IGNORE INTO tickrow (job, scheduled_at, grp, term) VALUES (?, ?, ?, 0)",
                      (job["name"], tick, tick * 1_000_000))
        rows = [self._skipped_row(job, tick * 1_000_000, tick, reason + (
            f" (and {hidden} earlier ticks)" if hidden and i == 0 else "")) for i, tick in enumerate(shown)]
        if ticks:
            job["last_scheduled_at"] = max(job.get("last_scheduled_at") or 0, max(ticks))
            self._save_state(job)
        return rows

    def _skipped_row(self, job, group, tick, reason):
        row = dict(models.new_execution(job["name"], "", group=group, scheduled_at=tick),
                   id=models.execution_id(job["name"], group, "skipped"), status="skipped", finished_at=tick, reason=reason)
        self._save_execution(row)
        return row

    def _save_execution(self, execution):
        self._run("INSERT OR REPLACE INTO executionrow (id, job, grp, status, body) VALUES (?, ?, ?, ?, ?)",
                  (execution["id"], execution["job"], execution["group"], execution["status"], json.dumps(execution)))

    def _trim(self, job):
        self._run("DELETE FROM executionrow WHERE id IN (SELECT id FROM executionrow WHERE job = ? "
                  "ORDER BY grp DESC, id DESC LIMIT -1 OFFSET ?)", (job["name"], job.get("history_limit") or 100))

    def _trim_finished(self, job):
        """Protocol 2's trim: finished rows beyond the history limit, never a run still going
        (with skipped rows trimmed too, a burst of them would push a running one out)."""
        self._run("DELETE FROM executionrow WHERE id IN (SELECT id FROM executionrow WHERE job = ? AND status "
                  "NOT IN ('claimed', 'running') ORDER BY grp DESC, id DESC LIMIT -1 OFFSET ?)",
                  (job["name"], job.get("history_limit") or 100))
