"""The dispatcher service's shell. It steps the core (services/dispatcher/core.py) with what
arrives — the raft state feed, gossip's members, ticks from the local scheduler, executors'
acks, heartbeats, output and results, clients' requests, and Raft's replies — and carries out
its Ready: runs published on node or tag topics (salt's publish pattern), requests to Raft,
answers, output republished for live tails, notifications and metrics."""

from __future__ import annotations

import logging
import random
import sys

import zmq

from common import aclview, config, curve, errors, messages as m, metrics, secrets, wire
from common.loop import Loop, mono_ms
from services.dispatcher.core import Dispatcher, carry_out
from services.dispatcher.delivery import Notifier

log = logging.getLogger(__name__)

FEED_SILENCE_MS = 1500  # as the scheduler: three missed beats of the raft state feed
BOOK_RESEND_MS = 5000   # the key book goes to agents when it changes, and this often besides
TICK_TYPES = (m.TickFire, m.TickSkip)
EXECUTOR_TYPES = (m.ExecOutput, m.RunAck, m.ExecHeartbeat, m.ExecResult)
RESULT_TYPES = EXECUTOR_TYPES + (m.JobRun, m.ExecKill, m.BusyList)


class DispatcherShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        dc = conf.dispatcher
        self.core = Dispatcher(self.name, rng=random.Random(), ack_timeout_ms=dc.ack_timeout_ms,
                               run_attempts=dc.run_attempts, lease_ms=dc.lease_ms, heartbeat_ms=dc.heartbeat_ms,
                               members_refresh_ms=dc.members_refresh_ms, notify=conf.notify, now=loop.now())
        self.heard_at = 0
        self.book_sent = ((None, None), 0)  # ((book, acl view), when) last sent to agents
        self.calls = aclview.CallCheck(loop)
        self.run_pub = loop.socket(zmq.PUB, "run", bind=config.endpoints(conf, "dispatcher", "run", dc.run_port),
                                   who=curve.NODE_KINDS)
        self.output_pub = loop.socket(zmq.PUB, "output",
                                      bind=config.endpoints(conf, "dispatcher", "output", dc.output_port))
        self.result_router = loop.socket(zmq.ROUTER, "result", on=self.on_result,
                                         bind=config.endpoints(conf, "dispatcher", "result", dc.result_port))
        self.tick_router = loop.socket(zmq.ROUTER, "tick", on=self.on_tick,
                                       bind=[config.ipc(conf, "dispatcher", "tick")])
        self.raft = loop.peer("raft", [config.ipc(conf, "raft", "client")])
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        self.notifier = Notifier(conf, loop, lambda delivery, error: self.core.sent(delivery, error, loop.now()))
        loop.socket(zmq.SUB, "state", on=self.on_state, connect=[config.ipc(conf, "raft", "state")],
                    subscribe=[wire.topic("leader")])
        loop.socket(zmq.SUB, "members", on=self.step, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.carry)
        loop.every(FEED_SILENCE_MS // 3, self.check_silence)
        for spec in (metrics.JOB_EXECUTIONS, metrics.TICKS_SKIPPED, metrics.SCHEDULER_LATENESS):
            loop.metrics.add(spec)  # exported from the start
        loop.status = self.status
        loop.ready = True

    # -- stepping the core -----------------------------------------------------------------

    def step(self, env, reply=None):
        self.core.step(env.msg, self.loop.now(), reply)

    def on_state(self, env):
        self.heard_at = mono_ms()
        self.step(env)

    def check_silence(self):
        """The raft feed beats every half second; a dispatcher that stops hearing it (its raft
        process died or stalled) must stop acting as the leader's: silence says no leader here."""
        if self.core.active and mono_ms() - self.heard_at > FEED_SILENCE_MS:
            log.warning("raft state feed silent for %d ms: stopping", mono_ms() - self.heard_at)
            self.core.step(m.RaftLeader(node=self.name, leader="", term=self.core.term, ready=False, applied=0),
                           self.loop.now())

    def on_tick(self, env):
        if not isinstance(env.msg, TICK_TYPES):
            raise errors.BadRequest(f"the tick socket does not take {env.type}")
        self.step(env, reply=(self.tick_router, env))

    def on_result(self, env):
        if not isinstance(env.msg, RESULT_TYPES):
            raise errors.BadRequest(f"the dispatcher does not answer {env.type}")
        if isinstance(env.msg, EXECUTOR_TYPES) and not self.from_its_node(env):
            # A node's key speaks for that node's executions only: a forged result could start
            # dependent jobs, forged output would reach live tails.
            self.loop.dropped["not_its_node"] += 1
            raise errors.BadRequest(f"{env.type} from {env.peer or self.name}: not the node of that execution")
        if isinstance(env.msg, (m.JobRun, m.ExecKill, m.BusyList)):
            self.calls.require(env)  # a client's verbs, judged by the ACL
        if isinstance(env.msg, m.ExecOutput):  # forwarded as it comes, for live tails
            self.loop.send(self.output_pub, env.msg, topic=wire.output_topic(env.msg.job, env.msg.id))
        self.step(env, reply=(self.result_router, env))

    def from_its_node(self, env):
        if self.conf.wire.plain_tcp:
            return True  # the benchmark baseline: no key tells who sent it
        node, msg = env.peer or self.name, env.msg  # over ipc: this node's own executor
        if isinstance(msg, m.ExecResult):
            return msg.execution.get("node") == node
        if isinstance(msg, (m.RunAck, m.ExecHeartbeat)):
            return msg.node == node
        run = self.core.runs.get(msg.id)
        return run is not None and run.execution["node"] == node

    # -- carrying out the core's Ready -----------------------------------------------------

    def carry(self):
        rd = self.core.ready()
        if rd.empty():
            return
        carry_out(rd, publish=self.publish, kill=self.kill, call=self.call, reply=self.reply,
                  result=self.result, send=self.notifier.send, skipped=self.skipped, late=self.late,
                  recorded=self.recorded, beat=self.beat)
        self.core.advance(rd)

    def publish(self, executions, job, topic):
        self.loop.send(self.run_pub, m.RunStart(executions=executions, job=job), topic=wire.topic(*topic))

    def kill(self, execution, reason):
        self.loop.send(self.run_pub, m.RunKill(id=execution["id"], node=execution["node"], reason=reason),
                       topic=wire.topic("node", execution["node"]))

    def call(self, call):
        peer = self.gossip if isinstance(call.msg, m.MemberList) else self.raft
        peer.call(call.msg, lambda reply, err: self.core.answered(call, reply, err, self.loop.now()))

    def reply(self, asked, answer):
        sock, env = asked
        readable = self.calls.readable(env) if isinstance(env.msg, m.BusyList) else None
        if readable is not None and isinstance(answer, m.Executions):  # only the runs of jobs it may read
            answer = m.Executions(executions=[x for x in answer.executions if readable(x["job"])])
        if isinstance(answer, m.RunStarted) and answer.job:  # a face shows it: secret values redacted
            answer = m.RunStarted(executions=answer.executions, skipped=answer.skipped,
                                  job=secrets.redact(answer.job, self.conf.security.secret_keys))
        if isinstance(answer, errors.Error):
            self.loop.reply_error(sock, env, answer)
        else:
            self.loop.reply(sock, env, answer)

    def result(self, record):
        self.loop.send(self.output_pub, m.ExecResult(execution=record), topic=wire.output_topic(record["job"], record["id"]))

    def skipped(self, skips):
        for row in skips.rows:
            self.loop.metrics.add(metrics.TICKS_SKIPPED).inc(job=skips.job, reason=metrics.skip_reason(row["reason"]))

    def late(self, ms):
        self.loop.metrics.add(metrics.SCHEDULER_LATENESS).observe(ms / 1000)

    def recorded(self, job, status):
        self.loop.metrics.add(metrics.JOB_EXECUTIONS).inc(job=job, status=status)

    def beat(self, term):
        self.loop.send(self.run_pub, m.DispatcherHeartbeat(node=self.name, term=term), topic=wire.topic("all"))
        (book, view), sent_at = self.book_sent
        current = (self.loop.gate.book, self.calls.views.current())
        if current != (book, view) or mono_ms() - sent_at >= BOOK_RESEND_MS:
            book, view = current
            self.loop.send(self.run_pub, m.KeyBookNotice(keys=book.to_plain()["keys"], acl=aclview.for_agents(
                {"enabled": view.enabled, "tokens": view.tokens,
                 "policies": {n: {"rules": r} for n, r in view.policies.items()}})), topic=wire.topic("all"))
            self.book_sent = (current, mono_ms())

    def status(self):
        return {"role": "leader" if self.core.active else "follower", "term": self.core.term,
                "running": len(self.core.runs), "members": len(self.core.members),
                "alive": sum(x["status"] == "alive" for x in self.core.members),
                "claims_waiting": sum(len(q) for q in self.core.claims.values()),
                "retries_pending": len(self.core.retries), "effects_pending": len(self.core.effects)}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-dispatcher")
    loop = Loop(conf, service="dispatcher")
    loop.start(lambda: DispatcherShell(conf, loop))
    sys.exit(loop.run())
