"""The raft service's shell: peer transport over ZeroMQ, the SQLite log, the peewee state
machine, the client port that serves state verbs (writes proposed, reads by ReadIndex), and
the state PUB that tells the scheduler and dispatcher who leads and which jobs changed."""

from __future__ import annotations

import logging
import os
import random
import sys

import zmq

from common import config, errors, messages as m, models, wire
from common.loop import Loop
from services.raft.core import Config, LEADER, Raft, carry_out
from services.raft.fsm import StateMachine
from services.raft.store import LogStore

log = logging.getLogger(__name__)

LEADER_TOPIC = wire.topic("leader")
JOB_TOPIC = wire.topic("job")
FEED_HEARTBEAT_MS = 500  # subscribers treat a second of silence as "no leader here"
MAX_READY_ROUNDS = 4


class RaftShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        data = conf.node.data_dir
        self.store = LogStore(os.path.join(data, "raft-log.db"))
        self.fsm = StateMachine(os.path.join(data, "state.db"))
        hard_state, entries = self.store.load()
        rc = conf.raft
        self.core = Raft(Config(self.name, [self.name], rc.tick_ms, rc.heartbeat_ticks, rc.election_ticks,
                                rc.max_batch_entries),
                         rng=random.Random(), hard_state=hard_state, entries=entries, now=loop.now())
        self.core.applied = self.fsm.applied  # entries up to here are already in the state machine
        self.pending = {}     # request key → (env, timer): proposals waiting for their apply
        self.reads = {}       # ReadIndex ctx → [(env, answer)]
        self.waiting = []     # (index, env, answer): reads waiting for the apply to catch up
        self.members = {}
        self.was_ready = False
        self.peer_router = loop.socket(zmq.ROUTER, "peer", on=self.on_peer,
                                       bind=config.endpoints(conf, "raft", "peer", rc.peer_port))
        self.client_router = loop.socket(zmq.ROUTER, "client", on=self.on_client,
                                         bind=config.endpoints(conf, "raft", "client", rc.client_port))
        self.state_pub = loop.socket(zmq.PUB, "state", bind=config.endpoints(conf, "raft", "state", rc.state_port))
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        self.peers = {}  # peer name → DEALER; filled by cluster membership (Raft issue)
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.every(FEED_HEARTBEAT_MS, self.publish_leader)
        loop.every(conf.gossip.refresh_ms * 2, self.refresh_members)
        loop.status = self.status
        self.refresh_members()
        loop.ready = True

    # -- carrying out the core's Ready -----------------------------------------------------

    def process(self):
        for _ in range(MAX_READY_ROUNDS):
            rd = self.core.ready()
            if rd.empty():
                return
            carry_out(rd, persist=self.store.save, send=self.send_peer, apply=self.apply, read=self.serve_read)
            self.core.advance(rd)
            if rd.soft_state:
                log.info("raft state role=%s leader=%s term=%d", *rd.soft_state)
            self.publish_leader_if_changed()

    def send_peer(self, to, msg, term):
        sock = self.peers.get(to)
        if sock is not None:
            self.loop.send(sock, msg, term=term)

    def apply(self, entries):
        batch = []
        for entry in entries:
            command = wire.unpack(entry.data) if entry.data else None
            batch.append((entry.index, entry.term, command))
        results = self.fsm.apply(batch)
        for (_, _, command), result in zip(batch, results):
            if command and command.get("req") in self.pending:
                env, timer = self.pending.pop(command["req"])
                timer.cancel()
                self.answer(env, result)
        for seq, name, job in self.fsm.changes:
            self.loop.send(self.state_pub, m.JobChanged(name=name, job=job, index=seq), topic=JOB_TOPIC)
        still = []
        for index, env, answer in self.waiting:
            if self.fsm.applied >= index:
                self._answer_read(env, answer)
            else:
                still.append((index, env, answer))
        self.waiting = still

    def serve_read(self, ctx, index):
        for env, answer in self.reads.pop(ctx, []):
            if self.fsm.applied >= index:
                self._answer_read(env, answer)
            else:
                self.waiting.append((index, env, answer))

    def _answer_read(self, env, answer):
        try:
            self.loop.reply(self.client_router, env, answer())
        except errors.Error as err:
            self.loop.reply_error(self.client_router, env, err)

    def answer(self, env, result):
        if result and "error" in result:
            self.loop.reply_error(self.client_router, env, errors.Error.from_code(result["error"], result["message"]))
        else:
            self.loop.reply(self.client_router, env, result)

    # -- leadership feed -------------------------------------------------------------------

    def leader_ready(self):
        """Leader and has applied an entry of its own term: its view of the state is complete."""
        return self.core.role == LEADER and self.fsm.applied >= self.core.leader_start > 0

    def publish_leader(self):
        self.loop.send(self.state_pub, m.RaftLeader(node=self.name, leader=self.core.leader, term=self.core.term,
                                                    ready=self.leader_ready(), applied=self.fsm.applied),
                       topic=LEADER_TOPIC)

    def publish_leader_if_changed(self):
        ready = self.leader_ready()
        if ready != self.was_ready:
            self.was_ready = ready
            log.info("leader ready=%s term=%d", ready, self.core.term)
            self.publish_leader()

    # -- requests --------------------------------------------------------------------------

    def on_peer(self, env):
        self.core.step(env, self.loop.now())

    def on_client(self, env):
        msg = env.msg
        if isinstance(msg, m.NodeInfo):
            return self.loop.reply(self.client_router, env, self.node_info())
        if isinstance(msg, m.LeaderGet):
            return self.loop.reply(self.client_router, env, self.leader_info())
        if isinstance(msg, m.JobPut):
            job = models.validate_job(msg.job, now=self.loop.now())
            self.check_executor(job)
            return self.propose(env, "job.put", job=job)
        if isinstance(msg, m.JobDelete):
            return self.propose(env, "job.delete", name=msg.name)
        if isinstance(msg, m.TickClaim):
            return self.propose(env, "tick.claim", job=msg.job, scheduled_at=msg.scheduled_at, group=msg.group,
                                term=msg.term, executions=msg.executions, manual=msg.manual)
        if isinstance(msg, m.ExecAck):
            return self.propose(env, "exec.ack", job=msg.job, id=msg.id, started_at=msg.started_at)
        if isinstance(msg, m.ExecFinish):
            return self.propose(env, "exec.finish", execution=models.check_execution(msg.execution))
        if isinstance(msg, m.JobGet):
            return self.read(env, msg.stale, lambda: {"job": self._found(self.fsm.job(msg.name), "job", msg.name)})
        if isinstance(msg, m.JobList):
            return self.read(env, msg.stale, lambda: {"jobs": self.fsm.jobs(), "seq": self.fsm.job_seq})
        if isinstance(msg, m.ExecList):
            return self.read(env, msg.stale, lambda: self._executions(msg.job, msg.limit))
        if isinstance(msg, m.ExecGet):
            return self.read(env, msg.stale, lambda: {
                "execution": self._found(self.fsm.execution(msg.job, msg.id), "execution", msg.id)})
        raise errors.BadRequest(f"the raft client port does not answer {env.type}")

    def propose(self, env, op, **args):
        req = f"{self.name}/{env.msg_id.hex()}"
        if not self.core.propose([wire.pack({"op": op, "args": args, "req": req})]):
            raise errors.Unavailable("no leader: the cluster cannot take writes now")
        timer = self.loop.after(self.conf.wire.call_timeout_ms * 2, lambda: self.pending.pop(req, None))
        self.pending[req] = (env, timer)

    def read(self, env, stale, answer):
        if stale:
            return self._answer_read(env, answer)
        ctx = self.core.read_index()
        if ctx is None:
            if self.core.leader and self.core.leader != self.name:
                raise errors.NotLeader(f"{self.name} is not the leader", leader=self.core.leader)
            raise errors.Unavailable("no leader ready to serve a linearizable read; retry or read with stale")
        self.reads.setdefault(ctx, []).append((env, answer))

    def _executions(self, job, limit):
        if self.fsm.job(job) is None:
            raise errors.NotFound(f"job {job!r} not found")
        return {"executions": self.fsm.executions(job, limit)}

    @staticmethod
    def _found(value, what, name):
        if value is None:
            raise errors.NotFound(f"{what} {name!r} not found")
        return value

    def check_executor(self, job):
        offered = set(self.conf.executor.executors)
        for member in self.members.values():
            if member["status"] == "alive":
                offered.update(member.get("executors", []))
        if job["executor"] not in offered:
            raise errors.BadRequest(f"Job validation failed: no alive node offers executor {job['executor']!r} "
                                    f"(offered: {', '.join(sorted(offered)) or 'none'}).")

    def node_info(self):
        return {"node": self.name, "role": self.conf.node.role, "addrs": config.addrs(self.conf),
                "leader": self.leader_info() if self.core.leader else None}

    def leader_info(self):
        leader = self.core.leader
        if not leader:
            raise errors.Unavailable("the cluster has no leader")
        if leader == self.name:
            addrs = config.addrs(self.conf)
        else:
            addrs = self.members.get(leader, {}).get("addrs", {})
        return {"node": leader, "term": self.core.term, "addrs": addrs, "ready": self.leader_ready()}

    # -- membership, from the local gossip service -----------------------------------------

    def refresh_members(self):
        self.gossip.call(m.MemberList(), self._got_members)

    def _got_members(self, result, err):
        if err is None:
            self.members = {x["name"]: x for x in result["members"]}

    def on_members(self, env):
        if isinstance(env.msg, m.MemberEvent):
            member = env.msg.member
            if env.msg.kind == "reap":
                self.members.pop(member["name"], None)
            else:
                self.members[member["name"]] = member

    def status(self):
        return {**self.core.status(), "leader_ready": self.leader_ready(),
                "fsyncs": self.store.fsyncs,
                "sqlite": {"raft-log.db": self.store.pragmas(), "state.db": self.fsm.pragmas()}}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-raft")
    loop = Loop(conf, service="raft")
    RaftShell(conf, loop)
    sys.exit(loop.run())
