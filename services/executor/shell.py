"""The executor service's shell: one SUB to every server's run PUB (node, tag and `all`
topics), one DEALER per server's dispatcher, sending to the one with the highest term heard.
Starts each execution id once (recorded before the ack), streams output, re-sends results
until confirmed, serves full output on its ROUTER, and drains running jobs on TERM."""

from __future__ import annotations

import base64
import logging
import os
import sys
from dataclasses import dataclass

import zmq

from common import config, errors, messages as m, schedule, wire
from common.loop import Loop
from services.executor import core
from services.executor.process import ShellProcess
from services.executor.store import ExecutionStore

log = logging.getLogger(__name__)

EXIT_POLL_MS = 20       # after EOF, how often to look for the exit status
MAX_OUTPUT_REPLY = 1 << 20


@dataclass
class Running:
    execution: dict
    job: dict
    output: core.Output
    started_at: int
    process: ShellProcess | None = None
    reason: str = ""
    status: str = ""
    timer: object = None


class Server:
    def __init__(self, name, peer):
        self.name, self.peer, self.term = name, peer, -1


class ExecutorShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        self.store = ExecutionStore(os.path.join(conf.node.data_dir, "executor.db"))
        self.started = self.store.started_ids()
        self.running = {}
        self.sending = set()
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
        loop.every(60_000, self.store.prune)
        loop.on_term = self.drain
        loop.status = self.status
        for execution in self.store.orphans():
            self.record_lost(execution)
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
        """The dispatcher with the highest term heard: the one that leads now."""
        heard = [s for s in self.servers.values() if s.term >= 0]
        if heard:
            return max(heard, key=lambda s: s.term).peer
        return next(iter(self.servers.values())).peer if len(self.servers) == 1 else None

    def send(self, msg):
        peer = self.dispatcher()
        if peer is not None:
            peer.send(msg)

    # -- runs ------------------------------------------------------------------------------

    def on_run(self, env):
        msg = env.msg
        if isinstance(msg, m.DispatcherHeartbeat):
            server = self.servers.get(msg.node)
            if server is not None:
                server.term = max(server.term, msg.term)
            return
        if not isinstance(msg, m.RunStart):
            return
        execution = msg.execution
        kind = core.classify(execution, self.name, self.started)
        if kind == core.NOT_MINE:
            return
        if kind == core.DUPLICATE:
            run = self.running.get(execution["id"])
            if run is not None:
                self.ack(run)
            else:
                record = self.store.record(execution["id"])
                if record:
                    self.send_result(record)
            return
        if self.loop.draining:
            return  # not acked: the dispatcher re-sends it, then fails it with a reason
        self.start(execution, msg.job)

    def start(self, execution, job):
        self.store.start(execution)  # durable before the ack: a re-sent run never starts twice
        self.started.add(execution["id"])
        cfg = job.get("executor_config") or {}
        output = core.Output(max_bytes=self.conf.executor.output_max_bytes,
                             tail_bytes=self.conf.executor.output_tail_bytes)
        run = Running(execution, job, output, self.loop.now())
        self.running[execution["id"]] = run
        self.ack(run)
        try:
            if job["executor"] != "shell":
                raise errors.BadRequest(f"executor {job['executor']!r} is not available on {self.name}")
            payload = base64.b64decode(cfg["payload"], validate=True) if cfg.get("payload") else None
            run.process = ShellProcess(core.shell_command(cfg), env=core.shell_env(cfg, job["name"], os.environ),
                                       cwd=cfg.get("cwd"), stdin_data=payload)
            if cfg.get("timeout"):
                timeout = schedule.parse_duration(cfg["timeout"])
                run.timer = self.loop.after(timeout, lambda: self.kill(
                    run, f"shell: job execution time exceeding defined timeout {cfg['timeout']}. Job was killed", "failed"))
        except (errors.Error, OSError, ValueError) as exc:
            log.warning("execution failed to start id=%s: %s", execution["id"], exc)
            return self.finish(run, None, reason=f"failed to start: {exc}")
        log.info("started id=%s job=%s pid=%d", execution["id"], job["name"], run.process.proc.pid)
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

    def kill(self, run, reason, status):
        if run.process is not None and run.execution["id"] in self.running:
            log.info("killing id=%s: %s", run.execution["id"], reason)
            run.reason, run.status = reason, status
            run.process.kill()

    def finish(self, run, exit_code, reason=""):
        if run.timer is not None:
            run.timer.cancel()
        record = core.final_record(run.execution, started_at=run.started_at, finished_at=self.loop.now(),
                                   exit_code=exit_code, output=run.output, reason=reason or run.reason)
        if run.status:
            record["status"] = run.status
        self.store.finish(record, run.output.head, run.output.size)
        del self.running[run.execution["id"]]
        log.info("finished id=%s status=%s exit_code=%s", record["id"], record["status"], exit_code)
        self.send_result(record)
        if self.loop.draining and not self.running:
            self.loop.after(self.conf.executor.result_retry_ms, lambda: self.loop.stop(0))

    def record_lost(self, execution):
        record = dict(execution, status="lost", success=False, finished_at=self.loop.now(),
                      reason="the executor stopped while the execution ran")
        self.store.finish(record, b"", 0)
        self.send_result(record)

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
        if not self.running:
            return self.loop.stop(0)
        log.info("draining running=%d budget_ms=%d", len(self.running), self.conf.executor.drain_ms)
        self.loop.after(self.conf.executor.drain_ms, self.interrupt_all)

    def interrupt_all(self):
        for run in list(self.running.values()):
            self.kill(run, "interrupted: the executor was stopped", "interrupted")

    def status(self):
        return {"running": len(self.running), "servers": sorted(self.servers),
                "sqlite": {"executor.db": {
                    "journal_mode": self.store.db.execute("PRAGMA journal_mode").fetchone()[0],
                    "synchronous": self.store.db.execute("PRAGMA synchronous").fetchone()[0]}}}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-executor")
    loop = Loop(conf, service="executor")
    ExecutorShell(conf, loop)
    sys.exit(loop.run())
