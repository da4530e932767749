"""The dispatcher service's shell. Ticks arrive from the local scheduler; each is claimed
through Raft (one at a time per job) before its runs are published on node or tag topics
(salt's publish pattern). Executors answer over ROUTER/DEALER — acks, heartbeats, output
(republished for live tails) and results, confirmed only once committed. A new leader takes
over every unfinished run; finished groups start their dependent jobs or remove ephemeral ones."""

from __future__ import annotations

import collections
import logging
import random
import sys

import zmq

from common import config, errors, messages as m, metrics, models, wire
from common.loop import Loop, mono_ms
from services.dispatcher.core import Dispatcher, split_records
from services.dispatcher.notify import Notifier

log = logging.getLogger(__name__)

MANUAL_RUNS_KEPT = 1000
SETTINGS_REFRESH_MS = 2000
FEED_SILENCE_MS = 1500  # as the scheduler: three missed beats of the raft state feed


class DispatcherShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        dc = conf.dispatcher
        self.core = Dispatcher(self.name, rng=random.Random(), ack_timeout_ms=dc.ack_timeout_ms,
                               run_attempts=dc.run_attempts, lease_ms=dc.lease_ms)
        self.active, self.term, self.heard_at = False, 0, 0
        self.confirm = {}        # execution id → executor requests waiting for the commit of their result
        self.manual_runs = {}    # request id → executions it started, so a retried request starts none
        self.claims = collections.defaultdict(collections.deque)  # job → claims waiting their turn
        self.run_pub = loop.socket(zmq.PUB, "run", bind=config.endpoints(conf, "dispatcher", "run", dc.run_port))
        self.output_pub = loop.socket(zmq.PUB, "output",
                                      bind=config.endpoints(conf, "dispatcher", "output", dc.output_port))
        self.result_router = loop.socket(zmq.ROUTER, "result", on=self.on_result,
                                         bind=config.endpoints(conf, "dispatcher", "result", dc.result_port))
        self.tick_router = loop.socket(zmq.ROUTER, "tick", on=self.on_tick,
                                       bind=[config.ipc(conf, "dispatcher", "tick")])
        self.raft = loop.peer("raft", [config.ipc(conf, "raft", "client")])
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        self.notifier = Notifier(conf, loop, self.raft)
        loop.socket(zmq.SUB, "state", on=self.on_state, connect=[config.ipc(conf, "raft", "state")],
                    subscribe=[wire.topic("leader")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.every(dc.heartbeat_ms, self.heartbeat)
        loop.every(dc.members_refresh_ms, self.refresh_members)
        loop.every(SETTINGS_REFRESH_MS, self.refresh_settings)
        loop.every(FEED_SILENCE_MS // 3, self.check_silence)
        for spec in (metrics.JOB_EXECUTIONS, metrics.TICKS_SKIPPED, metrics.SCHEDULER_LATENESS):
            loop.metrics.add(spec)  # exported from the start
        loop.status = self.status
        self.refresh_members()
        loop.ready = True

    # -- leadership, membership, settings --------------------------------------------------

    def on_state(self, env):
        msg = env.msg
        self.heard_at = mono_ms()
        self.set_active(msg.ready and msg.leader == msg.node, msg.term)

    def set_active(self, active, term):
        if active != self.active or term != self.term:
            log.info("dispatcher active=%s term=%d", active, term)
        was, self.active, self.term = self.active, active, term
        if active and not was:
            self.take_over()
        elif was and not active:
            self.core.runs.clear()
            self.claims.clear()

    def check_silence(self):
        """The raft feed beats every half second; a dispatcher that stops hearing it (its raft
        process died or stalled) must stop acting as the leader's."""
        if self.active and mono_ms() - self.heard_at > FEED_SILENCE_MS:
            log.warning("raft state feed silent for %d ms: stopping", mono_ms() - self.heard_at)
            self.set_active(False, self.term)

    def take_over(self):
        """A new leader re-sends every claimed run with no ack (same id) and watches running ones."""
        self.refresh_settings()

        def found(result, err):
            if err is not None:
                log.warning("cannot list unfinished runs (retrying): %s", err)
                return self.loop.after(500, self.take_over) if self.active else None
            for run in result["runs"]:
                self.core.adopt(run["execution"], run["job"], self.loop.now())
            if result["runs"]:
                log.info("took over unfinished runs=%d", len(result["runs"]))

        self.raft.call(m.ExecUnfinished(), found)

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

    def refresh_settings(self):
        if self.active:
            self.raft.call(m.SettingsGet(stale=True), self._got_settings)

    def _got_settings(self, result, err):
        if err is None:
            self.core.untagged = result["settings"]["untagged_jobs"]

    # -- claims, one at a time per job -----------------------------------------------------

    def on_tick(self, env):
        if isinstance(env.msg, m.TickSkip):
            return self.record_skip(env)
        if not isinstance(env.msg, m.TickFire):
            raise errors.BadRequest(f"the tick socket does not take {env.type}")
        if not self.active:
            raise errors.NotLeader(f"{self.name} is not the active dispatcher")
        self.enqueue(env.msg.job, env.msg.scheduled_at, reply=(self.tick_router, env))

    def record_skip(self, env):
        """The scheduler's skipped ticks (misfire policy) pass through here on their way to Raft,
        so that their on_skipped notifications go out; recorded even when this one is not active."""
        def done(result, err):
            self.answer((self.tick_router, env), result, err)
            if err is None:
                self.skips_recorded(env.msg.job, result["executions"])
        self.raft.call(env.msg, done)

    def enqueue(self, job, scheduled_at, *, manual=False, reply=None, request="", execution=None):
        queue = self.claims[job["name"]]
        queue.append([job, scheduled_at, manual, reply, request, execution])
        if len(queue) == 1:
            self.claim_next(job["name"])

    def claim_next(self, name):
        """Claims of one job are serialized, so a tick is never claimed before an earlier one
        is settled: a new leader's catch-up then starts from the newest claimed tick."""
        queue = self.claims.get(name)
        if not queue:
            self.claims.pop(name, None)
            return
        entry = queue[0]
        job, scheduled_at, manual, reply, request, execution = entry
        executions = [execution] if execution else self.core.plan(job, scheduled_at, self.loop.now(), manual=manual)
        if not executions:
            return self.no_target(job, scheduled_at, manual, reply)
        claim = m.TickClaim(job=name, scheduled_at=scheduled_at, group=executions[0]["group"], term=self.term,
                            executions=executions, manual=manual)
        self.raft.call(claim, lambda result, err: self.claimed(name, entry, result, err))

    def claimed(self, name, entry, result, err):
        queue = self.claims.get(name)
        if not queue or queue[0] is not entry:
            return  # leadership was lost (and maybe won again) meanwhile: this claim is stale
        job, scheduled_at, manual, reply, request, execution = queue.popleft()
        if err is not None:
            log.warning("claim refused job=%s scheduled_at=%d: %s", name, scheduled_at, err)
            self.answer(reply, error=err)
        elif "skipped" in result:
            log.info("tick skipped job=%s scheduled_at=%d: %s", name, scheduled_at, result["skipped"])
            self.answer(reply, {"executions": result["executions"], "skipped": result["skipped"]})
            self.skips_recorded(name, result["executions"])
        else:
            self.core.claimed(job, result["executions"], self.loop.now())
            for victim in result.get("replace", []):
                self.core.kill(victim, f"concurrency replace: replaced by the tick at {scheduled_at}")
            if request:
                self.manual_runs[request] = result["executions"]
                while len(self.manual_runs) > MANUAL_RUNS_KEPT:
                    self.manual_runs.pop(next(iter(self.manual_runs)))
            self.answer(reply, {"executions": result["executions"]})
        if self.active:
            self.claim_next(name)

    def no_target(self, job, scheduled_at, manual, reply):
        reason = f"no alive node offers executor {job['executor']!r} with tags {job['tags'] or {}}"
        log.warning("%s job=%s", reason, job["name"])
        self.claims[job["name"]].popleft()
        if manual:
            self.answer(reply, error=errors.Conflict(reason))
        else:
            def recorded(result, err):
                self.answer(reply, result, err)
                if err is None:
                    self.skips_recorded(job["name"], result["executions"])
            self.raft.call(m.TickSkip(job=job["name"], ticks=[scheduled_at], reason=reason), recorded)
        self.claim_next(job["name"])

    def skips_recorded(self, job, rows):
        """Ticks now recorded as skipped: counted by reason, and told to whoever asked."""
        for row in rows:
            self.loop.metrics.add(metrics.TICKS_SKIPPED).inc(job=job, reason=metrics.skip_reason(row["reason"]))
        if self.active:
            self.notifier.skipped(job, rows)

    def answer(self, reply, result=None, error=None):
        if reply is None:
            return
        sock, env = reply
        if error is not None:
            self.loop.reply_error(sock, env, error)
        else:
            self.loop.reply(sock, env, result)

    def run_now(self, env):
        request = env.msg.request
        if request in self.manual_runs:
            return self.loop.reply(self.result_router, env, {"executions": self.manual_runs[request]})

        def got(result, err):
            if err is not None:
                return self.loop.reply_error(self.result_router, env, err)
            self.enqueue(result["job"], self.loop.now(), manual=True, reply=(self.result_router, env), request=request)

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
        now = self.loop.now()
        if isinstance(msg, m.RunAck):
            self.observe_lateness(msg.id, msg.started_at)
            self.core.acked(msg.id, msg.started_at, now)
        elif isinstance(msg, m.ExecHeartbeat):
            self.core.heard(msg.ids, now)
        elif isinstance(msg, m.ExecResult):
            # Checked here, not only by Raft: results go there in one entry per round, and one
            # ill-formed record would fail every result batched with it.
            execution = models.check_execution(msg.execution)
            self.confirm.setdefault(execution["id"], []).append(env)
            self.core.finished(execution, now)
        elif isinstance(msg, m.JobRun):
            self.run_now(env)
        elif isinstance(msg, m.ExecKill):
            self.kill(env)
        elif isinstance(msg, m.BusyList):
            self.loop.reply(self.result_router, env, {"executions": self.core.busy(self.loop.now())})
        else:
            raise errors.BadRequest(f"the dispatcher does not answer {env.type}")

    def observe_lateness(self, execution_id, started_at):
        """Measured here, at the first ack of a scheduled run: ticks are claimed ahead and held
        until their time, so only the executor's start tells how late a run really was."""
        run = self.core.runs.get(execution_id)
        if run is None or run.execution["status"] != "claimed" or run.execution.get("manual") or not started_at:
            return
        execution = run.execution
        if execution.get("attempt", 1) == 1:
            late = started_at - models.start_time(execution)
            self.loop.metrics.add(metrics.SCHEDULER_LATENESS).observe(max(0, late) / 1000)

    def kill(self, env):
        msg = env.msg
        targets = [msg.id] if msg.id else [x["id"] for x in self.core.running(msg.job)]
        killed = [i for i in targets if self.core.kill(i, "killed on request")]
        if msg.id and not killed:
            raise errors.NotFound(f"execution {msg.id!r} of {msg.job!r} is not running")
        self.loop.reply(self.result_router, env, {"killed": killed})

    def process(self):
        rd = self.core.ready()
        if rd.empty():
            return
        for executions, job, (kind, name) in rd.publish:
            self.loop.send(self.run_pub, m.RunStart(executions=executions, job=job), topic=wire.topic(kind, name))
        for execution, reason in rd.kill:
            self.loop.send(self.run_pub, m.RunKill(id=execution["id"], node=execution["node"], reason=reason),
                           topic=wire.topic("node", execution["node"]))
        if rd.record:
            self.record(rd.record)
        for job, execution in rd.retry:
            delay = max(0, execution.pop("retry_at") - self.loop.now())
            self.loop.after(delay, lambda job=job, execution=execution: self.retry(job, execution))
        self.core.advance(rd)

    def retry(self, job, execution):
        if not self.active:
            return  # the new leader's catch-up and the group's record take it from here
        alive = {x["name"] for x in self.core.members if x["status"] == "alive"}
        if execution["node"] not in alive:
            others = self.core.plan(job, execution["scheduled_at"], self.loop.now(), manual=True)
            if others:  # the node is gone: the retry runs elsewhere
                node = others[0]["node"]
                execution = dict(execution, node=node,
                                 id=models.execution_id(job["name"], execution["group"], node, execution["attempt"]))
        log.info("retrying job=%s attempt=%d node=%s", job["name"], execution["attempt"], execution["node"])
        self.enqueue(job, execution["scheduled_at"], manual=True, execution=execution)

    def _logged(self, what, execution):
        def done(result, err):
            if err is not None:
                log.warning("recording %s failed id=%s: %s", what, execution["id"], err)
        return done

    def record(self, records):
        """The round's acks and results, in one Raft entry; each item's outcome as if alone."""
        acks, finishes = split_records(records)

        def done(result, err):
            for i, ack in enumerate(acks):
                _, failed = _item(result, err, "acks", i)
                if failed is not None:
                    log.warning("recording ack failed id=%s: %s", ack["id"], failed)
            for i, execution in enumerate(finishes):
                self.recorded(execution, *_item(result, err, "finishes", i))

        self.raft.call(m.ExecRecord(acks=acks, finishes=finishes, term=self.term), done)

    def recorded(self, execution, result, err):
        waiting = self.confirm.pop(execution["id"], [])
        if err is not None:
            # The executor re-sends its result; it is recorded on a later attempt.
            log.warning("recording result failed id=%s: %s", execution["id"], err)
            return
        for env in waiting:
            self.loop.reply(self.result_router, env, {"id": execution["id"]})
        record = result["execution"]
        self.loop.send(self.output_pub, m.ExecResult(execution=record), topic=wire.output_topic(record["job"], record["id"]))
        if result.get("duplicate"):
            return
        self.loop.metrics.add(metrics.JOB_EXECUTIONS).inc(job=record["job"], status=record["status"])
        if result.get("group_done"):
            self.group_done(record, result["group_status"])
        elif record["status"] == "skipped":
            self.skips_recorded(record["job"], [record])  # a full node skipped it

    def group_done(self, record, status):
        """A firing is over: its notifications go out; on success its dependent jobs run, and
        an ephemeral job goes."""
        if not self.active:
            return

        def got(result, err):
            if err is not None:
                return
            job = result["job"]
            self.notifier.finished(job, record, status)
            if status != "success":
                return
            for child in job["dependent_jobs"]:
                self.raft.call(m.JobGet(name=child, stale=True), self._run_child(job["name"]))
            if job["ephemeral"]:
                log.info("ephemeral job succeeded, removing it job=%s", job["name"])
                self.raft.call(m.JobDelete(name=job["name"]), self._logged("ephemeral delete", record))

        self.raft.call(m.JobGet(name=record["job"], stale=True), got)

    def _run_child(self, parent):
        def got(result, err):
            if err is None and not result["job"]["disabled"]:
                log.info("running dependent job=%s after parent=%s", result["job"]["name"], parent)
                self.enqueue(result["job"], self.loop.now(), manual=True)
        return got

    def status(self):
        return {"role": "leader" if self.active else "follower", "term": self.term,
                "running": len(self.core.runs), "members": len(self.core.members),
                "alive": sum(x["status"] == "alive" for x in self.core.members),
                "claims_waiting": sum(len(q) for q in self.claims.values())}


def _item(result, err, kind, i):
    """(result, error) of item i of a batched record: the batch's error, or the item's own."""
    if err is not None:
        return None, err
    outcome = result[kind][i]
    if outcome and "error" in outcome:
        return None, errors.Error.from_code(outcome["error"], outcome["message"])
    return outcome, None


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-dispatcher")
    loop = Loop(conf, service="dispatcher")
    DispatcherShell(conf, loop)
    sys.exit(loop.run())
