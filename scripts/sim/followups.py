"""What follows a run, in the scheduler simulator (scripts/sim/scheduler.py): jobs that fail and
are retried, a parent with a dependent job, ephemeral jobs, jobs with a webhook whose receiver
is down now and then, and a client asking for runs now (each request for a job of its own) and
sending a request again, to any server, until it is answered. Every committed command is
looked at as it applies: no retry, dependent run, run-now or ephemeral delete may happen twice,
and a notification's delivery id never changes. At the end each happened once: no retry or
follow-up is left pending, every failed attempt with retries left was attempted again, every
successful parent firing ran its child once, every answered request ran once, every ephemeral
job that succeeded is gone, and every notice was delivered (or its give-up recorded)."""

from __future__ import annotations

from common import errors, messages as m
from scripts.sim.hosts import Violation

RECEIVER_DOWN = 0.3        # chance that the webhook receiver refuses one delivery
REQUEST_EVERY_S = 4        # mean seconds between run-now requests
REQUEST_AGAIN_MS = 1500    # a request unanswered this long is sent again, to a server picked anew
FAILS = {"retry": 0.5, "parent": 0.3, "eph": 0.3}  # chance that an attempt of such a job fails


def hook(name, rule="always"):
    return [{"type": "webhook", "rule": rule, "url": f"http://hooks/{name}"}]


def follow_up_jobs(rng):
    """(job documents, {name: kind}) of the follow-up jobs, put at the start beside the ticks'."""
    docs = [
        {"name": "retry0", "schedule": "@every 3s", "retries": 2, "retry_interval": "400ms",
         "max_retry_interval": "700ms", "notifications": hook("retry0", "on_failure")},
        {"name": "retry1", "schedule": "@every 2s", "retries": 1, "retry_interval": "1s", "concurrency": "forbid"},
        {"name": "parent", "schedule": "@every 4s", "retries": 1, "retry_interval": "300ms",
         "notifications": hook("parent", "on_failure,on_recovery")},
        {"name": "child", "parent_job": "parent", "notifications": hook("child")},
        *({"name": f"eph{i}", "schedule": f"@every {rng.choice((2, 5, 9))}s", "ephemeral": True, "retries": 1,
           "retry_interval": "500ms", "notifications": hook(f"eph{i}")} for i in range(3)),
    ]
    for doc in docs:
        doc.update(executor="shell", executor_config={"command": "true"}, misfire_policy="run_all",
                   catchup_window="30s", history_limit=10_000)
    return docs


class FollowUps:
    """The simulation's follow-up jobs, client and receiver, and their checks."""

    def __init__(self, sim):
        self.sim = sim
        self.requests = {}        # n → {"job", "answered", "at"}
        self.claimed = {}         # job → groups claimed with executions (attempt 1)
        self.retried = set()      # (job, group, attempt) of each retry claimed
        self.parent_ok = []       # when each parent firing that ended in success did
        self.succeeded = {}       # ephemeral job → when a firing of it first ended in success
        self.deleted = {}         # ephemeral job → times deleted
        self.notices = {}         # notify effect → when it was recorded
        self.ids = {}             # (notice, url) → delivery ids seen by the receiver
        self.delivered = set()    # notices the receiver took
        self.gave_up = set()      # notices whose give-up was recorded

    def fail(self, job):
        """The exit code of one attempt of a job."""
        kind = next((k for k in FAILS if job.startswith(k)), None)
        return 1 if kind and self.sim.rng.random() < FAILS[kind] else 0

    # -- what the state machine applied --------------------------------------------------------

    def applied(self, command, result):
        op, args = command["op"], command["args"]
        if op == "run.claim" and "error" not in result:
            self.claimed_run(args, result)
        if op == "run.record":
            for mark in args["done"]:
                if any(d["outcome"] == "gave_up" for d in mark["deliveries"]):
                    self.gave_up.add(mark["id"])
            for done in result["finishes"]:
                self.finished(done)
        for effect in result.get("effects", []):
            self.noted(effect)
        for _, name, job in self.sim.fsm.changes:
            if job is None and name.startswith("eph"):
                self.deleted[name] = self.deleted.get(name, 0) + 1
                if self.deleted[name] > 1:
                    raise Violation(f"ephemeral job {name} deleted twice")

    def claimed_run(self, args, result):
        if result.get("duplicate") or not result["executions"] or result.get("skipped"):
            return
        (first,) = result["executions"][:1]
        job, group, attempt = args["job"], first["group"], first["attempt"]
        if attempt > 1:
            if (job, group, attempt) in self.retried:
                raise Violation(f"retry of {job} group {group} attempt {attempt} claimed twice")
            self.retried.add((job, group, attempt))
            return
        groups = self.claimed.setdefault(job, set())
        groups.add(group)
        if job.startswith("req-") and len(groups) > 1:
            raise Violation(f"run-now request for {job} ran twice: groups {sorted(groups)}")
        if job == "child" and len(groups) > len(self.parent_ok):
            raise Violation(f"child ran {len(groups)} times for {len(self.parent_ok)} successful parent firings")

    def finished(self, done):
        if "error" in done or not done.get("group_done") or done["group_status"] != "success":
            return
        job = done["execution"]["job"]
        if job == "parent":
            self.parent_ok.append(self.sim.now)
        elif job.startswith("eph"):
            self.succeeded.setdefault(job, self.sim.now)
        for effect in done.get("effects", []):
            self.noted(effect)

    def noted(self, effect):
        if effect["kind"] == "notify":
            self.notices.setdefault(effect["id"], self.sim.now)

    # -- the receiver --------------------------------------------------------------------------

    def deliver(self, server, delivery):
        """A webhook POST reaches the receiver (down now and then); its outcome goes back."""
        sim = self.sim
        payload = delivery.payload
        down = sim.rng.random() < RECEIVER_DOWN
        if not down:
            seen = self.ids.setdefault((delivery.notice, payload["url"]), set())
            seen.add(payload["headers"]["X-Pykron-Delivery"])
            if len(seen) > 1:
                raise Violation(f"notice {delivery.notice} delivered with ids {sorted(seen)}")
            self.delivered.add(delivery.notice)
        sim.send(server.delivered, server.incarnation, delivery.id, "exit 1" if down else None, lossy=False)

    # -- the client ----------------------------------------------------------------------------

    def request(self):
        """A run-now of a job of its own: sent until answered."""
        sim = self.sim
        if not sim.settling:
            n = len(self.requests)
            name = f"req-{n}"
            sim.put_job({"name": name, "schedule": "@manually", "executor": "shell",
                         "executor_config": {"command": "true"}, "history_limit": 10_000})
            self.requests[n] = {"job": name, "answered": False}
            self.send(n)
            sim.at(sim.next_in(REQUEST_EVERY_S), self.request)

    def send(self, n):
        sim = self.sim
        if self.requests[n]["answered"]:
            return
        server = sim.rng.choice(list(sim.servers.values()))
        sim.send(server.deliver, m.JobRun(name=self.requests[n]["job"], request=f"client/{n}"), ("client", n))
        sim.at(sim.now + REQUEST_AGAIN_MS, self.send, n)

    def answered(self, n, answer):
        if not isinstance(answer, errors.Error) or answer.code in ("conflict", "not_found"):
            self.requests[n]["answered"] = True

    # -- at the end ----------------------------------------------------------------------------

    def check_end(self, cutoff):
        """What was due by `cutoff` (the settling began: no failure since) happened, once."""
        sim, fsm = self.sim, self.sim.fsm
        pending = fsm.pending()
        late = [r["key"] for r in pending["retries"] if r["due_at"] <= cutoff]
        late += [e["id"] for e in pending["effects"] if self.notices.get(e["id"], cutoff + 1) <= cutoff
                 or e["kind"] != "notify" and e["group"] // 1_000_000 <= cutoff - 10_000]
        if late:
            raise Violation(f"left pending: {late[:4]}")
        for job in fsm.jobs():
            retries = job.get("retries", 0)
            found = {(x["group"], x["attempt"]) for x in fsm.executions(job["name"], limit=100_000)}
            for x in fsm.executions(job["name"], limit=100_000):
                if x["status"] in ("failed", "lost") and x["attempt"] <= retries and (x["finished_at"] or 0) <= cutoff \
                        and (x["group"], x["attempt"] + 1) not in found:
                    raise Violation(f"{x['id']} failed with retries left and was not attempted again")
        child, due = len(self.claimed.get("child", ())), sum(at <= cutoff for at in self.parent_ok)
        if child < due:
            raise Violation(f"child ran {child} times for {due} successful parent firings")
        for n, request in self.requests.items():
            ran = len(self.claimed.get(request["job"], ()))
            if request["answered"] and ran != 1:
                raise Violation(f"run-now request {n} answered and ran {ran} times")
        for name, at in self.succeeded.items():
            if at <= cutoff and (fsm.job(name) is not None or self.deleted.get(name) != 1):
                raise Violation(f"ephemeral job {name} succeeded and was deleted {self.deleted.get(name, 0)} times")
        lost = {i for i, at in self.notices.items() if at <= cutoff} - self.delivered - self.gave_up
        if lost:
            raise Violation(f"notices neither delivered nor given up: {sorted(lost)[:3]}")
