"""The dispatcher service's shell. Ticks arrive from the local scheduler; each is claimed
through Raft before its runs are published on node topics (salt's publish pattern). Executors
answer over ROUTER/DEALER: acks, output (republished for live tails) and results, which are
confirmed to the executor only once committed, so a result is never lost to a failover."""

from __future__ import annotations

import logging
import random
import sys

import zmq

from common import config, errors, messages as m, wire
from common.loop import Loop
from services.dispatcher.core import Dispatcher

log = logging.getLogger(__name__)

MANUAL_RUNS_KEPT = 1000


class DispatcherShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        dc = conf.dispatcher
        self.core = Dispatcher(self.name, rng=random.Random(), ack_timeout_ms=dc.ack_timeout_ms,
                               run_attempts=dc.run_attempts)
        self.active, self.term = False, 0
        self.confirm = {}  # execution id → executor requests waiting for the commit of their result
        self.manual_runs = {}  # request id → executions it started, so a retried request starts none
        self.run_pub = loop.socket(zmq.PUB, "run", bind=config.endpoints(conf, "dispatcher", "run", dc.run_port))
        self.output_pub = loop.socket(zmq.PUB, "output",
                                      bind=config.endpoints(conf, "dispatcher", "output", dc.output_port))
        self.result_router = loop.socket(zmq.ROUTER, "result", on=self.on_result,
                                         bind=config.endpoints(conf, "dispatcher", "result", dc.result_port))
        self.tick_router = loop.socket(zmq.ROUTER, "tick", on=self.on_tick,
                                       bind=[config.ipc(conf, "dispatcher", "tick")])
        self.raft = loop.peer("raft", [config.ipc(conf, "raft", "client")])
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        loop.socket(zmq.SUB, "state", on=self.on_state, connect=[config.ipc(conf, "raft", "state")],
                    subscribe=[wire.topic("leader")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.every(dc.heartbeat_ms, self.heartbeat)
        loop.every(dc.members_refresh_ms, self.refresh_members)
        loop.status = self.status
        self.refresh_members()
        loop.ready = True

    # -- leadership and membership ---------------------------------------------------------

    def on_state(self, env):
        msg = env.msg
        active = msg.ready and msg.leader == msg.node
        if active != self.active or msg.term != self.term:
            log.info("dispatcher active=%s term=%d", active, msg.term)
        self.active, self.term = active, msg.term

    def heartbeat(self):
        if self.active:
            self.loop.send(self.run_pub, m.DispatcherHeartbeat(node=self.name, term=self.term), topic=wire.topic("all"))

    def refresh_members(self):
        self.gossip.call(m.MemberList(), self._got_members)

    def _got_members(self, result, err):
        if err is None:
            self.core.members = result["members"]

    def on_members(self, env):
        member = env.msg.member
        others = [x for x in self.core.members if x["name"] != member["name"]]
        self.core.members = others if env.msg.kind == "reap" else others + [member]

    # -- ticks and manual runs -------------------------------------------------------------

    def on_tick(self, env):
        if not isinstance(env.msg, m.TickFire):
            raise errors.BadRequest(f"the tick socket does not take {env.type}")
        if not self.active:
            log.warning("tick while not the active dispatcher job=%s", env.msg.job["name"])
            return
        self.claim(env.msg.job, env.msg.scheduled_at)

    def claim(self, job, scheduled_at, *, manual=False, env=None, request=""):
        executions = self.core.plan(job, scheduled_at, self.loop.now(), manual=manual)
        if not executions:
            log.warning("no alive node matches job=%s executor=%s tags=%s", job["name"], job["executor"], job["tags"])
            if env is not None:
                self.loop.reply_error(self.result_router, env, errors.Conflict(
                    f"no alive node offers executor {job['executor']!r} with tags {job['tags'] or {}}"))
            return
        claim = m.TickClaim(job=job["name"], scheduled_at=scheduled_at, group=executions[0]["group"],
                            term=self.term, executions=executions, manual=manual)

        def claimed(result, err):
            if err is not None:
                log.warning("claim refused job=%s scheduled_at=%d: %s", job["name"], scheduled_at, err)
                if env is not None:
                    self.loop.reply_error(self.result_router, env, err)
                return
            self.core.claimed(job, result["executions"], self.loop.now())
            if request:
                self.manual_runs[request] = result["executions"]
                while len(self.manual_runs) > MANUAL_RUNS_KEPT:
                    self.manual_runs.pop(next(iter(self.manual_runs)))
            if env is not None:
                self.loop.reply(self.result_router, env, {"executions": result["executions"]})

        self.raft.call(claim, claimed)

    def run_now(self, env):
        request = env.msg.request
        if request in self.manual_runs:
            return self.loop.reply(self.result_router, env, {"executions": self.manual_runs[request]})

        def got(result, err):
            if err is not None:
                return self.loop.reply_error(self.result_router, env, err)
            self.claim(result["job"], self.loop.now(), manual=True, env=env, request=request)

        self.raft.call(m.JobGet(name=env.msg.name, stale=True), got)

    # -- executors and clients -------------------------------------------------------------

    def on_result(self, env):
        msg = env.msg
        if isinstance(msg, m.ExecOutput):
            self.core.output(msg.id, msg.data)
            self.loop.send(self.output_pub, msg, topic=wire.output_topic(msg.job, msg.id))
            return
        if not self.active:
            raise errors.NotLeader(f"{self.name} is not the active dispatcher")
        if isinstance(msg, m.RunAck):
            self.core.acked(msg.id, msg.started_at)
        elif isinstance(msg, m.ExecResult):
            self.confirm.setdefault(msg.execution["id"], []).append(env)
            self.core.finished(msg.execution)
        elif isinstance(msg, m.JobRun):
            self.run_now(env)
        elif isinstance(msg, m.BusyList):
            self.loop.reply(self.result_router, env, {"executions": self.core.busy()})
        else:
            raise errors.BadRequest(f"the dispatcher does not answer {env.type}")

    def process(self):
        rd = self.core.ready()
        if rd.empty():
            return
        for node, execution, job in rd.publish:
            self.loop.send(self.run_pub, m.RunStart(execution=execution, job=job), topic=wire.topic("node", node))
        for kind, execution in rd.record:
            if kind == "exec.ack":
                self.raft.call(m.ExecAck(job=execution["job"], id=execution["id"], started_at=execution["started_at"],
                                         term=self.term), self._logged("ack", execution))
            else:
                self.raft.call(m.ExecFinish(execution=execution, term=self.term), self._recorded(execution))
        self.core.advance(rd)

    def _logged(self, what, execution):
        def done(result, err):
            if err is not None:
                log.warning("recording %s failed id=%s: %s", what, execution["id"], err)
        return done

    def _recorded(self, execution):
        def done(result, err):
            waiting = self.confirm.pop(execution["id"], [])
            if err is not None:
                # The executor re-sends its result; it is recorded on a later attempt.
                log.warning("recording result failed id=%s: %s", execution["id"], err)
                return
            for env in waiting:
                self.loop.reply(self.result_router, env, {"id": execution["id"]})
            record = result["execution"]
            self.loop.send(self.output_pub, m.ExecResult(execution=record),
                           topic=wire.output_topic(record["job"], record["id"]))
        return done

    def status(self):
        return {"role": "leader" if self.active else "follower", "term": self.term,
                "running": len(self.core.runs), "members": len(self.core.members)}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-dispatcher")
    loop = Loop(conf, service="dispatcher")
    DispatcherShell(conf, loop)
    sys.exit(loop.run())
