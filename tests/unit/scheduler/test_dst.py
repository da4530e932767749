"""services/scheduler/core.py on the nights the clock changes and with the new day forms, under
a virtual clock: the core is ticked at each deadline it asks for, as its shell does, and every
fire is answered by the dispatcher. Cron's daylight-saving rule holds through it, and missed
ticks over a night are caught up by the misfire policies as on any other night."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from common import models
from services.scheduler.core import Scheduler

NEW_YORK, LORD_HOWE = "America/New_York", "Australia/Lord_Howe"
MINUTE_MS, HOUR_MS = 60_000, 3_600_000
FALL_NY = 1_793_512_800_000     # 2026-11-01T06:00Z: 02:00 EDT goes back to 01:00 EST
SPRING_NY = 1_772_953_200_000   # 2026-03-08T07:00Z: 02:00 EST goes forward to 03:00 EDT
FALL_LH = 1_775_314_800_000     # 2026-04-04T15:00Z: 02:00 +11 goes back to 01:30 +10:30


def job(name, schedule, zone=NEW_YORK, **fields):
    doc = {"name": name, "schedule": schedule, "timezone": zone, "executor": "shell",
           "executor_config": {"command": "true"}, **fields}
    return models.validate_job(doc)


def run(jobs, start, end):
    """Tick the core at each deadline from start to end; every fire is resolved at once.
    → {job: [local "DD HH:MM:SS±hhmm" of each fire]}"""
    for j in jobs:
        j["created_at"] = start
    s = Scheduler()
    s.load(jobs, 0, start)
    s.activate(True, start)
    found = {j["name"]: [] for j in jobs}
    now = start
    while now <= end:
        s.tick(now)
        rd = s.ready()
        s.advance(rd)
        for j, at in rd.fires:
            found[j["name"]].append(at)
            s.resolved(j["name"], at, now)
        if not rd.fires:
            now = s.deadline() or end + 1
    zones = {j["name"]: ZoneInfo(j["timezone"]) for j in jobs}
    return {name: [local(at, zones[name]) for at in ats] for name, ats in found.items()}


def local(at, tz):
    return datetime.fromtimestamp(at / 1000, tz).strftime("%d %H:%M:%S%z")


def test_new_yorks_autumn_night_through_the_core():
    jobs = [job("fixed", "30 1 * * *"), job("quarter", "*/15 * * * *"), job("hourly", "@hourly"),
            job("daily", "@daily"), job("seconds", "10,50 30 1 * * *"), job("real-seconds", "0 */30 * * * *")]
    got = run(jobs, FALL_NY - 2 * HOUR_MS, FALL_NY + HOUR_MS)
    assert got["fixed"] == ["01 01:30:00-0400"]                           # once, at the first 01:30
    assert got["seconds"] == ["01 01:30:10-0400", "01 01:30:50-0400"]
    assert got["quarter"] == ["01 00:15:00-0400", "01 00:30:00-0400", "01 00:45:00-0400",
                              "01 01:00:00-0400", "01 01:15:00-0400", "01 01:30:00-0400", "01 01:45:00-0400",
                              "01 01:00:00-0500", "01 01:15:00-0500", "01 01:30:00-0500", "01 01:45:00-0500",
                              "01 02:00:00-0500"]
    assert got["hourly"] == ["01 01:00:00-0400", "01 01:00:00-0500", "01 02:00:00-0500"]
    assert got["real-seconds"] == ["01 00:30:00-0400", "01 01:00:00-0400", "01 01:30:00-0400",
                                   "01 01:00:00-0500", "01 01:30:00-0500", "01 02:00:00-0500"]
    assert got["daily"] == []  # midnight came before the window


def test_new_yorks_spring_night_through_the_core():
    jobs = [job("fixed", "30 2 * * *"), job("two", "0,30 2 * * *"), job("quarter", "*/15 * * * *"),
            job("odd", "*/27 2,7,11 * * *"), job("seconds", "10,50 30 2 * * *")]
    got = run(jobs, SPRING_NY - HOUR_MS, SPRING_NY + HOUR_MS)
    assert got["fixed"] == ["08 03:00:00-0400"]      # right after the gap
    assert got["two"] == ["08 03:00:00-0400"]        # two skipped times: one run, since a tick is one instant
    assert got["seconds"] == ["08 03:00:00-0400"]
    assert got["odd"] == []                          # 02:00, 02:27, 02:54 do not exist: not run, no 03:00
    assert got["quarter"] == ["08 01:15:00-0500", "08 01:30:00-0500", "08 01:45:00-0500", "08 03:00:00-0400",
                              "08 03:15:00-0400", "08 03:30:00-0400", "08 03:45:00-0400", "08 04:00:00-0400"]


def test_lord_howes_half_hour_autumn_through_the_core():
    jobs = [job("fixed", "45 1 * * *", LORD_HOWE), job("wild", "45 * * * *", LORD_HOWE)]
    got = run(jobs, FALL_LH - 2 * HOUR_MS, FALL_LH + HOUR_MS)
    assert got["fixed"] == ["05 01:45:00+1100"]
    assert got["wild"] == ["05 00:45:00+1100", "05 01:45:00+1100", "05 01:45:00+1030"]


@pytest.mark.parametrize("schedule, expected", [
    ("0 0 12 LW * *", ["30 12:00:00+0000", "30 12:00:00+0000"]),   # Oct 30 (31st a Saturday), Nov 30
    ("0 0 12 L-1 * *", ["30 12:00:00+0000", "29 12:00:00+0000"]),
    ("0 0 12 15W * *", ["16 12:00:00+0000", "15 12:00:00+0000"]),  # Nov 15 is a Sunday, Dec 15 a Tuesday
    ("0 0 12 ? * 5L", ["30 12:00:00+0000", "27 12:00:00+0000"]),
    ("0 0 12 ? * MON#2", ["09 12:00:00+0000", "14 12:00:00+0000"]),
])
def test_day_forms_through_the_core(schedule, expected):
    start = int(datetime(2026, 10, 20, tzinfo=timezone.utc).timestamp() * 1000)
    got = run([job("a", schedule, "UTC")], start, start + 60 * 24 * HOUR_MS)["a"]
    assert got[:2] == expected


def test_a_missed_autumn_night_is_caught_up_by_the_misfire_policy():
    # No scheduler ran from 00:50 EDT to 02:10 EST; on its return the policy decides.
    jobs = [job("all", "*/15 * * * *", misfire_policy="run_all", catchup_window="3h"),
            job("once", "*/15 * * * *", misfire_policy="run_once", catchup_window="3h"),
            job("skip", "*/15 * * * *", misfire_policy="skip", catchup_window="3h"),
            job("fixed", "30 1 * * *", misfire_policy="run_all", catchup_window="3h")]
    down, back = FALL_NY - 2 * HOUR_MS + 50 * MINUTE_MS, FALL_NY + 70 * MINUTE_MS
    for j in jobs:
        j.update(created_at=down - HOUR_MS, last_scheduled_at=down - 5 * MINUTE_MS)  # 00:45 EDT ran
    s = Scheduler()
    s.load(jobs, 0, back)
    s.activate(True, back)
    fired, skipped = {}, {}
    while True:
        rd = s.ready()
        s.advance(rd)
        if not rd.fires and not rd.skips:
            break
        for j, at in rd.fires:
            fired.setdefault(j["name"], []).append(at)
            s.resolved(j["name"], at, back)
        for name, ats, reason in rd.skips:
            skipped.setdefault(name, []).extend((at, reason) for at in ats)
    quarter = [FALL_NY - HOUR_MS + k * 15 * MINUTE_MS for k in range(9)]  # 01:00 EDT .. 02:00 EST, 9 ticks
    assert fired["all"] == quarter
    assert fired["once"] == quarter[-1:] and [at for at, _ in skipped["once"]] == quarter[:-1]
    assert "coalesced" in skipped["once"][0][1]
    assert "skip" not in fired and [at for at, _ in skipped["skip"]] == quarter
    assert fired["fixed"] == [FALL_NY - 30 * MINUTE_MS]  # 01:30 EDT, once
