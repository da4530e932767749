"""The executor service's shell: it follows the servers (services/executor/servers.py: their
run PUBs on node, tag and `all` topics, their dispatchers, the leader their raft names), sending
to the dispatcher the core names. It steps the core (services/executor/core.py) with what arrives and carries out
its Ready: the store, the children (forked at the start, or ahead on the fork-ahead thread and
released at the start), acks, output and results. It serves full output on its ROUTER and
drains running jobs on TERM."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import zmq

from common import aclview, config, errors, messages as m, wire
from common.disk import FreeSpace
from common.loop import Loop
from services.executor import plans, priority, processors
from services.executor.child import ChildProcess, can_hold
from services.executor.core import Executor, carry_out
from services.executor.forking import ForkAhead
from services.executor.servers import Servers
from services.executor.store import ExecutionStore

log = logging.getLogger(__name__)

EXIT_POLL_MS = 20       # after EOF, how often to look for the exit status
MEMORY_CHECK_MS = 1000  # Dkron samples the tree's RSS once a second too
MAX_OUTPUT_REPLY = 1 << 20


@dataclass
class Child:
    """A launched run's process, and the timer sampling its memory (when it has a limit)."""
    process: ChildProcess
    job: str
    sampler: object = None


@dataclass
class Held:
    """A child forked ahead for a run waiting for its start time."""
    process: ChildProcess
    plan: plans.Plan
    fork_ms: int


class ExecutorShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        self.store = ExecutionStore(os.path.join(conf.node.data_dir, "executor.db"))
        self.calls = aclview.CallCheck(loop)
        self.offered = plans.available(conf.executor.executors)
        self.job_env = plans.job_environment(conf.executor.env_passthrough)
        missing = set(conf.executor.executors) - set(self.offered)
        if missing:
            log.warning("configured executors not installed: %s", ", ".join(sorted(missing)))
        self.core = Executor(self.name, conf.executor, now=loop.now(), started=self.store.started_ids(),
                             unconfirmed=self.store.unconfirmed(), orphans=self.store.orphans())
        self.processors = processors.Processors(conf, loop.after)
        self.children = {}  # execution id → Child of a launched run
        self.held = {}      # execution id → Held
        self.forking = ForkAhead(loop, self.forked)
        self.stopping = False
        topics = [wire.topic("node", self.name), wire.topic("all")]
        topics += [wire.topic("tag", f"{k}={v}") for k, v in conf.node.tags.items()]
        self.servers = Servers(self, topics)
        self.output_router = loop.socket(zmq.ROUTER, "output", on=self.on_output,
                                         bind=config.endpoints(conf, "executor", "output", conf.executor.output_port))
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.every(conf.gossip.refresh_ms, self.refresh_members)
        loop.every(60_000, self.store.prune)
        # Checked after every message, not once a loop round: a waiting run starts at its time.
        loop.follow(self.core.deadline, self.tick, urgent=True)
        loop.on_term = self.drain
        loop.idle.append(self.carry)
        self.free_space = FreeSpace(conf.node.data_dir, conf.node.min_free_bytes)  # shown, not enforced: see README
        loop.status = self.status
        self.carry()  # what a previous process left: orphans forgotten or recorded lost
        self.refresh_members()
        loop.ready = True

    # -- servers ---------------------------------------------------------------------------

    def refresh_members(self):
        self.gossip.call(m.MemberList(), self._got_members)

    def _got_members(self, reply, err):
        if err is None:
            for member in reply.members:
                self.servers.follow(member)

    def on_members(self, env):
        self.servers.follow(env.msg.member)

    def send(self, msg):
        self.servers.send(msg)

    # -- stepping the core, carrying out its Ready -----------------------------------------

    def on_run(self, env):
        msg = env.msg
        if isinstance(msg, m.KeyBookNotice):
            return self.servers.on_book(msg)
        if isinstance(msg, m.DispatcherHeartbeat) and not self.servers.named_leader(msg):
            return
        self.core.step(msg, self.loop.now())

    def tick(self, now):
        self.core.tick(now)
        self.carry()

    def carry(self):
        while True:
            rd = self.core.ready()
            if rd.empty():
                break
            carry_out(rd, persist=self.persist, launch=self.launch, ack=self.send, kill=self.kill,
                      discard=self.discard, fork=self.fork, send=self.send_result, process=self.process,
                      heartbeat=self.heartbeat)
            self.core.advance(rd)
        if self.loop.draining and not self.core.runs and not self.stopping:
            self.stopping = True  # results of the last runs go out before the loop ends
            self.loop.after(self.conf.executor.result_retry_ms, lambda: self.loop.stop(0))

    def persist(self, starts, forgets, finishes, confirms, commit):
        for execution in starts:
            self.store.start(execution)
        for execution_id in forgets:
            self.store.forget(execution_id)
        for done in finishes:
            self.store.finish(done.record, done.head, done.size)
            # A failed end is info; a start or a success is debug (its record says all of it):
            # at a thousand runs a second, info lines per run stalled the loop most under load.
            log.log(logging.DEBUG if done.record["status"] == "success" else logging.INFO,
                    "finished id=%s status=%s exit_code=%s", done.record["id"], done.record["status"],
                    done.record.get("exit_code"))
        for execution_id in confirms:
            self.store.confirm(execution_id)
        if commit:
            self.store.commit()

    def launch(self, run):
        execution_id, started_at = run.execution["id"], self.loop.now()
        held = self.held.pop(execution_id, None)
        if held is not None and held.process.poll() is not None:
            held.process.discard()  # it died while held: fork again
            held = None
        try:
            if held is not None:
                plan, process = held.plan, held.process
                process.release()
            else:
                plan = plans.plan(self.offered, run.job, self.job_env, self.conf.executor.run_as, self.forbidden_uid())
                process = ChildProcess(plan)
        except (errors.Error, OSError, ValueError) as exc:
            log.warning("execution failed to start id=%s: %s", execution_id, exc)
            return self.core.launch_failed(execution_id, exc, self.loop.now())
        # The fork's own cost, apart from the lateness: paid before the tick when forked ahead.
        self.core.launched(execution_id, started_at, spawn_ms=held.fork_ms if held else self.loop.now() - started_at,
                           forked_ahead=held is not None, timeout_ms=plan.timeout_ms, mem_limit=plan.mem_limit)
        child = self.children[execution_id] = Child(process, run.job["name"])
        if plan.mem_limit:
            child.sampler = self.loop.every(MEMORY_CHECK_MS, lambda: self.core.measured(execution_id, process.rss()))
        log.debug("started id=%s job=%s pid=%d", execution_id, run.job["name"], process.pid)
        self.loop.add_fd(process.fd, lambda fd: self.on_child_output(execution_id, child))

    def forbidden_uid(self):
        """With the ACL on, the owner of the run dir, as whom no job may run (its ipc sockets
        would let the job command the node as the node itself)."""
        if not self.calls.views.current().enabled or not self.calls.views.known():
            return None
        return os.stat(self.conf.node.run_dir).st_uid

    def heartbeat(self, ids):
        self.send(m.ExecHeartbeat(node=self.name, ids=ids))

    def kill(self, run):
        child = self.children.get(run.execution["id"])
        if child is not None:
            log.info("killing id=%s: %s", run.execution["id"], run.reason)
            child.process.kill()

    def discard(self, execution_id):
        held = self.held.pop(execution_id, None)
        if held is not None:
            held.process.discard()

    def fork(self, execution, job):
        try:
            plan = plans.plan(self.offered, job, self.job_env, self.conf.executor.run_as, self.forbidden_uid())
        except (errors.Error, OSError, ValueError):
            return self.core.forked(execution["id"], False)  # the start reports it
        if not can_hold(plan):
            return self.core.forked(execution["id"], False)
        self.forking.fork(execution["id"], plan)

    def forked(self, key, plan, process, fork_ms):
        if process is not None:
            self.held[key] = Held(process, plan, fork_ms)
        self.core.forked(key, process is not None)

    def process(self, done):
        self.core.processed(done, self.processors.run(done.job, done.record, done.head))

    def send_result(self, record):
        peer = self.servers.dispatcher()
        if peer is None:
            return self.core.result_failed(record["id"])

        def answered(reply, err):
            if err is None:
                self.core.step(reply, self.loop.now())
            else:
                log.info("result not confirmed id=%s: %s (will re-send)", record["id"], err)
                self.core.result_failed(record["id"])

        peer.call(m.ExecResult(execution=record), answered)

    # -- children --------------------------------------------------------------------------

    def on_child_output(self, execution_id, child):
        data = child.process.read()
        if data:
            offset = self.core.output(execution_id, data)
            self.send(m.ExecOutput(id=execution_id, job=child.job, offset=offset, data=data))
        elif child.process.eof:
            self.loop.remove_fd(child.process.fd)
            self.reap(execution_id, child)

    def reap(self, execution_id, child):
        code = child.process.poll()
        if code is None:
            self.loop.after(EXIT_POLL_MS, lambda: self.reap(execution_id, child))
            return
        if child.sampler is not None:
            child.sampler.cancel()
        del self.children[execution_id]
        self.core.exited(execution_id, code, self.loop.now())

    # -- full output -----------------------------------------------------------------------

    def on_output(self, env):
        if not isinstance(env.msg, m.OutputGet):
            raise errors.BadRequest(f"the executor output port does not answer {env.type}")
        execution_id, offset = env.msg.id, max(0, env.msg.offset)
        run = self.core.runs.get(execution_id)
        # Judged by the job the execution ran for: unknown here, it is judged as no job at all.
        self.calls.require(env, job=run.execution["job"] if run is not None else self.store.job_of(execution_id) or "")
        if run is not None:
            data, size, finished = run.output.read(offset, MAX_OUTPUT_REPLY), run.output.size, False
        else:
            stored = self.store.output(execution_id)
            if stored is None:
                raise errors.NotFound(f"no output of execution {execution_id!r} on {self.name}")
            data, size, finished = stored[0][offset:offset + MAX_OUTPUT_REPLY], stored[1], True
        self.loop.reply(self.output_router, env, m.OutputChunk(data=data, size=size, finished=finished))

    # -- shutdown --------------------------------------------------------------------------

    def drain(self):
        self.core.drain(self.loop.now())
        self.carry()  # the interrupted records: stored and sent before the loop ends
        if not self.core.runs:
            return self.loop.stop(0)
        log.info("draining running=%d budget_ms=%d", len(self.core.runs), self.conf.executor.drain_ms)
        self.loop.after(self.conf.executor.drain_ms, lambda: self.core.interrupt(self.loop.now()))

    def status(self):
        return {"running": len(self.core.runs), "queued": len(self.core.queue), "waiting": len(self.core.waiting),
                "held": len(self.held), "nice": os.getpriority(os.PRIO_PROCESS, 0),
                **self.servers.status(),
                "executors": sorted(self.offered),
                "disk": {"free_bytes": self.free_space.bytes_free(), "low": self.free_space.low()},
                "sqlite": {"executor.db": {
                    "journal_mode": self.store.db.execute("PRAGMA journal_mode").fetchone()[0],
                    "synchronous": self.store.db.execute("PRAGMA synchronous").fetchone()[0]}}}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-executor")
    loop = Loop(conf, service="executor")
    priority.allow_open_files()  # every held child keeps two pipes open here
    priority.take(conf.executor.nice)  # before the fork-ahead thread, which starts at the normal niceness
    shell = loop.start(lambda: ExecutorShell(conf, loop))
    code = loop.run()
    shell.store.close()  # what a last round left uncommitted
    sys.exit(code)
