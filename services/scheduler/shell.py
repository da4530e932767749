"""The scheduler service's shell: follows the local raft state feed (who leads, which jobs
changed), loads a job snapshot when this node becomes a ready leader, and sends each due tick
to the local dispatcher, which claims it in Raft before anything runs."""

from __future__ import annotations

import logging
import sys

import zmq

from common import config, messages as m, wire
from common.loop import Loop, mono_ms
from services.scheduler.core import Scheduler, carry_out

log = logging.getLogger(__name__)

PAGE = 1000              # jobs per job.list request while loading
RELOAD_RETRY_MS = 500

FEED_SILENCE_MS = 1500  # the raft feed heartbeats every 500 ms; silence means no leadership here


class SchedulerShell:
    def __init__(self, conf, loop):
        self.conf, self.loop = conf, loop
        self.core = Scheduler(lead_ms=conf.scheduler.lead_ms)
        self.leading = False
        self.loaded = False
        self.loading = None  # a snapshot being read a page at a time
        self.heard_at = 0
        self.raft = loop.peer("raft", [config.ipc(conf, "raft", "client")])
        self.dispatcher = loop.peer("dispatcher", [config.ipc(conf, "dispatcher", "tick")])
        loop.socket(zmq.SUB, "state", on=self.on_state, connect=[config.ipc(conf, "raft", "state")],
                    subscribe=[wire.topic("leader"), wire.topic("job")])
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.every(500, self.check_silence)
        loop.every(conf.scheduler.resync_ms, self.reload)
        loop.status = self.status
        loop.ready = True

    def on_state(self, env):
        msg = env.msg
        if isinstance(msg, m.RaftLeader):
            self.heard_at = mono_ms()
            self.set_leading(msg.ready and msg.leader == msg.node)
        elif isinstance(msg, m.JobChanged) and self.loading is not None:
            self.loading["feed"].append(env)  # applied on top of the snapshot once it is whole
        elif isinstance(msg, m.JobChanged) and self.loaded:
            self.step(env)

    def step(self, env):
        if not self.core.step(env, self.loop.now()):
            log.info("job feed asks for a reload seq=%d got=%d name=%r", self.core.seq, env.msg.index, env.msg.name)
            self.reload()
            return False
        return True

    def set_leading(self, leading):
        if leading == self.leading:
            return
        self.leading = leading
        log.info("scheduler active=%s", leading)
        if leading:
            self.reload()
        else:
            self.core.activate(False, self.loop.now())
            self.loaded = False

    def check_silence(self):
        if self.leading and mono_ms() - self.heard_at > FEED_SILENCE_MS:
            log.warning("raft state feed silent for %d ms: stopping", mono_ms() - self.heard_at)
            self.set_leading(False)

    def reload(self):
        """Read every job, a page at a time, from this node's state: it leads and has applied
        everything, so the local copy is current. The feed's changes meanwhile are kept and
        applied on top (a page may already hold some of them: applying a change twice is harmless)."""
        if not self.leading or self.loading is not None:
            return
        self.loading = {"jobs": [], "seq": None, "settings": None, "feed": []}
        self.raft.call(m.JobList(stale=True, limit=PAGE, secrets=True), self._paged)

    def _paged(self, page, err):
        snapshot, self.loading = self.loading, None
        if snapshot is None or not self.leading:
            return
        if err is not None:
            log.warning("job snapshot failed, trying again: %s", err)
            self.loop.after(RELOAD_RETRY_MS, self.reload)
            return
        snapshot["jobs"].extend(page.jobs)
        if snapshot["seq"] is None:
            snapshot["seq"], snapshot["settings"] = page.seq, page.settings
        if page.more:
            self.loading = snapshot
            self.raft.call(m.JobList(stale=True, after=page.jobs[-1]["name"], limit=PAGE, secrets=True), self._paged)
            return
        now = self.loop.now()
        self.core.load(snapshot["jobs"], snapshot["seq"], now, snapshot["settings"])
        self.loaded = True
        self.core.activate(True, now)  # catches up what was missed, by each job's policy
        for env in snapshot["feed"]:
            if not self.step(env):
                break

    def process(self):
        rd = self.core.ready()
        if rd.empty():
            return
        carry_out(rd, fire=self.fire, skip=self.skip)
        self.core.advance(rd)

    def fire(self, job, at):
        log.debug("fire job=%s scheduled_at=%d", job["name"], at)
        self.dispatcher.call(m.TickFire(job=job, scheduled_at=at),
                             lambda reply, err: self.core.answered(job["name"], at, err, self.loop.now()))

    def skip(self, name, ticks, reason):
        log.info("skipping job=%s ticks=%d reason=%s", name, len(ticks), reason)
        if ticks:
            # Through the dispatcher, which records them in Raft and sends on_skipped notices.
            self.dispatcher.call(m.TickSkip(job=name, ticks=ticks, reason=reason), self._skipped(name))

    def _skipped(self, name):
        def answered(result, err):
            if err is not None:
                log.warning("recording skipped ticks failed job=%s: %s", name, err)
        return answered

    def status(self):
        return {"role": "leader" if self.leading else "follower", "active": self.core.active,
                "jobs": len(self.core.jobs), "armed": len(self.core.next_at)}


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-scheduler")
    loop = Loop(conf, service="scheduler")
    loop.start(lambda: SchedulerShell(conf, loop))
    sys.exit(loop.run())
