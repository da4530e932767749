"""The executor core, pure and shaped like the raft core: run.start, run.kill, dispatcher
heartbeats and result confirmations are stepped in, time comes in by tick(now), and ready()
hands out what to store and commit, which runs to ack, launch or kill, which children to fork
ahead, and which results to send, in the order carry_out fixes. The shell owns the sockets, the
children, the fork-ahead thread and the store; this decides."""

from __future__ import annotations

import collections
import dataclasses
import heapq
from dataclasses import dataclass, field

from common import messages as m, models
from services.executor.journal import Journal
from services.executor.outcome import Finished, Output, final_record
from services.executor.waiting import Bursts, Waiting

NEW, DUPLICATE, NOT_MINE = "new", "duplicate", "not_mine"
ARRIVED, QUEUED, LAUNCHED = "arrived", "queued", "launched"


def classify(execution, node, started_ids):
    """A run published to this node's topic is re-checked: topics are a filter, not a proof."""
    if execution.get("node") != node:
        return NOT_MINE
    return DUPLICATE if execution["id"] in started_ids else NEW


@dataclass
class Run:
    """An execution of this node from the moment its start time has come to its end."""

    execution: dict
    job: dict
    output: Output
    started_at: int
    state: str = ARRIVED   # ARRIVED: to be launched (or queued) once its id is durable
    reason: str = ""       # why it ends, when something ends it: a kill, its timeout, its memory
    status: str = ""       # the status that reason gives it (killed, failed, interrupted)
    timeout_ms: int = 0
    mem_limit: int = 0
    acked: bool = False


@dataclass
class Ready:
    """Effects to carry out in carry_out's order."""

    starts: list = field(default_factory=list)      # executions whose ids to store
    forgets: list = field(default_factory=list)     # ids stored by a process that died before their time
    finishes: list = field(default_factory=list)    # Finished records to store
    confirms: list = field(default_factory=list)    # ids whose results the leader committed
    commit: bool = False                            # make everything stored so far durable (one fsync)
    launches: list = field(default_factory=list)    # Runs to start a child for
    acks: list = field(default_factory=list)        # RunAcks: a launched run's once its start is known
    kills: list = field(default_factory=list)       # Runs whose child to kill (run.reason says why)
    discards: list = field(default_factory=list)    # ids whose child forked ahead is not to run
    forks: list = field(default_factory=list)       # (execution, job) to fork a child ahead for
    results: list = field(default_factory=list)     # durable records to send the active dispatcher
    processing: list = field(default_factory=list)  # Finished records for their job's processors
    heartbeats: list = field(default_factory=list)  # [ids] of the runs on this node

    def empty(self):
        return not (self.commit or self.starts or self.forgets or self.finishes or self.confirms or self.launches
                    or self.acks or self.kills or self.discards or self.forks or self.results or self.processing
                    or self.heartbeats)


LISTS = tuple(f.name for f in dataclasses.fields(Ready) if f.name != "commit")
EMPTY = Ready()


class Executor:
    """`conf` is the node's [executor] section; `started`, `unconfirmed` and `orphans` are what
    the store holds: every id stored, the records the leader has not confirmed, and the runs
    stored but never finished (this process died)."""

    waiting_class = Waiting

    def __init__(self, node, conf, *, now, started=(), unconfirmed=(), orphans=()):
        self.node, self.conf, self.now = node, conf, now
        self.started = set(started)
        self.waiting = self.waiting_class()
        self.runs = {}                      # id → Run: arrived, queued or launched
        self.arrived = []                   # Runs whose time has come, to admit in the next ready()
        self.queue = collections.deque()    # Runs acked, waiting for a free slot
        self.occupied = 0                   # slots taken: runs given a child
        self.journal = Journal(unconfirmed)  # writes not yet committed, results owed
        self.terms = {}                     # server → the highest dispatcher term heard from it
        self.bursts = Bursts(conf.fork_ahead)  # children forked ahead for the runs of a burst
        self.timeouts = []                  # (due, id) of launched runs with a timeout
        self.draining = False
        self.resend_at = now + conf.result_retry_ms
        self.heartbeat_at = now + conf.heartbeat_ms
        self.rd = Ready()
        self.recover(orphans)

    # -- the core API ----------------------------------------------------------------------

    def step(self, msg, now):
        self.now = now
        if isinstance(msg, m.RunStart):
            for execution in msg.executions:
                self.start(execution, msg.job)
        elif isinstance(msg, m.RunKill):
            if msg.node == self.node:
                self.kill(msg.id, msg.reason, "killed")
        elif isinstance(msg, m.DispatcherHeartbeat):
            self.terms[msg.node] = max(self.terms.get(msg.node, -1), msg.term)
        elif isinstance(msg, m.ResultRecorded) and self.journal.confirmed(msg.id):
            self.rd.confirms.append(msg.id)
            self.journal.wrote(now)

    def tick(self, now):
        self.now = now
        for execution, job in self.waiting.due(now):
            self.arrived.append(self.track(execution, job))
        if self.bursts.hold_at is not None and now >= self.bursts.hold_at:
            self.rd.forks += self.bursts.hold(now, self.waiting)
        while self.timeouts and self.timeouts[0][0] <= now:
            _, execution_id = heapq.heappop(self.timeouts)
            run = self.runs.get(execution_id)
            if run is not None and run.state == LAUNCHED:
                self.end(run, f"execution time exceeded the timeout of {run.timeout_ms / 1000:g}s; the job was "
                              "killed", "failed")
        if now >= self.resend_at:
            self.resend_at = now + self.conf.result_retry_ms
            for record in self.journal.owed():
                self.send(record)
        if now >= self.heartbeat_at:
            self.heartbeat_at = now + self.conf.heartbeat_ms
            if self.runs:
                self.rd.heartbeats.append(sorted(self.runs))

    def deadline(self):
        """Cheap: the shell asks after every message, so that a run starts at its time."""
        due = min(self.resend_at, self.heartbeat_at)
        start = self.waiting.deadline()
        if start is not None and start < due:
            due = start
        if self.bursts.hold_at is not None and self.bursts.hold_at < due:
            due = self.bursts.hold_at
        if self.timeouts and self.timeouts[0][0] < due:
            due = self.timeouts[0][0]
        commit = self.journal.commit_due()
        return due if commit is None or commit >= due else commit

    def ready(self):
        """Runs whose time has come are admitted once their ids are durable: the Ready commits
        first when one is not. Otherwise the store commits in a gap between the start times of
        waiting runs (Journal.may_commit). Results are sent once their records are durable."""
        if not self.arrived and self.journal.written_at is None and self.rd.empty():
            return EMPTY
        must = not all(self.journal.durable(run.execution["id"]) for run in self.arrived)
        commit = must or self.journal.may_commit(self.now, self.waiting.deadline())
        arrived, self.arrived = self.arrived, []
        for run in arrived:
            self.admit(run)
        if commit:
            # Everything written so far, including what admitting wrote (skipped runs), is in
            # this Ready's writes, which carry_out stores before it commits.
            self.rd.commit = True
            for record in self.journal.committed():
                self.send(record)
        if self.rd.empty():
            return EMPTY
        return Ready(commit=self.rd.commit, **{name: list(getattr(self.rd, name)) for name in LISTS})

    def advance(self, rd):
        """rd was carried out. What was stepped in meanwhile (a launch that failed, a child
        forked, a record processed) stays for the next Ready."""
        if rd is EMPTY:
            return
        for name in LISTS:
            del getattr(self.rd, name)[:len(getattr(rd, name))]
        self.rd.commit = False

    # -- what the shell reports ------------------------------------------------------------

    def launched(self, execution_id, started_at, *, spawn_ms, forked_ahead=False, timeout_ms=0, mem_limit=0):
        """The child runs: its start time (lateness counts from here), what the fork cost
        (paid before the tick when it was forked ahead), and its limits."""
        run = self.runs.get(execution_id)
        if run is None:
            return
        run.started_at = started_at
        run.execution["spawn_ms"] = spawn_ms
        if forked_ahead:
            run.execution["forked_ahead"] = True
        run.timeout_ms, run.mem_limit = timeout_ms, mem_limit
        if timeout_ms:
            heapq.heappush(self.timeouts, (started_at + timeout_ms, execution_id))
        if not run.acked:  # one queued for a slot was acked at its admission
            run.acked = True
            self.ack(run.execution, started_at)

    def launch_failed(self, execution_id, error, now):
        self.now = now
        run = self.runs.get(execution_id)
        if run is not None:
            self.finish(run, None, reason=f"failed to start: {error}")

    def output(self, execution_id, data):
        """A chunk of a run's output → its offset in the run's whole output (None: not running)."""
        run = self.runs.get(execution_id)
        return run.output.add(data) if run is not None else None

    def measured(self, execution_id, used):
        """The resident memory of a run's process group, sampled by the shell."""
        run = self.runs.get(execution_id)
        if run is not None and run.state == LAUNCHED and run.mem_limit and used > run.mem_limit:
            self.end(run, f"memory usage {used} bytes exceeded the limit of {run.mem_limit} bytes; the job was "
                          "killed", "failed")

    def exited(self, execution_id, exit_code, now):
        self.now = now
        run = self.runs.get(execution_id)
        if run is not None and run.state == LAUNCHED:
            self.finish(run, exit_code)

    def forked(self, execution_id, ok):
        """A child forked ahead is ready (ok) or could not be (the run forks at its start)."""
        if self.bursts.forked(execution_id, ok, execution_id in self.waiting and not self.draining):
            self.rd.discards.append(execution_id)

    def processed(self, finished, record):
        """The job's processors ran on a finished run: `record` is what is stored and sent."""
        self.store_finish(dataclasses.replace(finished, record=record))

    def result_failed(self, execution_id):
        """A result was not confirmed (refused, timed out, or no dispatcher to send to): it is
        sent again at the next resend."""
        self.journal.failed(execution_id)

    def drain(self, now):
        """TERM: nothing new starts; waiting and queued runs are recorded interrupted, and
        children forked ahead go. Running ones go on until interrupt()."""
        self.now, self.draining = now, True
        for execution_id in self.waiting:
            self.kill(execution_id, "interrupted: the executor was stopped before the run's start time",
                      "interrupted")
        self.rd.discards += self.bursts.stop()
        for run in list(self.queue):
            self.end(run, "interrupted: the executor was stopped before the run started", "interrupted")

    def interrupt(self, now):
        """The drain's budget is spent: every run still going is killed, recorded interrupted."""
        self.now = now
        for run in list(self.runs.values()):
            self.end(run, "interrupted: the executor was stopped", "interrupted")

    def dispatcher(self):
        """The server whose dispatcher term is the highest heard: the one that leads now."""
        return max(self.terms, key=self.terms.get) if self.terms else None

    # -- runs ------------------------------------------------------------------------------

    def start(self, execution, job):
        kind = classify(execution, self.node, self.started)
        if kind == NOT_MINE:
            return
        execution_id = execution["id"]
        if kind == DUPLICATE:
            # Sent again (no ack came, or a new leader): nothing new starts. A run that started
            # is acked again, finished too: a new leader whose first publication found the run
            # over, its result on its way to the dead leader, then waits for that result with a
            # lease instead of failing the run unacknowledged. An arrived one is acked once its
            # id is durable; a finished one's result goes again; a waiting one goes on waiting.
            run = self.runs.get(execution_id)
            record = self.journal.unconfirmed.get(execution_id)
            if run is not None and run.state != ARRIVED:
                self.ack(run.execution, run.started_at)
            elif record is not None and self.journal.durable(execution_id):
                if record.get("started_at") is not None:
                    self.ack(record, record["started_at"])
                self.send(record)
            return
        if self.draining:
            return  # not acked: the dispatcher sends it again, then fails it with a reason
        # Stored before anything starts (durable once committed): a run.start sent again, even
        # after a crash, starts nothing new.
        self.started.add(execution_id)
        self.rd.starts.append(execution)
        self.journal.wrote(self.now, execution_id)
        if models.start_time(execution) > self.now:
            self.wait(execution, job)
        else:
            self.arrived.append(self.track(execution, job))

    def track(self, execution, job):
        run = Run(execution, job, Output(max_bytes=self.conf.output_max_bytes, tail_bytes=self.conf.output_tail_bytes),
                  self.now)
        self.runs[execution["id"]] = run
        return run

    def wait(self, execution, job):
        """A run published before its time (claimed ahead, or jittered) starts on this node's
        clock. Its id is stored at its arrival, so at its time nothing is written first."""
        self.waiting.add(execution, job)
        self.bursts.waits(execution, job, self.now)

    def admit(self, run):
        """Its id is durable: launched at once when a slot is free (then acked, with its start
        time), else acked and queued, or skipped when the queue is full."""
        if run.status:  # killed before it could start
            self.ack(run.execution, run.started_at)
            return self.finish(run, None)
        if self.has_slot():
            return self.launch(run)  # acked once launched(), with its start
        self.ack(run.execution, run.started_at)
        run.acked = True
        if len(self.queue) >= self.conf.queue_size:
            return self.finish(run, None, reason=f"node {self.node} full: {self.conf.max_concurrent_executions} "
                                                 f"running and {len(self.queue)} waiting", status="skipped")
        run.state = QUEUED
        self.queue.append(run)

    def has_slot(self):
        limit = self.conf.max_concurrent_executions
        return not limit or self.occupied < limit

    def launch(self, run):
        run.state = LAUNCHED
        self.occupied += 1
        self.bursts.release(run.execution["id"])  # a child held for it: the shell releases it into the command
        self.rd.launches.append(run)

    def kill(self, execution_id, reason, status):
        if execution_id in self.waiting:
            execution, job = self.waiting.take(execution_id)
            return self.finish(self.track(execution, job), None, reason=reason, status=status)
        run = self.runs.get(execution_id)
        if run is not None:
            self.end(run, reason, status)

    def end(self, run, reason, status):
        """Stop a run: one that has not started is finished with the reason (at once when
        queued, at its admission when its id is not yet durable); a launched one's child is
        killed, and it finishes when the child has exited."""
        if run.state == QUEUED:
            self.queue.remove(run)
            return self.finish(run, None, reason=reason, status=status)
        run.reason, run.status = reason, status
        if run.state == LAUNCHED:
            self.rd.kills.append(run)

    def finish(self, run, exit_code, reason="", status=""):
        execution_id = run.execution["id"]
        record = final_record(run.execution, started_at=run.started_at, finished_at=self.now, exit_code=exit_code,
                              output=run.output, reason=reason or run.reason)
        if status or run.status:
            record["status"] = status or run.status
        del self.runs[execution_id]
        if run.state == LAUNCHED:
            self.occupied -= 1
        if self.bursts.release(execution_id):  # killed, skipped or failed before it was launched
            self.rd.discards.append(execution_id)
        finished = Finished(record, run.job, run.output.head, run.output.size)
        if run.job.get("processors") and record["status"] != "skipped":
            self.rd.processing.append(finished)  # a skipped run never ran: nothing to process
        else:
            self.store_finish(finished)
        while self.queue and self.has_slot() and not self.draining:
            self.launch(self.queue.popleft())

    def recover(self, orphans):
        """Runs stored but never finished: this process died. One whose start time has not come
        never started: forgotten here, it starts when its run.start is sent again. Any other may
        have started: it is recorded as lost."""
        for execution in orphans:
            if models.start_time(execution) > self.now:
                self.started.discard(execution["id"])
                self.rd.forgets.append(execution["id"])
                self.journal.wrote(self.now)
            else:
                record = dict(execution, status="lost", success=False, finished_at=self.now,
                              reason="the executor stopped while the execution ran or was starting")
                self.store_finish(Finished(record, None, b"", 0))

    # -- results ---------------------------------------------------------------------------

    def store_finish(self, finished):
        self.rd.finishes.append(finished)
        self.journal.finished(finished.record, self.now)

    def ack(self, execution, started_at):
        self.rd.acks.append(m.RunAck(id=execution["id"], job=execution["job"], node=self.node, started_at=started_at))

    def send(self, record):
        if self.journal.take(record):
            self.rd.results.append(record)


def carry_out(rd, *, persist, launch, ack, kill, discard, fork, send, process, heartbeat):
    """The one place the Ready order lives; the shell and the scheduler simulator both call it.
    persist(starts, forgets, finishes, confirms, commit) writes and, with commit, makes every
    write so far durable (one fsync) before returning: an execution id is durable before its
    run is started or acked, so a run.start sent again, even after a crash, starts nothing new;
    a result is durable before it is sent. A launched run is acked in a later Ready, once
    launched() has told its start."""
    if rd.commit or rd.starts or rd.forgets or rd.finishes or rd.confirms:
        persist(rd.starts, rd.forgets, rd.finishes, rd.confirms, rd.commit)
    for run in rd.launches:
        launch(run)
    for msg in rd.acks:
        ack(msg)
    for run in rd.kills:
        kill(run)
    for execution_id in rd.discards:
        discard(execution_id)
    for execution, job in rd.forks:
        fork(execution, job)
    for record in rd.results:
        send(record)
    for finished in rd.processing:
        process(finished)
    for ids in rd.heartbeats:
        heartbeat(ids)
