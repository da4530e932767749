"""The executor service's shell: one SUB to every server's run PUB (node, tag and `all`
topics), one DEALER per server's dispatcher, sending to the one with the highest term heard.
Starts each execution id once (recorded before the ack), streams output, heartbeats running
runs, kills on request, timeout or memory limit, queues runs beyond its slots, re-sends
results until confirmed, serves full output on its ROUTER, and drains running jobs on TERM.
A run published before its time waits here and starts on this node's clock; in a burst its
child is forked ahead and held until then."""

from __future__ import annotations

import collections
import logging
import os
import resource
import sys
from dataclasses import dataclass

import zmq

from common import config, errors, messages as m, models, wire
from common.loop import Loop
from services.executor import core, plans, processors
from services.executor.forking import ForkAhead
from services.executor.process import ChildProcess, can_hold
from services.executor.store import ExecutionStore

log = logging.getLogger(__name__)

EXIT_POLL_MS = 20       # after EOF, how often to look for the exit status
MEMORY_CHECK_MS = 1000  # Dkron samples the tree's RSS once a second too
MAX_OUTPUT_REPLY = 1 << 20
BURST_MS, BURST_RUNS = 20, 4  # runs of this node due within 20 ms of each other, 4 or more: a burst
COMMIT_GAP_MS = 30         # results are committed when no waiting run is due this soon...
COMMIT_MAX_WAIT_MS = 1000  # ...or once they have waited this long


@dataclass
class Running:
    execution: dict
    job: dict
    output: core.Output
    started_at: int
    process: ChildProcess | None = None
    reason: str = ""
    status: str = ""
    timers: tuple = ()
    pending: bool = True  # stored, not yet committed: no ack, no process until the round's commit


@dataclass
class Held:
    """A child forked ahead for a run waiting for its start time."""
    process: ChildProcess
    plan: plans.Plan
    fork_ms: int


class Server:
    def __init__(self, name, peer):
        self.name, self.peer, self.term = name, peer, -1


class ExecutorShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        self.store = ExecutionStore(os.path.join(conf.node.data_dir, "executor.db"))
        self.offered = plans.available(conf.executor.executors)
        missing = set(conf.executor.executors) - set(self.offered)
        if missing:
            log.warning("configured executors not installed: %s", ", ".join(sorted(missing)))
        self.started = self.store.started_ids()
        self.processors = processors.Processors(conf, loop.after)
        self.running = {}
        self.waiting = core.Waiting()  # runs published before their start time
        self.held = {}  # execution id → Held
        self.forking = ForkAhead(loop, self.forked)
        self.to_hold = collections.deque()  # (execution, job) waiting, not looked at for a fork ahead yet
        self.announced = collections.Counter()  # start time // BURST_MS → runs of this node waiting for it
        self.queue = collections.deque()  # (execution, job) waiting for a free slot
        self.sending = set()
        self.arrived, self.outbox = [], []  # runs and results waiting for the round's commit
        self.servers = {}
        topics = [wire.topic("node", self.name), wire.topic("all")]
        topics += [wire.topic("tag", f"{k}={v}") for k, v in conf.node.tags.items()]
        self.run_sub = loop.socket(zmq.SUB, "run", on=self.on_run, subscribe=topics)
        self.output_router = loop.socket(zmq.ROUTER, "output", on=self.on_output,
                                         bind=config.endpoints(conf, "executor", "output", conf.executor.output_port))
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.every(conf.gossip.refresh_ms, self.refresh_members)
        loop.every(conf.executor.result_retry_ms, self.resend_results)
        loop.every(conf.executor.heartbeat_ms, self.heartbeat)
        loop.every(60_000, self.store.prune)
        loop.every(1000, self.forget_announced)
        loop.follow(self.waiting.deadline, self.start_due, urgent=True)
        loop.on_term = self.drain
        loop.idle.append(self.flush)
        loop.status = self.status
        self.settle_orphans()
        self.refresh_members()
        loop.ready = True

    # -- servers ---------------------------------------------------------------------------

    def refresh_members(self):
        self.gossip.call(m.MemberList(), self._got_members)

    def _got_members(self, result, err):
        if err is None:
            for member in result["members"]:
                self.add_server(member)

    def on_members(self, env):
        self.add_server(env.msg.member)

    def add_server(self, member):
        if member["role"] != "server" or member["status"] != "alive" or member["name"] in self.servers:
            return
        log.info("following server=%s run=%s", member["name"], member["addrs"]["run"])
        self.run_sub.connect(self.loop.from_bind(member["addrs"]["run"]))
        peer = self.loop.peer("result", [member["addrs"]["dispatcher"]])
        self.servers[member["name"]] = Server(member["name"], peer)

    def dispatcher(self):
        """The dispatcher with the highest term heard: the one that leads now (None: none heard)."""
        heard = [s for s in self.servers.values() if s.term >= 0]
        if heard:
            return max(heard, key=lambda s: s.term).peer
        return next(iter(self.servers.values())).peer if len(self.servers) == 1 else None

    def send(self, msg):
        """To the active dispatcher; before its first heartbeat is heard, to every server (the
        others refuse), so an ack right after a start is not lost."""
        peer = self.dispatcher()
        for target in [peer] if peer is not None else [s.peer for s in self.servers.values()]:
            target.send(msg)

    def heartbeat(self):
        if self.running:
            self.send(m.ExecHeartbeat(node=self.name, ids=sorted(self.running)))

    # -- runs ------------------------------------------------------------------------------

    def on_run(self, env):
        msg = env.msg
        if isinstance(msg, m.DispatcherHeartbeat):
            server = self.servers.get(msg.node)
            if server is not None:
                server.term = max(server.term, msg.term)
        elif isinstance(msg, m.RunKill):
            if msg.node == self.name and msg.id in self.waiting:
                self.settle_waiting(msg.id, msg.reason, "killed")
            run = self.running.get(msg.id)
            if msg.node == self.name and run is not None:
                self.kill(run, msg.reason, "killed")
        elif isinstance(msg, m.RunStart):
            for execution in msg.executions:
                self.on_start(execution, msg.job)

    def hold_waiting(self):
        """A moment after runs began to wait, so that the runs of a burst are counted first."""
        while self.to_hold:
            self.hold(*self.to_hold.popleft())

    def hold(self, execution, job):
        """Fork now the child of a run waiting for its time; it becomes the command when the
        run starts, so that a burst of ticks starts with a write per run, not a fork per run.
        Only in a burst: a held child costs a shell more than a plain start, which a steady
        stream of runs pays for nothing (at 300 runs/s on 3 servers and 2 agents it made the
        p99 lateness worse, 212 ms against 78)."""
        bucket = models.start_time(execution) // BURST_MS
        burst = self.announced[bucket - 1] + self.announced[bucket] + self.announced[bucket + 1] >= BURST_RUNS
        key = execution["id"]
        if (not burst or key not in self.waiting or key in self.held or key in self.forking
                or self.loop.draining or len(self.held) + len(self.forking) >= self.conf.executor.fork_ahead):
            return
        try:
            plan = plans.plan(self.offered, job)
        except (errors.Error, OSError, ValueError):
            return  # the start reports it
        if can_hold(plan):
            self.forking.fork(key, plan)

    def forked(self, key, plan, process, fork_ms):
        if process is None:
            return
        if key not in self.waiting or self.loop.draining:
            process.discard()  # started (or killed) while its child was being forked
            return
        self.held[key] = Held(process, plan, fork_ms)

    def unhold(self, execution_id):
        held = self.held.pop(execution_id, None)
        if held is not None:
            held.process.discard()

    def forget_announced(self):
        past = self.loop.now() // BURST_MS - 1
        for bucket in [b for b in self.announced if b < past]:
            del self.announced[bucket]

    def on_start(self, execution, job):
        kind = core.classify(execution, self.name, self.started)
        if kind == core.NOT_MINE:
            return
        if kind == core.DUPLICATE:
            run = self.running.get(execution["id"])
            if run is not None:
                if not run.pending:  # a pending one is acked after the commit
                    self.ack(run)
            else:
                record = self.store.record(execution["id"])
                if record:
                    self.outbox.append(record)
            return
        if self.loop.draining:
            return  # not acked: the dispatcher re-sends it, then fails it with a reason
        # Durable (at this round's flush) before anything starts: a run.start sent again, even
        # after a crash, starts nothing new.
        self.store.start(execution)
        self.started.add(execution["id"])
        if models.start_time(execution) > self.loop.now():
            self.wait(execution, job)
        else:
            self.arrived.append(self.track(execution, job))

    def track(self, execution, job, pending=True):
        run = Running(execution, job, core.Output(max_bytes=self.conf.executor.output_max_bytes,
                                                  tail_bytes=self.conf.executor.output_tail_bytes),
                      self.loop.now(), pending=pending)
        self.running[execution["id"]] = run
        return run

    def wait(self, execution, job):
        """A run published before its time (claimed ahead, or jittered) starts on this node's
        clock. Its id was stored at its arrival, so at its time nothing is written first."""
        self.waiting.add(execution, job)
        self.announced[models.start_time(execution) // BURST_MS] += 1
        if not self.to_hold:
            self.loop.after(1, self.hold_waiting)
        self.to_hold.append((execution, job))

    def start_due(self, now):
        if self.store.starts_written:
            self.store.commit()  # a run that came just before its time: its id is durable before it starts
        for execution, job in self.waiting.due(now):
            self.admit(self.track(execution, job, pending=False))

    def settle_waiting(self, execution_id, reason, status):
        """A waiting run that will not start (killed, or its executor stops) gets its record."""
        execution, job = self.waiting.take(execution_id)
        self.finish(self.track(execution, job, pending=False), None, reason=reason, status=status)

    def flush(self):
        """Once per loop round: the round's starts are committed, then acked and launched.
        Results and confirmations are committed (then the results sent) in a gap between the
        start times of waiting runs, or once they have waited COMMIT_MAX_WAIT_MS: under a busy
        CPU an fsync takes tens of ms, and a run due meanwhile would wait for it."""
        while self.arrived or (self.outbox and self.may_commit()):
            self.store.commit()
            arrived, self.arrived = self.arrived, []
            for run in arrived:
                self.admit(run)
            outbox, self.outbox = self.outbox, []
            for record in outbox:
                self.send_result(record)
        if self.may_commit():
            self.store.commit()  # confirmations, and the ids of runs that wait

    def may_commit(self):
        due = self.waiting.deadline()
        return due is None or due - self.loop.now() > COMMIT_GAP_MS or self.store.waited_ms() >= COMMIT_MAX_WAIT_MS

    def admit(self, run):
        """Started at once when a slot is free (then acked, with the start time), else queued."""
        run.pending = False
        if run.status:  # killed before it could start
            self.ack(run)
            return self.finish(run, None)
        if self.has_slot():
            self.launch(run)
            return self.ack(run)
        self.ack(run)
        if len(self.queue) >= self.conf.executor.queue_size:
            return self.finish(run, None, reason=f"node {self.name} full: "
                                                 f"{self.conf.executor.max_concurrent_executions} running and "
                                                 f"{len(self.queue)} waiting", status="skipped")
        self.queue.append(run)

    def has_slot(self):
        limit = self.conf.executor.max_concurrent_executions
        return not limit or sum(1 for r in self.running.values() if r.process) < limit

    def launch(self, run):
        execution, job = run.execution, run.job
        run.started_at = self.loop.now()
        held = self.held.pop(execution["id"], None)
        if held is not None and held.process.poll() is not None:
            held.process.discard()  # it died while held: fork again
            held = None
        try:
            if held is not None:
                plan, run.process = held.plan, held.process
                run.process.release()
                # The fork's own cost, paid before the tick; lateness counts from the release.
                run.execution.update(spawn_ms=held.fork_ms, forked_ahead=True)
            else:
                plan = plans.plan(self.offered, job)
                run.process = ChildProcess(plan)
                # The fork's own cost, apart from the scheduling lateness (started_at - scheduled_at).
                run.execution["spawn_ms"] = self.loop.now() - run.started_at
        except (errors.Error, OSError, ValueError) as exc:
            log.warning("execution failed to start id=%s: %s", execution["id"], exc)
            return self.finish(run, None, reason=f"failed to start: {exc}")
        timers = []
        if plan.timeout_ms:
            timers.append(self.loop.after(plan.timeout_ms, lambda: self.kill(
                run, f"execution time exceeded the timeout of {plan.timeout_ms / 1000:g}s; the job was killed", "failed")))
        if plan.mem_limit:
            timers.append(self.loop.every(MEMORY_CHECK_MS, lambda: self.check_memory(run, plan.mem_limit)))
        run.timers = tuple(timers)
        # Each run's lines are debug (its record says all of it, replicated); a failed one's
        # end is info. At a thousand runs a second, two info lines per run were what stalled the
        # executor most under load (case a on 3 servers and 2 agents: p99 129 ms, against 60
        # with the service logging only warnings).
        log.debug("started id=%s job=%s pid=%d", execution["id"], job["name"], run.process.pid)
        self.loop.add_fd(run.process.fd, lambda fd: self.on_child_output(run))

    def ack(self, run):
        self.send(m.RunAck(id=run.execution["id"], job=run.job["name"], node=self.name, started_at=run.started_at))

    def on_child_output(self, run):
        data = run.process.read()
        if data:
            offset = run.output.add(data)
            self.send(m.ExecOutput(id=run.execution["id"], job=run.job["name"], offset=offset, data=data))
        elif run.process.eof:
            self.loop.remove_fd(run.process.fd)
            self.reap(run)

    def reap(self, run):
        code = run.process.poll()
        if code is None:
            self.loop.after(EXIT_POLL_MS, lambda: self.reap(run))
            return
        self.finish(run, code)

    def check_memory(self, run, limit):
        used = run.process.rss() if run.process else 0
        if used > limit:
            self.kill(run, f"memory usage {used} bytes exceeded the limit of {limit} bytes; the job was killed", "failed")

    def kill(self, run, reason, status):
        if run.pending:
            run.reason, run.status = reason, status
            return
        if run in self.queue:
            self.queue.remove(run)
            return self.finish(run, None, reason=reason, status=status)
        if run.process is not None and run.execution["id"] in self.running:
            log.info("killing id=%s: %s", run.execution["id"], reason)
            run.reason, run.status = reason, status
            run.process.kill()

    def finish(self, run, exit_code, reason="", status=""):
        for timer in run.timers:
            timer.cancel()
        self.unhold(run.execution["id"])  # killed, skipped or failed before it was launched
        record = core.final_record(run.execution, started_at=run.started_at, finished_at=self.loop.now(),
                                   exit_code=exit_code, output=run.output, reason=reason or run.reason)
        if status or run.status:
            record["status"] = status or run.status
        record = self.processors.run(run.job, record, run.output.head)
        self.store.finish(record, run.output.head, run.output.size)
        del self.running[run.execution["id"]]
        log.log(logging.DEBUG if record["status"] == "success" else logging.INFO,
                "finished id=%s status=%s exit_code=%s", record["id"], record["status"], exit_code)
        self.outbox.append(record)
        while self.queue and self.has_slot() and not self.loop.draining:
            self.launch(self.queue.popleft())
        if self.loop.draining and not self.running:
            self.loop.after(self.conf.executor.result_retry_ms, lambda: self.loop.stop(0))

    def settle_orphans(self):
        """Runs stored but never finished: this process died. One whose start time has not come
        never started: forgotten here, it starts when its run.start is sent again. Any other may
        have started: it is recorded as lost."""
        now = self.loop.now()
        for execution in self.store.orphans():
            if models.start_time(execution) > now:
                self.store.forget(execution["id"])
                self.started.discard(execution["id"])
            else:
                self.record_lost(execution)
        self.store.commit()

    def record_lost(self, execution):
        record = dict(execution, status="lost", success=False, finished_at=self.loop.now(),
                      reason="the executor stopped while the execution ran or was starting")
        self.store.finish(record, b"", 0)
        self.outbox.append(record)

    # -- results ---------------------------------------------------------------------------

    def send_result(self, record):
        peer = self.dispatcher()
        if peer is None or record["id"] in self.sending:
            return
        self.sending.add(record["id"])

        def confirmed(result, err):
            self.sending.discard(record["id"])
            if err is None:
                self.store.confirm(record["id"])
            else:
                log.info("result not confirmed id=%s: %s (will re-send)", record["id"], err)

        peer.call(m.ExecResult(execution=record), confirmed)

    def resend_results(self):
        for record in self.store.unconfirmed():
            self.send_result(record)

    # -- full output -----------------------------------------------------------------------

    def on_output(self, env):
        if not isinstance(env.msg, m.OutputGet):
            raise errors.BadRequest(f"the executor output port does not answer {env.type}")
        execution_id, offset = env.msg.id, max(0, env.msg.offset)
        run = self.running.get(execution_id)
        if run is not None:
            data, size, finished = run.output.read(offset, MAX_OUTPUT_REPLY), run.output.size, False
        else:
            stored = self.store.output(execution_id)
            if stored is None:
                raise errors.NotFound(f"no output of execution {execution_id!r} on {self.name}")
            data, size, finished = stored[0][offset:offset + MAX_OUTPUT_REPLY], stored[1], True
        self.loop.reply(self.output_router, env, {"data": data, "size": size, "finished": finished})

    # -- shutdown --------------------------------------------------------------------------

    def drain(self):
        for execution_id in list(self.waiting.runs):
            self.settle_waiting(execution_id, "interrupted: the executor was stopped before the run's start time",
                                "interrupted")
        self.to_hold.clear()
        for execution_id in list(self.held):
            self.unhold(execution_id)
        for run in list(self.queue):
            self.kill(run, "interrupted: the executor was stopped before the run started", "interrupted")
        if not self.running:
            self.flush()  # the interrupted records: stored and sent before the loop ends
            return self.loop.stop(0)
        log.info("draining running=%d budget_ms=%d", len(self.running), self.conf.executor.drain_ms)
        self.loop.after(self.conf.executor.drain_ms, self.interrupt_all)

    def interrupt_all(self):
        for run in list(self.running.values()):
            self.kill(run, "interrupted: the executor was stopped", "interrupted")

    def status(self):
        return {"running": len(self.running), "queued": len(self.queue), "waiting": len(self.waiting),
                "held": len(self.held), "nice": os.getpriority(os.PRIO_PROCESS, 0),
                "servers": sorted(self.servers),
                "executors": sorted(self.offered),
                "sqlite": {"executor.db": {
                    "journal_mode": self.store.db.execute("PRAGMA journal_mode").fetchone()[0],
                    "synchronous": self.store.db.execute("PRAGMA synchronous").fetchone()[0]}}}


def take_priority(nice):
    """The executor starts runs at their time only if it gets the CPU then: on a node busy with
    Raft, the dispatcher and the jobs themselves, its timer waits behind them. It takes a lower
    niceness when it may (CAP_SYS_NICE, as root), and asks the kernel to give every process and
    thread it starts the normal one again (SCHED_RESET_ON_FORK): jobs do not inherit it, and
    neither does the fork-ahead thread, whose forks are background work. Measured in case (a) of
    `scripts/bench schedule` on 3 servers and 2 agents: p50 lateness 9 ms against 33-60."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice >= current:
        return current
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except (PermissionError, OSError) as exc:
        log.info("keeping niceness %d (asked for %d: %s)", current, nice, exc)
        return current
    return nice


def _allow_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-executor")
    loop = Loop(conf, service="executor")
    _allow_open_files()  # every held child keeps two pipes open here
    take_priority(conf.executor.nice)  # before the fork-ahead thread, which starts at the normal niceness
    shell = loop.start(lambda: ExecutorShell(conf, loop))
    code = loop.run()
    shell.store.close()  # what a last round left uncommitted
    sys.exit(code)
