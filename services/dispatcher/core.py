"""The dispatcher core, pure: picks target nodes by tags, and walks each execution through
claimed → dispatched → running → finished. A run not acked in time is published again, then
failed with its reason. The shell claims through Raft, publishes, and records what this decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import models

CLAIMED, DISPATCHED, RUNNING = "claimed", "dispatched", "running"


@dataclass
class Run:
    execution: dict
    job: dict
    state: str = CLAIMED
    due_at: int = 0
    publications: int = 0
    last_output: bytes = b""


@dataclass
class Ready:
    publish: list = field(default_factory=list)   # (node, execution, job): run.start on node.<name>
    record: list = field(default_factory=list)    # ("exec.ack", execution) | ("exec.finish", execution)

    def empty(self):
        return not (self.publish or self.record)


def select_targets(job, members, rng):
    """Alive members offering the job's executor whose tags match all of the job's; a tag value
    "v:N" caps the count at N (the smallest N wins). No tags means one node (Dkron runs on all)."""
    wanted, count = {}, None
    for key, value in (job.get("tags") or {}).items():
        value, sep, cap = value.partition(":")
        wanted[key] = value
        if sep:
            limit = int(cap) if cap.isdigit() else 0  # as Dkron: a count that is not a number selects none
            count = limit if count is None else min(count, limit)
    candidates = sorted(
        x["name"] for x in members
        if x["status"] == "alive" and job["executor"] in x.get("executors", [])
        and all(x["tags"].get(k) == v for k, v in wanted.items()))
    if not wanted:
        count = 1
    if count is None or len(candidates) <= count:
        return candidates
    return sorted(rng.sample(candidates, count))


class Dispatcher:
    def __init__(self, node, *, rng, ack_timeout_ms, run_attempts):
        self.node, self.rng = node, rng
        self.ack_timeout_ms, self.run_attempts = ack_timeout_ms, run_attempts
        self.members = []
        self.runs = {}
        self.manual_seq = 0
        self.rd = Ready()

    def plan(self, job, scheduled_at, now, manual=False):
        """The executions of one tick (or manual run), ready to be claimed; [] when no node fits."""
        if manual:
            self.manual_seq = (self.manual_seq + 1) % 1000
            group = now * 1_000_000 + self.manual_seq * 1000
        else:
            group = scheduled_at * 1_000_000
        return [models.new_execution(job["name"], node, group=group, scheduled_at=scheduled_at, manual=manual)
                for node in select_targets(job, self.members, self.rng)]

    def claimed(self, job, executions, now):
        """The claim is committed: publish every run and wait for its ack."""
        for execution in executions:
            run = Run(dict(execution), job)
            self.runs[execution["id"]] = run
            self.publish(run, now)

    def publish(self, run, now):
        run.state, run.due_at = DISPATCHED, now + self.ack_timeout_ms
        run.publications += 1
        self.rd.publish.append((run.execution["node"], run.execution, run.job))

    def acked(self, execution_id, started_at):
        run = self.runs.get(execution_id)
        if run is None or run.state == RUNNING:
            return
        run.state = RUNNING
        run.execution.update(status="running", started_at=started_at)
        self.rd.record.append(("exec.ack", run.execution))

    def output(self, execution_id, data):
        run = self.runs.get(execution_id)
        if run is not None:
            run.last_output = data

    def finished(self, execution):
        """A result from an executor; it is recorded (idempotently) and the run forgotten."""
        self.runs.pop(execution["id"], None)
        self.rd.record.append(("exec.finish", execution))

    def tick(self, now):
        for run in list(self.runs.values()):
            if run.state != DISPATCHED or run.due_at > now:
                continue
            if run.publications < self.run_attempts:
                self.publish(run, now)
            else:
                failed = dict(run.execution, status="failed", success=False, finished_at=now,
                              reason=f"node {run.execution['node']} did not acknowledge the run "
                                     f"after {run.publications} publications")
                self.finished(failed)

    def deadline(self):
        dues = [r.due_at for r in self.runs.values() if r.state == DISPATCHED]
        return min(dues) if dues else None

    def busy(self):
        return [dict(r.execution, output=r.last_output.decode(errors="replace"))
                for r in sorted(self.runs.values(), key=lambda r: r.execution["group"])]

    def ready(self):
        return Ready(publish=list(self.rd.publish), record=list(self.rd.record))

    def advance(self, rd):
        del self.rd.publish[:len(rd.publish)]
        del self.rd.record[:len(rd.record)]
