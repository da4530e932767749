"""services/scheduler/core.py with a virtual clock: jobs in (snapshot, then the change feed),
time in, fires and skips out. It fires only while active, never twice for one tick, catches
up missed ticks by each job's misfire policy and hands out every tick that will not run."""

from common import messages as m, models, wire
from services.scheduler.core import FIRE_RESEND_MS, GRACE_MS, Scheduler

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a whole minute
MINUTE_MS = 60_000


def job(name, schedule="0 * * * * *", created=NOW, **fields):
    doc = {"name": name, "schedule": schedule, "executor": "shell", "executor_config": {"command": "true"}}
    return models.validate_job({**doc, **fields}, now=created)


def changed(name, job_or_none, index):
    msg = m.JobChanged(name=name, job=job_or_none, index=index)
    return wire.Envelope(msg.TYPE, "raft1", wire.new_id(), b"", 0, msg)


def scheduler(*jobs, now=NOW, activate=True, settings=None, lead_ms=0):
    s = Scheduler(lead_ms=lead_ms)
    s.load(list(jobs), 0, now, settings)
    if activate:
        s.activate(True, now)
    return s


def drain(s):
    rd = s.ready()
    s.advance(rd)
    return [(j["name"], at) for j, at in rd.fires], [(n, ticks, reason) for n, ticks, reason in rd.skips]


def fires(s):
    """Every fire, each answered by the dispatcher in turn (a job's next tick waits for that)."""
    found = []
    while True:
        batch, _ = drain(s)
        if not batch:
            return found
        for name, at in batch:
            found.append((name, at))
            s.resolved(name, at, at)


def test_a_jobs_ticks_are_fired_one_at_a_time_in_order():
    s = scheduler(job("a", "@every 10s", misfire_policy="run_all"))
    s.tick(NOW + 35_000)
    assert drain(s)[0] == [("a", NOW + 10_000)]
    assert drain(s)[0] == []  # the next waits until this one is settled
    s.resolved("a", NOW + 10_000, NOW + 35_001)
    assert drain(s)[0] == [("a", NOW + 20_000)]


def test_deadline_is_the_earliest_next_fire():
    assert scheduler(job("minutely"), job("hourly", "@hourly")).deadline() == NOW + MINUTE_MS
    assert scheduler().deadline() is None


def test_due_jobs_fire_and_the_next_is_planned():
    s = scheduler(job("a"), job("b", "@hourly"))
    s.tick(NOW + MINUTE_MS - 1)
    assert fires(s) == []
    s.tick(NOW + MINUTE_MS)
    assert fires(s) == [("a", NOW + MINUTE_MS)]
    assert s.deadline() == NOW + 2 * MINUTE_MS
    s.tick(NOW + MINUTE_MS + 5)
    assert fires(s) == []  # once per tick


def test_a_fire_is_repeated_until_the_dispatcher_resolves_it():
    s = scheduler(job("a"))
    s.tick(NOW + MINUTE_MS)
    assert drain(s)[0] == [("a", NOW + MINUTE_MS)]
    s.tick(NOW + MINUTE_MS + FIRE_RESEND_MS)
    assert drain(s)[0] == [("a", NOW + MINUTE_MS)]  # same tick: the claim is idempotent
    s.resolved("a", NOW + MINUTE_MS, NOW + MINUTE_MS + FIRE_RESEND_MS)
    s.tick(NOW + MINUTE_MS + 2 * FIRE_RESEND_MS)
    assert drain(s)[0] == []


def test_an_inactive_scheduler_fires_nothing():
    s = scheduler(job("a"), activate=False)
    s.tick(NOW + 5 * MINUTE_MS)
    assert drain(s) == ([], [])


def test_run_once_catches_up_the_newest_missed_tick_and_records_the_others():
    # The job last ran at NOW; this scheduler becomes leader 3 minutes and 10 s later.
    s = scheduler(job("a", last_scheduled_at=None), now=NOW, activate=False)
    later = NOW + 3 * MINUTE_MS + 10_000
    s.activate(True, later)
    fired, skipped = drain(s)
    assert fired == [("a", NOW + 3 * MINUTE_MS)]
    assert skipped[0][:2] == ("a", [NOW + MINUTE_MS, NOW + 2 * MINUTE_MS]) and "coalesced" in skipped[0][2]


def test_run_all_fires_every_missed_tick_inside_the_catch_up_window():
    s = scheduler(job("a", "@every 10s", misfire_policy="run_all", catchup_window="30s"), activate=False)
    later = NOW + 65_000
    s.activate(True, later)
    skipped = s.ready().skips
    assert [at for _, at in fires(s)] == [NOW + 40_000, NOW + 50_000, NOW + 60_000]
    assert skipped == [("a", [NOW + 10_000, NOW + 20_000, NOW + 30_000],
                        "missed by more than the catch-up window (30s)")]


def test_skip_records_missed_ticks_and_fires_only_on_time_ones():
    s = scheduler(job("a", "@every 10s", misfire_policy="skip"), activate=False)
    s.activate(True, NOW + 30_000 + GRACE_MS // 2)
    fired, skipped = drain(s)
    assert fired == [("a", NOW + 30_000)]  # within the grace: on time
    assert skipped == [("a", [NOW + 10_000, NOW + 20_000], "misfire policy skip: missed while no scheduler ran")]


def test_a_stall_while_active_is_a_misfire_too():
    s = scheduler(job("a", "@every 10s", misfire_policy="run_all"))
    s.tick(NOW + 35_000)
    assert [at for _, at in fires(s)] == [NOW + 10_000, NOW + 20_000, NOW + 30_000]


def test_ticks_claimed_by_an_earlier_leader_are_not_fired_again():
    s = scheduler(job("a", "@every 10s", misfire_policy="run_all", last_scheduled_at=None), activate=False)
    s.jobs["a"]["last_scheduled_at"] = NOW + 20_000  # claimed before the failover
    s.activate(True, NOW + 41_000)
    assert [at for _, at in fires(s)] == [NOW + 30_000, NOW + 40_000]


def test_at_fires_once_and_not_before_the_job_existed():
    at = NOW + 90_000
    s = scheduler(job("once", f"@at {models.rfc3339(at)}"))
    s.tick(at)
    assert fires(s) == [("once", at)]
    s.tick(at + MINUTE_MS)
    assert fires(s) == [] and s.deadline() is None
    past = scheduler(job("late", f"@at {models.rfc3339(NOW - 1000)}"))
    assert drain(past) == ([], [])


def test_starts_at_expires_at_and_disabled_bound_the_ticks():
    s = scheduler(job("a", starts_at=models.rfc3339(NOW + 2 * MINUTE_MS), expires_at=models.rfc3339(NOW + 3 * MINUTE_MS)),
                  job("off", disabled=True))
    found = []
    for minute in range(1, 6):
        s.tick(NOW + minute * MINUTE_MS)
        found += fires(s)
    assert found == [("a", NOW + 2 * MINUTE_MS), ("a", NOW + 3 * MINUTE_MS)]


def test_the_feed_adds_changes_and_deletes_jobs():
    s = scheduler(job("a"))
    assert s.step(changed("b", job("b", "@every 30s"), 1), NOW)
    assert s.step(changed("a", None, 2), NOW)
    s.tick(NOW + 30_000)
    assert fires(s) == [("b", NOW + 30_000)]
    s.tick(NOW + MINUTE_MS)
    assert fires(s) == [("b", NOW + MINUTE_MS)]  # and nothing of the deleted "a"
    assert "a" not in s.jobs


def test_a_gap_or_a_nameless_change_asks_for_a_reload():
    s = scheduler(job("a"))
    assert s.step(changed("b", job("b"), 2), NOW) is False
    assert s.step(changed("", None, 1), NOW) is False
    assert s.step(changed("c", job("c"), 0), NOW) is True  # already seen: ignored


def test_the_cluster_default_time_zone_applies_to_jobs_without_one():
    daily = job("daily", "0 0 9 * * *")
    berlin = scheduler(daily, settings={"default_timezone": "Europe/Berlin"})
    utc = scheduler(daily)
    assert utc.deadline() - berlin.deadline() == 3_600_000  # 09:00 in Berlin is 08:00 UTC in winter


def test_a_job_with_an_unparseable_schedule_is_left_out():
    broken = job("a")
    broken["schedule"] = "not a schedule"
    s = scheduler(broken, job("b"))
    s.tick(NOW + MINUTE_MS)
    assert fires(s) == [("b", NOW + MINUTE_MS)]


def test_ticks_while_a_job_was_disabled_are_not_missed_ticks():
    j = job("a", "@every 10s", misfire_policy="run_all")
    j.update(last_scheduled_at=NOW + 10_000, enabled_at=NOW + 55_000)  # disabled from 10 s to 55 s
    s = scheduler(j, activate=False)
    s.activate(True, NOW + 61_000)
    assert [at for _, at in fires(s)] == [NOW + 60_000]
    assert drain(s)[1] == []


# -- firing ahead ---------------------------------------------------------------------------


def test_a_job_that_may_overlap_is_fired_ahead_by_the_lead_with_its_own_time():
    s = scheduler(job("a"), lead_ms=500)
    assert s.deadline() == NOW + MINUTE_MS - 500
    s.tick(NOW + MINUTE_MS - 501)
    assert fires(s) == []
    s.tick(NOW + MINUTE_MS - 500)
    assert fires(s) == [("a", NOW + MINUTE_MS)]  # the scheduled time, not the time it was fired
    s.tick(NOW + MINUTE_MS)
    assert fires(s) == []


def test_forbid_and_replace_are_fired_on_time_not_ahead():
    # Claimed early, a tick of a forbid job could be refused for a run that ends before its time.
    s = scheduler(job("f", concurrency="forbid"), job("r", concurrency="replace"), lead_ms=500)
    s.tick(NOW + MINUTE_MS - 1)
    assert fires(s) == []
    s.tick(NOW + MINUTE_MS)
    assert sorted(fires(s)) == [("f", NOW + MINUTE_MS), ("r", NOW + MINUTE_MS)]


def test_a_lead_longer_than_the_period_coalesces_nothing():
    s = scheduler(job("a", "@every 1s"), lead_ms=2500)
    seen, skipped = [], []
    for t in range(NOW, NOW + 5000, 100):
        s.tick(t)
        while True:
            batch, skips = drain(s)
            skipped += skips
            if not batch:
                break
            for name, at in batch:
                seen.append(at)
                s.resolved(name, at, t)
    assert skipped == []
    assert seen == [NOW + i * 1000 for i in range(1, 8)]  # up to 2.5 s ahead of the last tick looked at


def test_after_a_gap_run_once_coalesces_the_missed_ticks_and_still_fires_the_one_ahead():
    s = scheduler(job("a", "@every 1s", misfire_policy="run_once", catchup_window="30s"), activate=False,
                  lead_ms=500)
    s.activate(True, NOW + 5_600)
    batch, skips = drain(s)
    assert skips == [("a", [NOW + i * 1000 for i in range(1, 5)],
                      f"misfire policy run_once: coalesced into the tick at {models.rfc3339(NOW + 5000)}")]
    assert batch == [("a", NOW + 5000)]
    s.resolved("a", NOW + 5000, NOW + 5_600)
    assert drain(s)[0] == [("a", NOW + 6000)]  # ahead, at its own time


def test_an_inactive_scheduler_with_a_lead_plans_past_it_instead_of_coming_due_forever():
    s = scheduler(job("a", "@every 1s"), lead_ms=1000, activate=False)
    for t in (NOW + 500, NOW + 1200):
        s.tick(t)  # would spin: the same tick due again at once
        assert s.deadline() > t
    assert fires(s) == []


def test_a_job_created_ahead_of_this_clock_comes_due_once_not_forever():
    s = scheduler(job("a", "@every 1s", created=NOW + 5000), lead_ms=1000)
    s.tick(NOW + 100)
    assert s.deadline() > NOW + 100
    s.tick(NOW + 5000)
    assert fires(s) == [("a", NOW + 6000)]
