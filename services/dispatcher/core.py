"""The dispatcher core, pure: picks target nodes by tags, and walks each execution through
claimed → dispatched → running → finished. A run is published once claimed, with its start
time (tick plus jitter), which its executor waits for; it is published again when no ack came
by then, then failed with its reason; a running one whose heartbeats stop for the lease is
lost; a failed one is retried after its backoff. Time and randomness come in; the shell
claims through Raft, publishes, and records what this decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import models

CLAIMED, DISPATCHED, RUNNING = "claimed", "dispatched", "running"
# An ack is recorded in Raft this long after it came, unless the run's result came first: a
# short run is then recorded once, by its result (which carries its start), not twice. A new
# leader finds such a run claimed and publishes it again; its executor starts nothing new.
ACK_RECORD_DELAY_MS = 1000


@dataclass
class Run:
    execution: dict
    job: dict
    state: str = CLAIMED
    due_at: int = 0          # when to publish again (start time + ack timeout), then the lease end
    publications: int = 0
    last_output: bytes = b""
    ack_record_at: int | None = None  # when its ack goes to Raft, if its result has not come by then


@dataclass
class Ready:
    publish: list = field(default_factory=list)  # (executions, job, topic): run.start
    kill: list = field(default_factory=list)     # (execution, reason): run.kill on its node
    record: list = field(default_factory=list)   # ("exec.ack" | "exec.finish", execution)
    retry: list = field(default_factory=list)    # (job, execution of the next attempt) to claim

    def empty(self):
        return not (self.publish or self.kill or self.record or self.retry)


def select_targets(job, members, rng, untagged="one"):
    """Alive members offering the job's executor whose tags match all of the job's; a tag value
    "v:N" caps the count at N (the smallest N wins). No tags: one node (Dkron: every node),
    unless the cluster setting untagged_jobs is "all"."""
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
    if not wanted and untagged != "all":
        count = 1
    if count is None or len(candidates) <= count:
        return candidates
    return sorted(rng.sample(candidates, count))


def tag_topic(job):
    """A job that runs on every node with one tag goes out once, on that tag's topic."""
    tags = job.get("tags") or {}
    if len(tags) == 1:
        (key, value), = tags.items()
        if ":" not in value:
            return f"{key}={value}"
    return None


def frames(runs):
    """Runs of one job go out in one frame on a tag topic when they can, else one per node."""
    by_job, out = {}, []
    for run in runs:
        by_job.setdefault(run.job["name"], []).append(run)
    for runs in by_job.values():
        job, topic = runs[0].job, tag_topic(runs[0].job)
        if topic and len(runs) > 1:
            out.append(([r.execution for r in runs], job, ("tag", topic)))
        else:
            out.extend(([r.execution], job, ("node", r.execution["node"])) for r in runs)
    return out


def split_records(records):
    """A Ready's records as one exec.record entry takes them: ({job, id, started_at} per ack,
    the final execution records)."""
    acks = [{"job": x["job"], "id": x["id"], "started_at": x["started_at"]} for kind, x in records if kind == "exec.ack"]
    return acks, [x for kind, x in records if kind == "exec.finish"]


class Dispatcher:
    def __init__(self, node, *, rng, ack_timeout_ms, run_attempts, lease_ms):
        self.node, self.rng = node, rng
        self.ack_timeout_ms, self.run_attempts, self.lease_ms = ack_timeout_ms, run_attempts, lease_ms
        self.members = []
        self.untagged = "one"
        self.runs = {}
        self.manual_seq = 0
        self.outgoing = []  # runs to publish, grouped by job when the Ready is made
        self.rd = Ready()

    # -- planning and claims ---------------------------------------------------------------

    def plan(self, job, scheduled_at, now, manual=False):
        """The executions of one tick (or manual run), ready to be claimed; [] when no node fits."""
        if manual:
            self.manual_seq = (self.manual_seq + 1) % 1000
            group = now * 1_000_000 + self.manual_seq * 1000
        else:
            group = scheduled_at * 1_000_000
        jitter = models.duration_ms(job, "jitter")
        delay = self.rng.randrange(jitter) if jitter else 0
        return [dict(models.new_execution(job["name"], node, group=group, scheduled_at=scheduled_at, manual=manual),
                     jitter_ms=delay)
                for node in select_targets(job, self.members, self.rng, self.untagged)]

    def claimed(self, job, executions, now):
        """The claim is committed: its runs are published now, even those claimed ahead of
        their time or jittered. Each executor starts its run at the start time on its own
        clock (and in a burst forks the child before it), so the tick is not followed by a
        publication, a transport and a dispatcher's busy round before the start."""
        for execution in executions:
            run = Run(dict(execution), job)
            self.runs[execution["id"]] = run
            self.publish(run, now)

    def adopt(self, execution, job, now):
        """A run found unfinished by a new leader: sent again with the same id (the executor
        starts nothing twice), or, already running, watched with a fresh lease."""
        if execution["id"] in self.runs:
            return
        run = Run(dict(execution), job)
        self.runs[execution["id"]] = run
        if execution["status"] == "running":
            run.state, run.due_at = RUNNING, now + self.lease_ms
        else:
            self.publish(run, now)

    def publish(self, run, now):
        """Out now; no ack by the start time plus the ack timeout, and it goes out again."""
        run.state, run.due_at = DISPATCHED, max(now, models.start_time(run.execution)) + self.ack_timeout_ms
        run.publications += 1
        self.outgoing.append(run)

    def flush(self):
        self.rd.publish += frames(self.outgoing)
        self.outgoing = []

    # -- what executors say ----------------------------------------------------------------

    def acked(self, execution_id, started_at, now):
        run = self.runs.get(execution_id)
        if run is None or run.state == RUNNING:
            return
        run.state, run.due_at = RUNNING, now + self.lease_ms
        run.execution.update(status="running", started_at=started_at)
        run.ack_record_at = now + ACK_RECORD_DELAY_MS

    def heard(self, execution_ids, now):
        """A heartbeat: these runs are alive; their lease starts again."""
        for execution_id in execution_ids:
            run = self.runs.get(execution_id)
            if run is not None and run.state == RUNNING:
                run.due_at = now + self.lease_ms

    def output(self, execution_id, data):
        run = self.runs.get(execution_id)
        if run is not None:
            run.last_output = data

    def finished(self, execution, now):
        """A result (from an executor, or decided here): retried if it failed and attempts
        remain, then recorded, idempotently, and the run forgotten."""
        run = self.runs.pop(execution["id"], None)
        job = run.job if run else None
        record = dict(execution)
        if job and not record["success"] and record["status"] in ("failed", "lost") \
                and record["attempt"] <= job.get("retries", 0):
            record["retrying"] = True
            delay = models.duration_ms(job, "retry_interval") * 2 ** (record["attempt"] - 1)
            nxt = models.new_execution(job["name"], record["node"], group=record["group"],
                                       scheduled_at=record["scheduled_at"], attempt=record["attempt"] + 1,
                                       manual=record.get("manual", False))
            nxt.update(jitter_ms=0, retry_at=now + delay)
            self.rd.retry.append((job, nxt))
        self.rd.record.append(("exec.finish", record))

    def kill(self, execution_id, reason):
        run = self.runs.get(execution_id)
        if run is None:
            return False
        self.rd.kill.append((run.execution, reason))
        return True

    # -- time ------------------------------------------------------------------------------

    def tick(self, now):
        for run in list(self.runs.values()):
            if run.ack_record_at is not None and run.ack_record_at <= now:
                run.ack_record_at = None
                self.rd.record.append(("exec.ack", run.execution))
            if run.due_at > now:
                continue
            if run.state == DISPATCHED and run.publications < self.run_attempts:
                self.publish(run, now)
            elif run.state == DISPATCHED:
                self.finished(dict(run.execution, status="failed", success=False, finished_at=now,
                                   reason=f"node {run.execution['node']} did not acknowledge the run "
                                          f"after {run.publications} publications"), now)
            else:
                self.finished(dict(run.execution, status="lost", success=False, finished_at=now,
                                   reason=f"no heartbeat from node {run.execution['node']} for "
                                          f"{self.lease_ms // 1000}s"), now)

    def deadline(self):
        return min((min(r.due_at, r.ack_record_at or r.due_at) for r in self.runs.values()), default=None)

    def busy(self, now):
        """Runs started or due to have started: not those still waiting for their start time."""
        return [dict(r.execution, output=r.last_output.decode(errors="replace"))
                for r in sorted(self.runs.values(), key=lambda r: r.execution["group"])
                if r.state == RUNNING or r.state == DISPATCHED and models.start_time(r.execution) <= now]

    def running(self, job_name):
        return [r.execution for r in self.runs.values() if r.job["name"] == job_name]

    def ready(self):
        self.flush()
        return Ready(publish=list(self.rd.publish), kill=list(self.rd.kill), record=list(self.rd.record),
                     retry=list(self.rd.retry))

    def advance(self, rd):
        del self.rd.publish[:len(rd.publish)]
        del self.rd.kill[:len(rd.kill)]
        del self.rd.record[:len(rd.record)]
        del self.rd.retry[:len(rd.retry)]
