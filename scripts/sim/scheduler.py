"""A deterministic, seeded simulator of scheduling through failover that drives the cores that
ship: each server's scheduler and dispatcher cores and each node's executor core, every Ready
carried out by its core's own carry_out, over a network that loses, duplicates, delays and so
reorders messages. Leaders die; executors crash (at any effect they carry out, losing what
they had not committed) and come back from what they had. Raft and the executors' disks are
modelled: proposals applied in order by the real state machine (in-memory SQLite), what an
executor committed kept. After every step: no tick starts twice, none before its time, none
before its id is durable on its executor; at the end, every tick of the window ran once or was
recorded as skipped, or was lost to an executor's crash and recorded so. The hosts that
drive the cores are in hosts.py. `scripts/simulate scheduler --seed N`."""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from dataclasses import dataclass

from common import errors, messages as m, models, wire
from scripts.sim.followups import FollowUps, follow_up_jobs
from scripts.sim.hosts import Node, Server, Violation
from services.dispatcher import core as dispatcher_core
from services.executor import core as executor_core
from services.raft.fsm import StateMachine, command as fsm_command
from services.scheduler import core as scheduler_core

__all__ = ["Simulation", "Faults", "Violation", "run_seed"]

START = 1_767_225_600_000
SERVERS = ("s1", "s2", "s3")
NODES = ("n1", "n2", "n3")
MEMBERS = [{"name": n, "status": "alive", "tags": {}, "executors": ["shell"]} for n in NODES]
LEADS_MS = (0, 300, 1000, 2500)  # how early ticks are fired and claimed, one per seed
JITTERS = ("", "", "400ms", "1500ms")
SCHEDULES = ("@every 1s", "@every 2s", "@every 3s", "*/2 * * * * *", "0,15,30,45 * * * * *")
# What the Raft service proposes for each command it takes, minus the fields it does not pass.
PROPOSALS = {m.RunClaim: (), m.RunRecord: ("term",), m.RunSkip: ()}


@dataclass
class Faults:
    loss: float = 0.05             # any message between services
    duplicate: float = 0.02        # a message delivered twice
    delay_ms: tuple = (1, 40)      # per message, so messages overtake each other
    failover_every_s: int = 12     # mean seconds between leader deaths
    gap_ms: tuple = (300, 2500)    # time without a ready leader
    commit_in_flight: float = 0.5  # chance that a command the dead leader proposed still commits
    crash_every_s: int = 15        # mean seconds between executor crashes (of any node)
    crash_in_carry: float = 0.002  # chance that an executor dies at one effect it carries out
    restart_ms: tuple = (50, 900)  # an executor back (well within the dispatcher's publications)
    run_ms: tuple = (5, 300)       # how long a job runs


class Simulation:
    def __init__(self, seed, jobs=8, faults=None, scheduler_class=scheduler_core.Scheduler,
                 dispatcher_class=dispatcher_core.Dispatcher, executor_class=executor_core.Executor,
                 waiting_class=None, executor_carry_out=executor_core.carry_out):
        self.scheduler_class, self.dispatcher_class = scheduler_class, dispatcher_class
        if waiting_class is not None:
            executor_class = type(executor_class.__name__, (executor_class,), {"waiting_class": waiting_class})
        self.executor_class, self.executor_carry_out = executor_class, executor_carry_out
        self.rng = random.Random(seed)
        self.lead_ms = self.rng.choice(LEADS_MS)
        self.faults = faults or Faults()
        self.now = START
        self.fsm = StateMachine(":memory:")
        self.index, self.term = 0, 1
        self.events = []
        self.seq = itertools.count()
        self.committed_at = START  # Raft applies in log order: no commit overtakes an earlier one
        self.started = {}          # (job, group, attempt) → execution ids started on executors
        self.followups = FollowUps(self)
        self.trace = []
        self.settling = False
        self.policies = {}
        for i in range(jobs):
            policy = self.rng.choice(("run_all", "run_once", "skip"))
            doc = {"name": f"job{i}", "schedule": self.rng.choice(SCHEDULES), "executor": "shell",
                   "executor_config": {"command": "true"}, "misfire_policy": policy, "catchup_window": "30s",
                   "history_limit": 10_000, "jitter": self.rng.choice(JITTERS)}
            self.put_job(doc)
            self.policies[doc["name"]] = policy
        for doc in follow_up_jobs(self.rng):
            self.put_job(doc)
            self.policies[doc["name"]] = doc["misfire_policy"]
        self.leader = None
        self.servers = {name: Server(self, name) for name in SERVERS}
        self.nodes = {name: Node(self, name) for name in NODES}
        for server in self.servers.values():
            server.boot()
        for node in self.nodes.values():
            node.boot()
        self.elect(self.servers[SERVERS[0]])
        self.at(self.next_in(self.faults.crash_every_s), self.crash_executor)
        self.at(self.next_in(4), self.followups.request)
        self.touch(self.holders())

    # -- the world -------------------------------------------------------------------------

    def at(self, when, fn, *args):
        heapq.heappush(self.events, (when, next(self.seq), fn, args))

    def send(self, fn, *args, lossy=True):
        """A message: delayed, maybe lost, maybe delivered twice."""
        if lossy and self.rng.random() < self.faults.loss:
            return
        for _ in range(2 if lossy and self.rng.random() < self.faults.duplicate else 1):
            self.at(self.now + self.rng.randint(*self.faults.delay_ms), fn, *args)

    def raft(self, server, call):
        """The local Raft service of `server`: reads from the state machine; proposals applied
        in log order while their leader lives (once it died, maybe still, unanswered)."""
        msg, incarnation = call.msg, server.incarnation
        reply = lambda answer: self.at(self.now + self.rng.randint(*self.faults.delay_ms),  # noqa: E731
                                       server.answered, incarnation, call, *answer)
        if type(msg) not in PROPOSALS:
            return reply(self.read(msg))
        if server is not self.leader:
            return reply((None, errors.NotLeader("no leader: the cluster cannot take writes now")))
        drop = PROPOSALS[type(msg)]
        command = fsm_command(msg.TYPE, {k: v for k, v in wire.fields(msg).items() if k not in drop})
        term, leader = self.term, self.leader
        self.committed_at = max(self.committed_at, self.now + self.rng.randint(*self.faults.delay_ms))

        def commit():
            alive = leader is self.leader and leader.alive
            if not alive and self.rng.random() >= self.faults.commit_in_flight:
                return
            result = self.apply(command, term=term)
            if alive:
                reply(self.typed(msg, result))
        self.at(self.committed_at, commit)

    def read(self, msg):
        if isinstance(msg, m.MemberList):
            return m.Members(members=MEMBERS), None
        if isinstance(msg, m.SettingsGet):
            return m.SettingsReply(settings=self.fsm.settings()), None
        if isinstance(msg, m.ExecUnfinished):
            return m.UnfinishedRuns(runs=[] if msg.followups_only else self.fsm.unfinished(), **self.fsm.pending()), None
        if isinstance(msg, m.JobGet):
            job = self.fsm.job(msg.name)
            return (m.JobReply(job=job), None) if job else (None, errors.NotFound(f"job {msg.name!r} not found"))
        raise AssertionError(f"the simulated Raft does not answer {msg.TYPE}")

    @staticmethod
    def typed(msg, result):
        if "error" in result:
            return None, errors.Error.from_code(result["error"], result["message"])
        return wire.typed(wire.reply_type(msg), wire.unpack(wire.pack(result))), None

    def apply(self, command, term=None):
        self.index += 1
        command = wire.unpack(wire.pack(command))
        result = self.fsm.apply([(self.index, term or self.term, command)])[0]
        self.followups.applied(command, result or {})
        return result

    def put_job(self, doc):
        self.apply({"op": "job.put", "args": {"job": models.validate_job(doc, now=self.now)}})

    def failover(self):
        if self.settling:
            return
        self.log(f"leader {self.leader.name} of term {self.term} dies")
        self.leader.alive = False
        dead, self.leader = self.leader, None
        gap = self.rng.randint(*self.faults.gap_ms)
        self.at(self.now + self.rng.randint(gap // 4, gap // 2), dead.boot)  # back, to follow
        self.at(self.now + gap, self.elect)

    def elect(self, leader=None):
        leader = leader or self.rng.choice([s for s in self.servers.values() if s.alive])
        self.term += 1
        self.leader = leader
        leader.lead(self.term)
        for server in self.servers.values():
            if server is not leader:
                server.follow(leader.name, self.term)
        self.log(f"leader {leader.name} of term {self.term} ready")
        self.at(self.next_in(self.faults.failover_every_s), self.failover)

    def crash_executor(self):
        if self.settling:
            return
        node = self.rng.choice(list(self.nodes.values()))
        if node.core is not None:
            node.crash()
        self.at(self.next_in(self.faults.crash_every_s), self.crash_executor)

    def next_in(self, mean_s):
        return self.now + int(self.rng.expovariate(1 / mean_s) * 1000) + 1000

    # -- running ---------------------------------------------------------------------------

    def step(self):
        """The next event or core deadline. Then the Readies of what it touched are carried
        out: the server or node it was for (a core's own tick, a message), or every one (a
        failover, an election, a crash)."""
        holders = self.holders()
        when, what = (self.events[0][0], None) if self.events else (None, None)
        for holder in holders:
            if holder.due is not None and (when is None or holder.due[0] < when):
                when, what = holder.due[0], holder
        self.now = max(self.now, when)
        if what is not None:
            what.due[1].tick(self.now)
            touched = (what,)
        else:
            _, _, fn, args = heapq.heappop(self.events)
            fn(*args)
            owner = getattr(fn, "__self__", None)
            touched = (owner,) if owner in holders else holders if owner is self else ()
        self.touch(touched)

    @staticmethod
    def touch(holders):
        for holder in holders:
            holder.carry()
            dues = [(due, core) for core in holder.cores() if (due := core.deadline()) is not None]
            holder.due = min(dues, key=lambda d: d[0], default=None)

    def holders(self):
        return (*self.servers.values(), *self.nodes.values())

    def run(self, seconds):
        end = START + seconds * 1000
        while self.now < end:
            self.step()
        return self

    def settle(self, seconds=30):
        """No more failovers or crashes; let every run finish and every result be recorded."""
        self.settling = True
        while self.leader is None:
            self.step()
        window_end = self.now - 1000
        end = self.now + seconds * 1000
        while self.now < end:
            self.step()
        self.check_window(window_end)
        self.followups.check_end(window_end)
        return self

    def excused(self, record):
        """A run an executor's crash may have ended: recorded lost by the restarted executor
        (it may or may not have run), or failed unacknowledged while its node was down."""
        node = self.nodes.get(record["node"])
        if node is None:
            return False
        if record["status"] == "lost":
            return record["id"] in node.affected
        if record["status"] == "failed" and "did not acknowledge" in record["reason"]:
            since, until = record["scheduled_at"] - 3000, record["finished_at"]
            return any(crashed <= until and (back is None or back >= since) for crashed, back in node.down)
        return False

    def check_window(self, window_end):
        """Every tick up to window_end ran exactly once or was recorded as skipped, never both;
        one that an executor's crash may have ended is recorded so (excused)."""
        for job in self.fsm.jobs():
            sched = models.job_schedule(job)
            if sched is None:
                continue  # a dependent job: its runs follow its parent's (followups.py checks them)
            records = {}
            for ex in self.fsm.executions(job["name"], limit=100_000):
                if ex["attempt"] == 1:  # retries follow their first attempt (followups.py)
                    records.setdefault(ex["scheduled_at"], []).append(ex)
            for tick in sched.ticks(job["created_at"], window_end):
                seen = records.get(tick, [])
                statuses = [x["status"] for x in seen]
                ran = len(self.started.get((job["name"], tick * 1_000_000, 1), ()))
                crashed = any(self.excused(x) for x in seen)
                where = f"{job['name']} ({self.policies[job['name']]}) tick {tick}"
                if ran > 1 or (ran == 1 and "skipped" in statuses):
                    raise Violation(f"{where}: ran {ran} times, records {statuses}")
                if ran == 0 and "skipped" not in statuses and not crashed:
                    raise Violation(f"{where} did not run and was not recorded skipped: {statuses}")
                # The executor's own result (an exit code), not one the dispatcher decided.
                ended = any(x["status"] in ("success", "failed") and x["exit_code"] is not None for x in seen)
                if ran == 1 and not ended and not crashed:
                    raise Violation(f"{where} ran but its result is not recorded: {statuses}")

    def log(self, text):
        self.trace.append(f"{(self.now - START) / 1000:9.3f}s  {text}")


def run_seed(seed, *, seconds=60, jobs=8, faults=None, **variants):
    logging.disable(logging.WARNING)  # the cores' warnings are the faults this injects
    try:
        sim = Simulation(seed, jobs=jobs, faults=faults, **variants)
        try:
            sim.run(seconds).settle()
        except Violation as err:
            err.sim = sim
            raise
        return sim
    finally:
        logging.disable(logging.NOTSET)
