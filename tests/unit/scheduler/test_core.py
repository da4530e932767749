"""services/scheduler/core.py: jobs in (snapshot, then the change feed), time in, fires out;
it fires only while active and never twice for one tick."""

from common import messages as m, models, wire
from services.scheduler.core import Scheduler

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a whole minute
MINUTE_MS = 60_000


def job(name, schedule="0 * * * * *", **fields):
    doc = {"name": name, "schedule": schedule, "executor": "shell", "executor_config": {"command": "true"}}
    return models.validate_job({**doc, **fields}, now=NOW)


def changed(name, job_or_none, index):
    msg = m.JobChanged(name=name, job=job_or_none, index=index)
    return wire.Envelope(msg.TYPE, "raft1", wire.new_id(), b"", 0, msg)


def active(*jobs, seq=0):
    s = Scheduler()
    s.load(list(jobs), seq, NOW)
    s.activate(True)
    return s


def drain(s):
    rd = s.ready()
    s.advance(rd)
    return [(j["name"], at) for j, at in rd.fires]


def test_load_plans_every_job_and_deadline_is_the_earliest():
    s = active(job("minutely"), job("hourly", "@hourly"))
    assert s.deadline() == NOW + MINUTE_MS


def test_no_jobs_no_deadline():
    assert active().deadline() is None


def test_tick_before_the_deadline_fires_nothing():
    s = active(job("a"))
    s.tick(NOW + MINUTE_MS - 1)
    assert drain(s) == []


def test_tick_fires_due_jobs_and_plans_the_next():
    s = active(job("a"), job("b", "@hourly"))
    s.tick(NOW + MINUTE_MS)
    assert drain(s) == [("a", NOW + MINUTE_MS)]
    assert s.deadline() == NOW + 2 * MINUTE_MS
    s.tick(NOW + 2 * MINUTE_MS)
    assert drain(s) == [("a", NOW + 2 * MINUTE_MS)]


def test_a_tick_fires_once_even_when_ticked_again():
    s = active(job("a"))
    s.tick(NOW + MINUTE_MS)
    s.tick(NOW + MINUTE_MS)
    s.tick(NOW + MINUTE_MS + 500)
    assert drain(s) == [("a", NOW + MINUTE_MS)]


def test_inactive_scheduler_fires_nothing_and_does_not_catch_up_later():
    s = Scheduler()
    s.load([job("a")], 0, NOW)
    s.tick(NOW + MINUTE_MS)
    assert drain(s) == []
    s.activate(True)
    s.tick(NOW + MINUTE_MS + 1)
    assert drain(s) == []  # the tick that passed while inactive belongs to whoever led then
    s.tick(NOW + 2 * MINUTE_MS)
    assert drain(s) == [("a", NOW + 2 * MINUTE_MS)]


def test_after_a_stall_a_job_fires_once_not_a_burst():
    s = active(job("a"))
    s.tick(NOW + 10 * MINUTE_MS + 5)
    fires = drain(s)
    assert len(fires) == 1
    assert NOW < fires[0][1] <= NOW + 10 * MINUTE_MS
    assert s.deadline() == NOW + 11 * MINUTE_MS


def test_planning_starts_after_the_last_scheduled_tick():
    claimed = dict(job("a"), last_scheduled_at=NOW + 3 * MINUTE_MS)
    assert active(claimed).deadline() == NOW + 4 * MINUTE_MS


def test_disabled_child_and_manual_jobs_are_not_planned():
    s = active(job("off", disabled=True), job("kid", schedule="", parent_job="off"), job("man", "@manually"))
    assert s.deadline() is None
    s.tick(NOW + 365 * 24 * 60 * MINUTE_MS)
    assert drain(s) == []


def test_at_job_fires_once():
    s = active(job("once", "@at 2026-01-01T00:00:30Z"))
    s.tick(NOW + MINUTE_MS)
    assert drain(s) == [("once", NOW + 30_000)]
    assert s.deadline() is None


def test_change_feed_adds_updates_and_removes_jobs():
    s = active(seq=4)
    assert s.step(changed("a", job("a"), 5), NOW)
    assert s.deadline() == NOW + MINUTE_MS
    assert s.step(changed("a", job("a", "@hourly"), 6), NOW)
    assert s.deadline() == NOW + 60 * MINUTE_MS
    s.tick(NOW + MINUTE_MS)
    assert drain(s) == []  # the old plan was superseded
    assert s.step(changed("a", None, 7), NOW)
    assert s.deadline() is None
    s.tick(NOW + 60 * MINUTE_MS)
    assert drain(s) == [] and s.seq == 7


def test_change_feed_ignores_old_and_reports_gaps():
    s = active(job("a"), seq=10)
    assert s.step(changed("a", None, 10), NOW)       # already in the snapshot
    assert "a" in s.jobs
    assert s.step(changed("b", job("b"), 12), NOW) is False  # 11 is missing: reload
    assert "b" not in s.jobs and s.seq == 10


def test_feed_ignores_other_messages():
    s = active(job("a"), seq=1)
    msg = m.RaftLeader(node="n", leader="n", term=1, ready=True, applied=1)
    assert s.step(wire.Envelope(msg.TYPE, "n", b"", b"", 1, msg), NOW)
    assert s.seq == 1


def test_job_with_an_unparseable_schedule_is_skipped():
    broken = dict(job("bad"), schedule="not a schedule")
    s = active(broken, job("good"))
    assert s.deadline() == NOW + MINUTE_MS
    s.tick(NOW + MINUTE_MS)
    assert drain(s) == [("good", NOW + MINUTE_MS)]


def test_reload_replaces_the_view():
    s = active(job("a"))
    s.load([job("b", "@hourly")], 20, NOW)
    assert set(s.jobs) == {"b"} and s.seq == 20
    assert s.deadline() == NOW + 60 * MINUTE_MS


def test_advance_keeps_fires_that_came_after_ready():
    s = active(job("a"), job("b", "@every 90s"))
    s.tick(NOW + MINUTE_MS)
    rd = s.ready()
    s.tick(NOW + 90_000)
    s.advance(rd)
    assert [(j["name"], at) for j, at in rd.fires] == [("a", NOW + MINUTE_MS)]
    assert drain(s) == [("b", NOW + 90_000)]
    assert s.ready().empty()
