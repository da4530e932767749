"""A deterministic, seeded simulator of scheduling through failover: the pure scheduler and
dispatcher cores of each successive leader, the real state machine (in-memory SQLite),
executors that start an execution id at most once, and lossy, delayed messages between them.
It checks after every step that no tick ran twice and none started before its time (each seed
fires ticks with its own lead), and at the end that every tick of the window either ran once or
was recorded as skipped. `scripts/simulate scheduler --seed N`."""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

from common import models, wire
from services.dispatcher.core import Dispatcher, split_records
from services.executor.core import Waiting
from services.raft.fsm import StateMachine
from services.scheduler.core import Scheduler

START = 1_767_225_600_000
NODES = ("n1", "n2", "n3")
LEADS_MS = (0, 300, 1000, 2500)  # how early ticks are fired and claimed, one per seed
JITTERS = ("", "", "400ms", "1500ms")
SCHEDULES = ("@every 1s", "@every 2s", "@every 3s", "*/2 * * * * *", "0,15,30,45 * * * * *")


class Violation(AssertionError):
    pass


@dataclass
class Faults:
    loss: float = 0.05            # any message between services
    delay_ms: tuple = (1, 40)
    failover_every_s: int = 12    # mean seconds between leader deaths
    gap_ms: tuple = (300, 2500)   # time without a ready leader
    commit_in_flight: float = 0.5  # chance that a command the dead leader proposed still commits


class Leader:
    """The scheduler and dispatcher of one leader term, as the shells drive them."""

    def __init__(self, sim, term):
        self.sim, self.term = sim, term
        self.sched = sim.scheduler_class(lead_ms=sim.lead_ms)
        self.disp = sim.dispatcher_class("leader", rng=random.Random(sim.rng.random()), ack_timeout_ms=1000,
                               run_attempts=5, lease_ms=8000)
        self.disp.members = [{"name": n, "status": "alive", "tags": {}, "executors": ["shell"]} for n in NODES]
        self.claims = {}  # job → [waiting (job, tick)]
        fsm, now = sim.fsm, sim.now
        self.sched.load(fsm.jobs(), fsm.job_seq, now, fsm.settings())
        self.sched.activate(True, now)
        for run in fsm.unfinished():
            self.disp.adopt(run["execution"], run["job"], now)

    def drain(self):
        sim = self.sim
        rd = self.sched.ready()
        self.sched.advance(rd)
        for job, at in rd.fires:
            sim.send(self.fire, job, at, to=self)
        for name, ticks, reason in rd.skips:
            sim.propose(self, {"op": "tick.skip", "args": {"job": name, "ticks": ticks, "reason": reason}}, None)
        rd = self.disp.ready()
        self.disp.advance(rd)
        for executions, job, _ in rd.publish:
            for execution in executions:
                sim.send(sim.executor_start, execution, job)
        if rd.record:  # one entry per round, as the dispatcher's shell records them
            acks, finishes = split_records(rd.record)

            def confirmed(result, finishes=finishes):
                for execution, outcome in zip(finishes, result["finishes"]):
                    if "error" not in outcome:
                        sim.send(sim.executor_confirmed, execution["id"])

            sim.propose(self, {"op": "exec.record", "args": {"acks": acks, "finishes": finishes}}, confirmed)

    def fire(self, job, at):
        queue = self.claims.setdefault(job["name"], [])
        queue.append((job, at))
        if len(queue) == 1:
            self.claim_next(job["name"])

    def claim_next(self, name):
        queue = self.claims.get(name)
        if not queue:
            return
        job, at = queue[0]
        executions = self.disp.plan(job, at, self.sim.now)
        command = {"op": "tick.claim", "args": {"job": name, "scheduled_at": at, "group": executions[0]["group"],
                                                "term": self.term, "executions": executions}}
        self.sim.propose(self, command, lambda result: self.claimed(name, job, at, result))

    def claimed(self, name, job, at, result):
        self.claims[name].pop(0)
        if "executions" in result and "skipped" not in result:
            self.disp.claimed(job, result["executions"], self.sim.now)
        self.sim.send(lambda: self.sched.resolved(name, at, self.sim.now), to=self)  # the reply may be lost too
        self.claim_next(name)


class Simulation:
    def __init__(self, seed, jobs=8, faults=None, scheduler_class=Scheduler, dispatcher_class=Dispatcher,
                 executor_dedupes=True, waiting_class=Waiting):
        self.scheduler_class, self.dispatcher_class = scheduler_class, dispatcher_class
        self.executor_dedupes = executor_dedupes
        self.rng = random.Random(seed)
        self.lead_ms = self.rng.choice(LEADS_MS)
        self.faults = faults or Faults()
        self.now = START
        self.fsm = StateMachine(":memory:")
        self.index, self.term = 0, 1
        self.events = []
        self.seq = itertools.count()
        self.started = {}        # (job, scheduled_at) → execution ids started on executors
        self.waiting = waiting_class()  # runs published before their start time, as executors keep them
        self.executor_runs = {}  # id → finished record waiting for confirmation
        self.trace = []
        self.settling = False
        self.policies = {}
        for i in range(jobs):
            policy = self.rng.choice(("run_all", "run_once", "skip"))
            doc = {"name": f"job{i}", "schedule": self.rng.choice(SCHEDULES), "executor": "shell",
                   "executor_config": {"command": "true"}, "misfire_policy": policy, "catchup_window": "30s",
                   "history_limit": 10_000, "jitter": self.rng.choice(JITTERS)}
            self.apply({"op": "job.put", "args": {"job": models.validate_job(doc, now=START)}})
            self.policies[doc["name"]] = policy
        self.leader = Leader(self, self.term)
        self.at(self.next_failover(), self.failover)

    # -- the world -------------------------------------------------------------------------

    def at(self, when, fn, *args):
        heapq.heappush(self.events, (when, next(self.seq), fn, args))

    def send(self, fn, *args, to=None):
        """A message: delayed, maybe lost; one for a leader's services is lost if it died."""
        if self.rng.random() < self.faults.loss:
            return

        def deliver():
            if to is None or to is self.leader:
                fn(*args)

        self.at(self.now + self.rng.randint(*self.faults.delay_ms), deliver)

    def propose(self, leader, command, reply):
        """Through Raft: applied in order while its leader lives; once it died, maybe still."""
        def commit():
            alive = leader is self.leader
            if not alive and self.rng.random() >= self.faults.commit_in_flight:
                return
            result = self.apply(command, term=leader.term)
            if alive and reply is not None:
                reply(result)
        self.at(self.now + self.rng.randint(*self.faults.delay_ms), commit)

    def apply(self, command, term=None):
        self.index += 1
        return self.fsm.apply([(self.index, term or self.term, wire.unpack(wire.pack(command)))])[0]

    def executor_start(self, execution, job):
        """A run.start: one published before its start time waits for it, as on a real executor."""
        if self.now < models.start_time(execution):
            if self.waiting.add(execution, job):
                self.at(self.waiting.deadline(), self.executor_wake)
            return
        self.waiting.take(execution["id"])
        self.executor_begin(execution, job)

    def executor_wake(self):
        for execution, job in self.waiting.due(self.now):
            self.executor_begin(execution, job)

    def executor_begin(self, execution, job):
        key = (execution["job"], execution["scheduled_at"])
        if self.now < models.start_time(execution):
            raise Violation(f"tick {key} started early, at {self.now}")
        ids = self.started.setdefault(key, [])
        if execution["id"] not in ids or not self.executor_dedupes:
            ids.append(execution["id"])
            if len(ids) > 1:
                raise Violation(f"tick {key} started twice: {sorted(ids)}")
            finish = self.now + self.rng.randint(5, 300)
            self.at(finish, self.executor_done, execution, finish)
        if self.leader is not None:
            self.send(self.leader.disp.acked, execution["id"], self.now, self.now, to=self.leader)

    def executor_done(self, execution, finished_at):
        record = dict(execution, status="success", success=True, started_at=execution["scheduled_at"],
                      finished_at=finished_at, exit_code=0)
        self.executor_runs[execution["id"]] = record
        self.resend(execution["id"])

    def resend(self, execution_id):
        """Executors re-send a result until the leader confirms it is committed."""
        record = self.executor_runs.get(execution_id)
        if record is None:
            return
        if self.leader is not None:
            self.send(self.leader.disp.finished, record, self.now, to=self.leader)
        self.at(self.now + 1000, self.resend, execution_id)

    def executor_confirmed(self, execution_id):
        self.executor_runs.pop(execution_id, None)

    def failover(self):
        if self.settling:
            return
        self.log(f"leader of term {self.term} dies")
        self.leader = None
        self.at(self.now + self.rng.randint(*self.faults.gap_ms), self.elect)

    def elect(self):
        self.term += 1
        self.leader = Leader(self, self.term)
        self.log(f"leader of term {self.term} ready")
        self.at(self.next_failover(), self.failover)

    def next_failover(self):
        return self.now + int(self.rng.expovariate(1 / self.faults.failover_every_s) * 1000) + 1000

    # -- running ---------------------------------------------------------------------------

    def step(self):
        candidates = [(self.events[0][0], "event")] if self.events else []
        if self.leader is not None:
            for core in (self.leader.sched, self.leader.disp):
                due = core.deadline()
                if due is not None:
                    candidates.append((due, core))
        when, what = min(candidates, key=lambda c: c[0])
        self.now = max(self.now, when)
        if what == "event":
            _, _, fn, args = heapq.heappop(self.events)
            fn(*args)
        else:
            what.tick(self.now)
        if self.leader is not None:
            self.leader.drain()

    def run(self, seconds):
        end = START + seconds * 1000
        while self.now < end:
            self.step()
        return self

    def settle(self, seconds=40):
        """No more failovers; let every run finish and every result be recorded, then check."""
        self.settling = True
        while self.leader is None:
            self.step()
        window_end = self.now - 1000
        end = self.now + seconds * 1000
        while self.now < end and (self.events or self.leader.disp.runs):
            self.step()
        self.check_window(window_end)
        return self

    def check_window(self, window_end):
        """Every tick up to window_end ran exactly once or was recorded as skipped; never both."""
        for job in self.fsm.jobs():
            sched = models.job_schedule(job)
            records = {}
            for ex in self.fsm.executions(job["name"], limit=100_000):
                records.setdefault(ex["scheduled_at"], []).append(ex["status"])
            for tick in sched.ticks(job["created_at"], window_end):
                seen = records.get(tick, [])
                ran = len(self.started.get((job["name"], tick), ()))
                skipped = "skipped" in seen
                if ran > 1 or (ran == 1 and skipped) or (ran == 0 and not skipped):
                    raise Violation(f"{job['name']} ({self.policies[job['name']]}) tick {tick}: ran {ran} times, "
                                    f"records {seen}")
                if ran == 1 and "success" not in seen:
                    raise Violation(f"{job['name']} tick {tick} ran but its result is not recorded: {seen}")
                if self.policies[job["name"]] == "run_all" and ran != 1:
                    raise Violation(f"{job['name']} (run_all) tick {tick} did not run: {seen}")

    def log(self, text):
        self.trace.append(f"{(self.now - START) / 1000:9.3f}s  {text}")


def run_seed(seed, *, seconds=60, jobs=8, faults=None, **variants):
    sim = Simulation(seed, jobs=jobs, faults=faults, **variants)
    try:
        sim.run(seconds).settle()
    except Violation as err:
        err.sim = sim
        raise
    return sim
