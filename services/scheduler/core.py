"""The scheduler core, pure: jobs and settings in (a snapshot, then changes), time in, ticks
out. It fires only while active (this node leads and its state is complete). Ticks missed
while no scheduler ran — a failover, a stall — are handled by each job's misfire policy
within its catch-up window, and every tick that will not run is handed out as skipped, with
the reason. A job's ticks are fired one at a time, in order, each sent again until the
dispatcher says it was claimed or refused: so the newest claimed tick of a job is a line
below which every tick was settled, and a new leader catches up from there. A job that may
overlap itself is fired `lead_ms` early, as Quartz acquires triggers ahead: the claim commits
before the tick, and the dispatcher holds the run until its time, so a run is not late by the
claim's round trip."""

from __future__ import annotations

import collections
import heapq
import logging
from dataclasses import dataclass, field

from common import messages as m, models
from common.errors import BadRequest

log = logging.getLogger(__name__)

MAX_TICKS_PER_LOOK = 10_000  # ticks looked at for one job at once; more are counted as "more"
FIRE_RESEND_MS = 3000        # a fired tick not yet resolved by the dispatcher is fired again
GRACE_MS = 1000              # a tick this late is on time; later than this it has misfired


@dataclass
class Ready:
    fires: list = field(default_factory=list)  # (job, scheduled_at)
    skips: list = field(default_factory=list)  # (job name, [scheduled_at...], reason)

    def empty(self):
        return not (self.fires or self.skips)


class Scheduler:
    def __init__(self, lead_ms=0):
        self.lead_ms = lead_ms
        self.jobs, self.settings = {}, {}
        self.next_at, self.heap = {}, []
        self.handled = {}     # job → the newest tick fired or skipped
        self.pending = {}     # job → its ticks waiting to be settled, oldest first (the one fired)
        self.resend_at = {}   # job → when to fire its oldest pending tick again
        self.active = False
        self.seq = 0          # job-change sequence of the state feed this view includes
        self.fires, self.skips = [], []

    # -- inputs ----------------------------------------------------------------------------

    def load(self, jobs, seq, now, settings=None):
        """A full snapshot of the jobs (and cluster settings), as of feed sequence seq."""
        self.jobs = {job["name"]: job for job in jobs}
        self.settings = settings or {}
        self.seq = seq
        self.next_at, self.heap, self.handled = {}, [], {}
        for name in self.jobs:
            self.arm(name, now)

    def step(self, env, now):
        """A job.changed from the state feed; False when it asks for a reload (a gap in the
        sequence, or a change without a name: settings changed or a snapshot was installed)."""
        msg = env.msg
        if not isinstance(msg, m.JobChanged) or msg.index <= self.seq:
            return True
        if msg.index != self.seq + 1 or not msg.name:
            return False
        self.seq = msg.index
        if msg.job is None:
            for table in (self.jobs, self.next_at, self.handled):
                table.pop(msg.name, None)
        else:
            self.jobs[msg.name] = msg.job
            self.arm(msg.name, now)
        return True

    def activate(self, active, now=0):
        """On: catch up every job's missed ticks by its policy. Off: forget what was pending."""
        self.active = active
        if not active:
            self.pending.clear()
            self.resend_at.clear()
            return
        for name in sorted(self.jobs):
            self.due(name, now)

    def resolved(self, name, at, now):
        """The dispatcher claimed the tick, or the state machine refused or skipped it: the
        job's next tick, if one is waiting, is fired now."""
        queue = self.pending.get(name)
        if not queue or queue[0] != at:
            return
        queue.popleft()
        if queue and name in self.jobs:
            self.fire(name, now)
        else:
            self.pending.pop(name, None)
            self.resend_at.pop(name, None)

    def answered(self, name, at, error, now):
        """The dispatcher's answer to a fired tick (error: an errors.Error, or None). Claimed,
        skipped or already claimed settles it, and so does a job that is gone; anything else
        (not leading, a timeout) leaves it to be fired again."""
        if error is None or error.code in ("conflict", "not_found"):
            self.resolved(name, at, now)
        else:
            log.info("tick not settled job=%s scheduled_at=%d: %s", name, at, error)

    def fire(self, name, now):
        self.fires.append((self.jobs[name], self.pending[name][0]))
        self.resend_at[name] = now + FIRE_RESEND_MS

    def lead(self, job):
        """Early only when the claim cannot be refused for a run still going: under forbid (or
        replace) a tick claimed before its time could find the previous run not yet ended."""
        return self.lead_ms if job.get("concurrency", "allow") == "allow" else 0

    def tick(self, now):
        while self.heap and self.heap[0][0] <= now:
            due, name = heapq.heappop(self.heap)
            if self.armed(due, name):
                self.due(name, now)
        for name, again in list(self.resend_at.items()):
            if again <= now and name in self.jobs:
                self.fire(name, now)

    # -- outputs ---------------------------------------------------------------------------

    def deadline(self):
        while self.heap and not self.armed(*self.heap[0]):
            heapq.heappop(self.heap)
        dues = [self.heap[0][0]] if self.heap else []
        dues += [min(self.resend_at.values())] if self.resend_at else []
        return min(dues) if dues else None

    def armed(self, due, name):
        return name in self.next_at and self.next_at[name] - self.lead(self.jobs[name]) == due

    def ready(self):
        return Ready(fires=list(self.fires), skips=list(self.skips))

    def advance(self, rd):
        del self.fires[:len(rd.fires)]
        del self.skips[:len(rd.skips)]

    # -- the policy ------------------------------------------------------------------------

    def due(self, name, now):
        """Every tick of the job up to now that was neither fired nor skipped, by the policy."""
        job = self.jobs[name]
        if not self.active:
            # Nothing fires, so nothing is handled: armed past the lead, or it is due again at once.
            return self.arm(name, now + self.lead(job))
        ticks, more = self.missed(job, now + self.lead(job))
        ahead = [t for t in ticks if t > now]  # fired early, never misfired
        window = max(models.duration_ms(job, "catchup_window"), GRACE_MS)
        late = [t for t in ticks if t < now - window]
        recent = [t for t in ticks if now - window <= t <= now]
        if late or more:
            extra = f" and {more} more" if more else ""
            self.skips.append((name, late, f"missed by more than the catch-up window ({job['catchup_window']}){extra}"))
        policy = job.get("misfire_policy", "run_once")
        missed = [t for t in recent if t < now - GRACE_MS]
        if policy == "run_once" and len(recent) > 1:
            self.skips.append((name, recent[:-1], f"misfire policy run_once: coalesced into the tick at "
                                                  f"{models.rfc3339(recent[-1])}"))
            recent = recent[-1:]
        elif policy == "skip" and missed:
            self.skips.append((name, missed, "misfire policy skip: missed while no scheduler ran"))
            recent = recent[len(missed):]
        recent += ahead
        if recent:
            queue = self.pending.setdefault(name, collections.deque())
            idle = not queue
            queue.extend(recent)
            if idle:
                self.fire(name, now)
        if ticks:
            self.handled[name] = ticks[-1]
        self.arm(name, now)

    def missed(self, job, now):
        """Ticks in (the newest tick handled or claimed, now], and how many more lie beyond the cap."""
        sched = self.schedule(job)
        if sched is None or job["disabled"] or job["parent_job"]:
            return [], 0
        since = self.since(job)
        until = min(now, job["expires_at"]) if job.get("expires_at") else now
        ticks, t = [], since
        while len(ticks) < MAX_TICKS_PER_LOOK:
            t = sched.next_after(t)
            if t is None or t > until:
                return ticks, 0
            ticks.append(t)
        return ticks, 1  # at least one more: "and more"

    def since(self, job):
        """The newest tick that needs nothing more: handled here, claimed by any leader, or
        before the job existed, was enabled or starts."""
        since = max(self.handled.get(job["name"]) or 0, job.get("last_scheduled_at") or 0, job["created_at"],
                    job.get("enabled_at") or 0)
        return max(since, job["starts_at"] - 1) if job.get("starts_at") else since

    def arm(self, name, now):
        """Arm the job's next tick after now, from the same line missed() starts at, so the tick
        that comes due is one missed() finds (a created_at ahead of this clock would be due forever)."""
        job = self.jobs[name]
        try:
            at = models.next_fire(job, max(now, self.since(job)), self.settings.get("default_timezone", ""))
        except BadRequest as err:
            log.warning("job has no valid schedule job=%s error=%s", name, err)
            at = None
        if at is None:
            self.next_at.pop(name, None)
            return
        self.next_at[name] = at
        heapq.heappush(self.heap, (at - self.lead(job), name))

    def schedule(self, job):
        try:
            return models.job_schedule(job, self.settings.get("default_timezone", ""))
        except BadRequest:
            return None


def carry_out(rd, *, fire, skip):
    """The Ready's order, for the shell and the scheduler simulator: fires (each answered
    through answered()), then skips."""
    for job, at in rd.fires:
        fire(job, at)
    for name, ticks, reason in rd.skips:
        skip(name, ticks, reason)
