"""The dispatcher core, pure: every decision about claims, targets, leases, retries and kills.
Ticks and manual runs wait in a per-job claim queue and are claimed through Raft one at a time;
a claimed run is published at once, with its start time (tick plus jitter), which its executor
waits for; it is published again when no ack came by then, then failed with its reason; a
running one whose heartbeats stop for the lease is lost. What follows a run (a retry, a firing's
dependent runs, ephemeral delete and notices) is recorded by the state machine, and carried out
here from what it reports (followups.py). Messages (leadership, members, settings, requests,
executors' reports, Raft's replies) are stepped in with the time; ready() hands out what to
publish, ask Raft, answer, deliver and count, in the order carry_out fixes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from common import errors, messages as m, models, wire
from services.dispatcher.claims import Claim, ClaimQueue
from services.dispatcher.followups import FollowUps
from services.dispatcher.targets import frames

log = logging.getLogger(__name__)

CLAIMED, DISPATCHED, RUNNING = "claimed", "dispatched", "running"
# An ack is recorded in Raft this long after it came, unless the run's result came first: a
# short run is then recorded once, by its result (which carries its start), not twice. A new
# leader finds such a run claimed and publishes it again; its executor starts nothing new.
ACK_RECORD_DELAY_MS = 1000
SETTINGS_REFRESH_MS = 2000
TAKE_OVER_RETRY_MS = 500
BUSY_OUTPUT_BYTES = 512 * 1024  # the latest output busy.list shows, over all its runs


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
class Call:
    """A request for the local Raft (or gossip's member list); the shell steps its reply or error
    back in with answered(call, ...), which hands it to the method named `then`."""

    msg: object
    then: str
    context: object = None


@dataclass
class Skips:
    """Rows of ticks (or runs) recorded as skipped by one decision, to count."""

    job: str
    rows: list


@dataclass
class Ready:
    """Effects to carry out in carry_out's order."""

    publish: list = field(default_factory=list)   # (executions, job, (kind, name)): run.start
    kill: list = field(default_factory=list)      # (execution, reason): run.kill on its node
    calls: list = field(default_factory=list)     # Calls
    replies: list = field(default_factory=list)   # (reply, typed reply or errors.Error)
    results: list = field(default_factory=list)   # records committed, for live tails
    sends: list = field(default_factory=list)     # Deliveries of notices to send (answered by sent())
    skips: list = field(default_factory=list)     # Skips
    lateness: list = field(default_factory=list)  # ms late, of scheduled runs at their first ack
    recorded: list = field(default_factory=list)  # (job, status) of each execution newly recorded
    beats: list = field(default_factory=list)     # terms to heartbeat with

    def empty(self):
        return not (self.publish or self.kill or self.calls or self.replies or self.results or self.sends
                    or self.skips or self.lateness or self.recorded or self.beats)


LISTS = tuple(Ready.__dataclass_fields__)
EMPTY = Ready()


class Dispatcher(ClaimQueue, FollowUps):
    def __init__(self, node, *, rng, ack_timeout_ms, run_attempts, lease_ms, heartbeat_ms=500,
                 members_refresh_ms=2000, notify=None, now=0):
        self.node, self.rng = node, rng
        self.ack_timeout_ms, self.run_attempts, self.lease_ms = ack_timeout_ms, run_attempts, lease_ms
        self.heartbeat_ms, self.members_refresh_ms = heartbeat_ms, members_refresh_ms
        self.active, self.term, self.now = False, 0, now
        self.members = []
        self.untagged = "one"
        self.runs = {}
        self.claims = {}          # job name → deque of Claims; the first is being claimed
        self.confirm = {}         # execution id → executors' requests waiting for their result's commit
        self.manual_seq = 0
        self.init_followups(notify)  # [notify] settings: what notices send, and the rules they hear
        self.outgoing = []        # runs to publish, grouped by job when the Ready is made
        self.acks, self.finishes = [], []  # the round's exec.record
        self.beat_at = now + heartbeat_ms
        self.members_at = now
        self.settings_at = self.take_over_at = None
        self.rd = Ready()

    # -- the core API ----------------------------------------------------------------------

    def step(self, msg, now, reply=None):
        """A message; `reply` is the shell's handle on a request, answered through ready().
        Raises errors.Error to refuse a request at once."""
        self.now = now
        if isinstance(msg, m.RaftLeader):
            return self.lead(msg.ready and msg.leader == msg.node, msg.term)
        if isinstance(msg, m.MemberEvent):
            others = [x for x in self.members if x["name"] != msg.member["name"]]
            self.members = others if msg.kind == "reap" else others + [msg.member]
            return
        if isinstance(msg, m.ExecOutput):
            run = self.runs.get(msg.id)
            if run is not None:
                run.last_output = msg.data
            return
        if isinstance(msg, m.TickSkip):
            # Skipped ticks pass through here on their way to Raft, which records their notices
            # by this node's rules; recorded even when this dispatcher is not active.
            return self.call(m.RunSkip(job=msg.job, ticks=msg.ticks, reason=msg.reason, notify=self.notify_rules),
                             "skips_recorded", (msg.job, reply))
        if not self.active:
            raise errors.NotLeader(f"{self.node} is not the active dispatcher")
        if isinstance(msg, m.TickFire):
            self.enqueue(Claim(msg.job, msg.scheduled_at, reply=reply))
        elif isinstance(msg, m.RunAck):
            self.acked(msg.id, msg.started_at, now)
        elif isinstance(msg, m.ExecHeartbeat):
            self.heard(msg.ids, now)
        elif isinstance(msg, m.ExecResult):
            # Checked here, not only by Raft: results go there in one entry per round, and one
            # ill-formed record would fail every result batched with it.
            execution = models.check_execution(msg.execution)
            self.confirm.setdefault(execution["id"], []).append(reply)
            self.finished(execution, now)
        elif isinstance(msg, m.JobRun):
            self.run_now(msg, reply)
        elif isinstance(msg, m.ExecKill):
            targets = [msg.id] if msg.id else [x["id"] for x in self.running(msg.job)]
            killed = [i for i in targets if self.kill(i, "killed on request")]
            if msg.id and not killed:
                raise errors.NotFound(f"execution {msg.id!r} of {msg.job!r} is not running")
            self.answer(reply, m.Killed(killed=killed))
        elif isinstance(msg, m.BusyList):
            self.answer(reply, m.Executions(executions=self.busy(now)))
        else:
            raise errors.BadRequest(f"the dispatcher does not answer {msg.TYPE}")

    def answered(self, call, reply, error, now):
        """The reply (or error) to a Call this core handed out."""
        self.now = now
        getattr(self, call.then)(call.context, reply, error)

    def tick(self, now):
        self.now = now
        for run in list(self.runs.values()):
            if run.ack_record_at is not None and run.ack_record_at <= now:
                run.ack_record_at = None
                self.acks.append({"job": run.job["name"], "id": run.execution["id"],
                                  "started_at": run.execution["started_at"]})
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
        if self.active:
            self.tick_followups(now)
        if now >= self.beat_at:
            self.beat_at = now + self.heartbeat_ms
            if self.active:
                self.rd.beats.append(self.term)
        if now >= self.members_at:
            self.members_at = now + self.members_refresh_ms
            self.call(m.MemberList(), "got_members")
        if self.settings_at is not None and now >= self.settings_at:
            self.settings_at = now + SETTINGS_REFRESH_MS
            self.call(m.SettingsGet(stale=True), "got_settings")
        if self.take_over_at is not None and now >= self.take_over_at:
            self.take_over_at = None
            self.call(m.ExecUnfinished(), "took_over")

    def deadline(self):
        due = min((min(r.due_at, r.ack_record_at or r.due_at) for r in self.runs.values()), default=self.beat_at)
        return min(x for x in (due, self.beat_at, self.members_at, self.settings_at, self.take_over_at,
                               self.followups_deadline()) if x is not None)

    def ready(self):
        if not (self.outgoing or self.acks or self.finishes or self.done) and self.rd.empty():
            return EMPTY
        if self.outgoing:
            self.rd.publish += frames(self.outgoing)
            self.outgoing = []
        done = self.take_done(force=bool(self.acks or self.finishes))
        if self.acks or self.finishes or done:
            # The round's acks, results and follow-ups done in one Raft entry; each ack's and
            # result's outcome as if alone.
            acks, finishes, self.acks, self.finishes = self.acks, self.finishes, [], []
            self.call(m.RunRecord(acks=acks, finishes=finishes, done=done, notify=self.notify_rules, term=self.term),
                      "recorded", (acks, finishes, done))
        return Ready(**{name: list(getattr(self.rd, name)) for name in LISTS})

    def advance(self, rd):
        if rd is EMPTY:
            return
        for name in LISTS:
            del getattr(self.rd, name)[:len(getattr(rd, name))]

    # -- leadership, members, settings -----------------------------------------------------

    def lead(self, active, term):
        if active != self.active or term != self.term:
            log.info("dispatcher active=%s term=%d", active, term)
        was, self.active, self.term = self.active, active, term
        if active and not was:
            # A new leader re-sends every claimed run with no ack (same id) and watches running ones.
            self.call(m.SettingsGet(stale=True), "got_settings")
            self.settings_at = self.now + SETTINGS_REFRESH_MS
            self.call(m.ExecUnfinished(), "took_over")
        elif was and not active:
            self.runs.clear()
            self.claims.clear()
            self.forget_followups()
            self.settings_at = self.take_over_at = None

    def got_members(self, _, reply, error):
        if error is None:
            self.members = list(reply.members)

    def got_settings(self, _, reply, error):
        if error is None:
            self.untagged = reply.settings["untagged_jobs"]

    def took_over(self, _, reply, error):
        if not self.active:
            return
        if error is not None:
            log.warning("cannot list unfinished runs (retrying): %s", error)
            self.take_over_at = self.now + TAKE_OVER_RETRY_MS
            return
        for found in reply.runs:
            self.adopt(found["execution"], found["job"], self.now)
        if reply.more and reply.runs:  # the rest, page by page (each page stays inside a frame)
            last = reply.runs[-1]["execution"]
            self.call(m.ExecUnfinished(after_group=last["group"], after_id=last["id"]), "took_over")
        self.take_over_followups(reply.retries, reply.effects)
        if reply.runs or reply.retries or reply.effects:
            log.info("took over unfinished runs=%d retries=%d effects=%d", len(reply.runs), len(reply.retries),
                     len(reply.effects))

    # -- runs ------------------------------------------------------------------------------

    def dispatch(self, job, executions):
        """The claim is committed: its runs are published now, even those claimed ahead of their
        time or jittered. Each executor starts its run at the start time on its own clock (and
        in a burst forks the child before it), so no publication, transport or busy dispatcher
        round lies between the tick and the start."""
        for execution in executions:
            run = Run(dict(execution), job)
            self.runs[execution["id"]] = run
            self.publish(run, self.now)

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

    def acked(self, execution_id, started_at, now):
        run = self.runs.get(execution_id)
        if run is None or run.state == RUNNING:
            return
        execution = run.execution
        # Lateness is measured here, at the first ack of a scheduled run: ticks are claimed
        # ahead and held until their time, so only the executor's start tells how late it was.
        if execution["status"] == "claimed" and not execution.get("manual") and started_at \
                and execution.get("attempt", 1) == 1:
            self.rd.lateness.append(max(0, started_at - models.start_time(execution)))
        run.state, run.due_at = RUNNING, now + self.lease_ms
        execution.update(status="running", started_at=started_at)
        run.ack_record_at = now + ACK_RECORD_DELAY_MS

    def heard(self, execution_ids, now):
        """A heartbeat: these runs are alive; their lease starts again."""
        for execution_id in execution_ids:
            run = self.runs.get(execution_id)
            if run is not None and run.state == RUNNING:
                run.due_at = now + self.lease_ms

    def finished(self, execution, now):
        """A result (from an executor, or decided here): recorded, idempotently, and the run
        forgotten. The state machine decides a retry, and reports it."""
        self.runs.pop(execution["id"], None)
        self.finishes.append(dict(execution))

    def kill(self, execution_id, reason):
        run = self.runs.get(execution_id)
        if run is None:
            return False
        self.rd.kill.append((run.execution, reason))
        return True

    def busy(self, now):
        """Runs started or due to have started: not those still waiting for their start time.
        Their latest output, while the list holds less than BUSY_OUTPUT_BYTES of it: the reply
        stays well inside a frame however many runs there are (64 KiB each would not)."""
        found, left = [], BUSY_OUTPUT_BYTES
        for r in sorted(self.runs.values(), key=lambda r: r.execution["group"]):
            if r.state == RUNNING or r.state == DISPATCHED and models.start_time(r.execution) <= now:
                shown = r.last_output if len(r.last_output) <= left else b""
                left -= len(shown)
                found.append(dict(r.execution, output=shown.decode(errors="replace")))
        return found

    def running(self, job_name):
        return [r.execution for r in self.runs.values() if r.job["name"] == job_name]

    # -- what Raft recorded ----------------------------------------------------------------

    def recorded(self, context, reply, error):
        acks, finishes, done = context
        if error is not None:
            self.records_failed(done)
        for i, ack in enumerate(acks):
            _, failed = outcome(reply, error, "acks", i)
            if failed is not None:
                log.warning("recording ack failed id=%s: %s", ack["id"], failed)
        for i, execution in enumerate(finishes):
            self.result_recorded(execution, *outcome(reply, error, "finishes", i))

    def result_recorded(self, execution, done, error):
        waiting = self.confirm.pop(execution["id"], [])
        if error is not None and error.code != "not_found":
            # The executor re-sends its result; it is recorded on a later attempt.
            log.warning("recording result failed id=%s: %s", execution["id"], error)
            return
        for asked in waiting:
            self.answer(asked, m.ResultRecorded(id=execution["id"]))
        if error is not None:
            return  # its job was deleted (an ephemeral one, say): nothing to record, nor to send again
        record = done.execution
        self.rd.results.append(record)
        if done.duplicate:
            return
        self.rd.recorded.append((record["job"], record["status"]))
        if record["status"] == "skipped":
            self.skipped(record["job"], [record])  # a full node skipped it
        if done.retry is not None:
            self.pend_retry(done.retry)
        self.take_effects(done.effects)

    # -- plumbing --------------------------------------------------------------------------

    def skipped(self, job, rows):
        self.rd.skips.append(Skips(job, rows))

    def call(self, msg, then, context=None):
        self.rd.calls.append(Call(msg, then, context))

    def answer(self, reply, answer):
        if reply is not None:
            self.rd.replies.append((reply, answer))


def outcome(reply, error, kind, i):
    """(Outcome, error) of item i of a batched record: the batch's error, or the item's own."""
    if error is not None:
        return None, error
    item = wire.typed(m.Outcome, getattr(reply, kind)[i])
    if item.error:
        return None, errors.Error.from_code(item.error, item.message)
    return item, None


def carry_out(rd, *, publish, kill, call, reply, result, send, skipped, late, recorded, beat):
    """The one place the Ready order lives; the shell and the scheduler simulator both call it.
    Runs go out first (they are what is late), then kills, then Raft's requests, then answers
    (an executor's result is answered only once Raft has recorded it, which this core ensures),
    then notices to deliver, then what is only told or counted."""
    for executions, job, topic in rd.publish:
        publish(executions, job, topic)
    for execution, reason in rd.kill:
        kill(execution, reason)
    for c in rd.calls:
        call(c)
    for asked, answer in rd.replies:
        reply(asked, answer)
    for record in rd.results:
        result(record)
    for delivery in rd.sends:
        send(delivery)
    for skips in rd.skips:
        skipped(skips)
    for ms in rd.lateness:
        late(ms)
    for job, status in rd.recorded:
        recorded(job, status)
    for term in rd.beats:
        beat(term)
