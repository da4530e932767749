"""The hosts of the scheduler simulator (scripts/sim/scheduler.py): a server, whose scheduler
and dispatcher cores a death loses, and a node, whose executor core a crash loses while its
disk keeps what was committed. Each steps its cores with what the simulated network delivers
and carries out their Readies with the cores' own carry_out, its effects turned into messages."""

from __future__ import annotations

import random

from common import config, errors, messages as m, models
from services.dispatcher import core as dispatcher_core
from services.scheduler import core as scheduler_core

EXECUTOR_CONF = config.load(env={}).executor
NOTIFY = config.load(env={}).notify  # no global notifications: the jobs' own webhooks
CALL_TIMEOUT_MS = 3000  # an executor's result call gives up after this (the wire's call timeout)


class Violation(AssertionError):
    pass


class Crash(Exception):
    """An executor dies in the middle of carrying out a Ready."""


class Server:
    """A server's scheduler and dispatcher cores, as its shells drive them; a death loses them."""

    def __init__(self, sim, name):
        self.sim, self.name, self.incarnation = sim, name, 0
        self.alive = False
        self.due = None  # (the earliest deadline of its cores, that core)

    def boot(self):
        sim = self.sim
        self.alive, self.incarnation = True, self.incarnation + 1
        self.sched = sim.scheduler_class(lead_ms=sim.lead_ms)
        self.disp = sim.dispatcher_class(self.name, rng=random.Random(sim.rng.random()), ack_timeout_ms=1000,
                                         run_attempts=5, lease_ms=10_000, notify=NOTIFY, now=sim.now)
        if sim.leader is not None:
            self.follow(sim.leader.name, sim.term)

    def lead(self, term):
        sim = self.sim
        self.disp.step(m.RaftLeader(node=self.name, leader=self.name, term=term, ready=True, applied=sim.index), sim.now)
        self.sched.load(sim.fsm.jobs(), sim.fsm.job_seq, sim.now, sim.fsm.settings())
        self.sched.activate(True, sim.now)

    def follow(self, leader, term):
        self.disp.step(m.RaftLeader(node=self.name, leader=leader, term=term, ready=False, applied=self.sim.index),
                       self.sim.now)
        self.sched.activate(False, self.sim.now)

    def cores(self):
        return (self.sched, self.disp) if self.alive else ()

    def carry(self):
        rd = self.sched.ready()
        if not rd.empty():
            scheduler_core.carry_out(rd, fire=self.fire, skip=self.skip)
            self.sched.advance(rd)
        rd = self.disp.ready()
        if not rd.empty():
            dispatcher_core.carry_out(
                rd, publish=self.publish, kill=self.kill, call=self.call, reply=self.reply, result=ignore,
                send=self.send_notice, skipped=ignore, late=ignore, recorded=ignore, beat=self.beat)
            self.disp.advance(rd)

    # -- the scheduler's effects -----------------------------------------------------------

    def fire(self, job, at):
        self.sim.send(self.deliver, m.TickFire(job=job, scheduled_at=at), ("fire", job["name"], at))

    def skip(self, name, ticks, reason):
        # Not lost on the way: the scheduler hands out a skip once and does not send it again,
        # so a tick.skip that fails leaves its ticks unrecorded (a known gap; ipc, where it
        # travels, loses nothing while both services live).
        if ticks:
            self.sim.send(self.deliver, m.TickSkip(job=name, ticks=ticks, reason=reason), ("skip",), lossy=False)

    def fire_answered(self, name, at, answer):
        if self.alive:
            self.sched.answered(name, at, answer if isinstance(answer, errors.Error) else None, self.sim.now)

    # -- the dispatcher's inputs and effects -----------------------------------------------

    def deliver(self, msg, asked=None):
        """A message for this server's dispatcher; a request it refuses is answered with the error."""
        if not self.alive:
            return
        try:
            self.disp.step(msg, self.sim.now, asked)
        except errors.Error as err:
            self.reply(asked, err)

    def publish(self, executions, job, topic):
        kind, name = topic
        for node in self.sim.nodes.values():
            if kind == "tag" or node.name == name:  # the executor re-checks the target
                self.sim.send(node.deliver, m.RunStart(executions=executions, job=job))

    def kill(self, execution, reason):
        node = self.sim.nodes[execution["node"]]
        self.sim.send(node.deliver, m.RunKill(id=execution["id"], node=execution["node"], reason=reason))

    def send_notice(self, delivery):
        self.sim.send(self.sim.followups.deliver, self, delivery, lossy=False)  # a child process: no network loss

    def delivered(self, incarnation, delivery_id, error):
        if self.alive and self.incarnation == incarnation:
            self.disp.sent(delivery_id, error, self.sim.now)

    def beat(self, term):
        for node in self.sim.nodes.values():
            self.sim.send(node.deliver, m.DispatcherHeartbeat(node=self.name, term=term))

    def call(self, call):
        self.sim.raft(self, call)

    def answered(self, incarnation, call, reply, error):
        if self.alive and self.incarnation == incarnation:
            self.disp.answered(call, reply, error, self.sim.now)

    def reply(self, asked, answer):
        if asked is None:
            return
        if asked[0] == "fire":
            self.sim.send(self.fire_answered, asked[1], asked[2], answer)
        elif asked[0] == "client":
            self.sim.send(self.sim.followups.answered, asked[1], answer)
        elif asked[0] == "result":
            _, node, incarnation, execution_id = asked
            self.sim.send(self.sim.nodes[node].result_answered, incarnation, execution_id, answer)


class Node:
    """A node's executor core, as its shell drives it, over a disk that keeps what was committed."""

    def __init__(self, sim, name):
        self.sim, self.name, self.incarnation = sim, name, 0
        self.core = None
        self.started, self.records, self.confirmed = {}, {}, set()  # committed: survives a crash
        self.unsynced = []  # written, not committed: lost in a crash
        self.affected = set()  # ids whose run a crash may have ended as lost
        self.down = []  # [crashed at, back at]: a run published meanwhile may not have reached it
        self.due = None

    def boot(self):
        self.incarnation += 1
        self.unsynced = []
        if self.down:
            self.down[-1][1] = self.sim.now
        self.core = self.sim.executor_class(
            self.name, EXECUTOR_CONF, now=self.sim.now, started=list(self.started),
            unconfirmed=[r for i, r in self.records.items() if i not in self.confirmed],
            orphans=[e for i, e in self.started.items() if i not in self.records])

    def crash(self):
        self.affected |= {i for i in self.started if i not in self.records}
        self.down.append([self.sim.now, None])
        self.sim.log(f"executor {self.name} crashes")
        self.core, self.unsynced = None, []
        self.sim.at(self.sim.now + self.sim.rng.randint(*self.sim.faults.restart_ms), self.boot)

    def cores(self):
        return (self.core,) if self.core is not None else ()

    def deliver(self, msg):
        if self.core is not None:
            self.core.step(msg, self.sim.now)

    def carry(self):
        if self.core is None:
            return
        rd = self.core.ready()
        if rd.empty():
            return
        try:
            self.sim.executor_carry_out(rd, persist=self.persist, launch=self.launch, ack=self.ack, kill=self.kill,
                                        discard=self.effect, fork=self.fork, send=self.send_result,
                                        process=self.process, heartbeat=self.heartbeat)
        except Crash:
            return self.crash()
        self.core.advance(rd)

    def effect(self, *_):
        """Any effect: the executor may die right there."""
        if self.sim.settling is False and self.sim.rng.random() < self.sim.faults.crash_in_carry:
            raise Crash()

    # -- the executor's effects ------------------------------------------------------------

    def persist(self, starts, forgets, finishes, confirms, commit):
        self.effect()
        self.unsynced += [("start", e) for e in starts] + [("forget", i) for i in forgets]
        self.unsynced += [("finish", f.record) for f in finishes] + [("confirm", i) for i in confirms]
        if commit:
            self.effect()
            for kind, item in self.unsynced:
                if kind == "start":
                    self.started.setdefault(item["id"], item)
                elif kind == "forget" and item not in self.records:
                    self.started.pop(item, None)
                elif kind == "finish":
                    self.records[item["id"]] = item
                elif kind == "confirm":
                    self.confirmed.add(item)
            self.unsynced = []

    def launch(self, run):
        self.effect()
        sim, execution = self.sim, run.execution
        key = (execution["job"], execution["group"], execution["attempt"])
        if execution["id"] not in self.started:
            raise Violation(f"run {key} started on {self.name} before its id was durable there")
        if sim.now < models.start_time(execution):
            raise Violation(f"run {key} started early, at {sim.now}")
        ids = sim.started.setdefault(key, [])
        ids.append(execution["id"])
        if len(ids) > 1:
            raise Violation(f"run {key} started twice: {sorted(ids)}")
        self.core.launched(execution["id"], sim.now, spawn_ms=0)
        sim.at(sim.now + sim.rng.randint(*sim.faults.run_ms), self.exited, self.incarnation, execution["id"],
               sim.followups.fail(execution["job"]))
        self.effect()  # dead with its child started

    def exited(self, incarnation, execution_id, code):
        if self.core is not None and self.incarnation == incarnation:
            self.core.exited(execution_id, code, self.sim.now)

    def kill(self, run):
        self.effect()
        self.sim.at(self.sim.now + 1, self.exited, self.incarnation, run.execution["id"], -9)

    def fork(self, execution, job):
        self.effect()
        self.sim.at(self.sim.now + self.sim.rng.randint(1, 20), self.forked, self.incarnation, execution["id"])

    def forked(self, incarnation, execution_id):
        if self.core is not None and self.incarnation == incarnation:
            self.core.forked(execution_id, True)

    def process(self, finished):
        self.core.processed(finished, finished.record)

    def dispatchers(self):
        """The dispatcher the core names, else (none heard yet) every server."""
        chosen = self.core.dispatcher()
        return [self.sim.servers[chosen]] if chosen else list(self.sim.servers.values())

    def ack(self, msg):
        self.effect()
        for server in self.dispatchers():
            self.sim.send(server.deliver, msg)

    def heartbeat(self, ids):
        self.effect()
        for server in self.dispatchers():
            self.sim.send(server.deliver, m.ExecHeartbeat(node=self.name, ids=ids))

    def send_result(self, record):
        self.effect()
        chosen = self.core.dispatcher()
        if chosen is None:
            return self.core.result_failed(record["id"])  # several servers and none heard yet
        asked = ("result", self.name, self.incarnation, record["id"])
        self.sim.send(self.sim.servers[chosen].deliver, m.ExecResult(execution=record), asked)
        self.sim.at(self.sim.now + CALL_TIMEOUT_MS, self.result_answered, self.incarnation, record["id"],
                    errors.Timeout("no reply to exec.result"))

    def result_answered(self, incarnation, execution_id, answer):
        if self.core is None or self.incarnation != incarnation:
            return
        if isinstance(answer, errors.Error):
            self.core.result_failed(execution_id)
        else:
            self.core.step(answer, self.sim.now)


def ignore(*_):
    pass
