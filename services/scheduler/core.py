"""The scheduler core, pure: jobs in (a snapshot, then changes), time in, ticks out. It fires
only while active (this node leads and its state is complete); after a stall it fires each
job once, for the first tick it missed, then plans from now (misfire policies: issue #5)."""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field

from common import messages as m, models
from common.errors import BadRequest

log = logging.getLogger(__name__)


@dataclass
class Ready:
    fires: list = field(default_factory=list)  # (job, scheduled_at)

    def empty(self):
        return not self.fires


class Scheduler:
    def __init__(self, default_timezone=""):
        self.default_timezone = default_timezone
        self.jobs = {}
        self.next_at = {}
        self.heap = []
        self.active = False
        self.seq = 0  # job-change sequence of the state feed this view includes
        self.fires = []

    # -- inputs ----------------------------------------------------------------------------

    def load(self, jobs, seq, now):
        """A full snapshot of the jobs, as of feed sequence seq."""
        self.jobs = {job["name"]: job for job in jobs}
        self.seq = seq
        self.next_at, self.heap = {}, []
        for name in self.jobs:
            self.plan(name, now)

    def step(self, env, now):
        """A job.changed from the state feed; False when it shows a gap (reload the snapshot)."""
        msg = env.msg
        if not isinstance(msg, m.JobChanged) or msg.index <= self.seq:
            return True
        if msg.index != self.seq + 1:
            return False
        self.seq = msg.index
        if msg.job is None:
            self.jobs.pop(msg.name, None)
            self.next_at.pop(msg.name, None)
        else:
            self.jobs[msg.name] = msg.job
            self.plan(msg.name, now)
        return True

    def activate(self, active):
        self.active = active

    def tick(self, now):
        while self.heap and self.heap[0][0] <= now:
            at, name = heapq.heappop(self.heap)
            if self.next_at.get(name) != at:
                continue  # superseded by a later plan
            if self.active:
                self.fires.append((self.jobs[name], at))
            self.plan(name, max(at, now))

    # -- outputs ---------------------------------------------------------------------------

    def deadline(self):
        while self.heap and self.next_at.get(self.heap[0][1]) != self.heap[0][0]:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def ready(self):
        return Ready(fires=list(self.fires))

    def advance(self, rd):
        del self.fires[:len(rd.fires)]

    # -- planning --------------------------------------------------------------------------

    def plan(self, name, now):
        job = self.jobs[name]
        try:
            at = models.next_fire(job, now, self.default_timezone)
        except BadRequest as err:
            log.warning("job has no valid schedule job=%s error=%s", name, err)
            at = None
        if at is None:
            self.next_at.pop(name, None)
            return
        self.next_at[name] = at
        heapq.heappush(self.heap, (at, name))
