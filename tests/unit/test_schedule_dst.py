"""common/schedule.py on the nights the clock changes, by cron's rule (cron(8)): a job whose
minute and hour fields both name times follows the wall clock (once on a repeated hour, right
after a gap); one whose minute or hour field starts with `*` follows real time (both
occurrences of a repeated hour, nothing for times that do not exist). Five zones, both nights
of 2026: a change at 02:00 (New York, Berlin), the southern hemisphere with changes at
midnight (Santiago), a 30-minute shift (Lord Howe), and a change at midnight (Havana)."""

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from common import schedule

MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000


@dataclass(frozen=True)
class Night:
    zone: str
    change: str         # the instant of the change, UTC
    fixed: str          # a fixed-time job whose time the night skips or repeats
    fixed_fires: list   # its fires within a day of the change, "DD HH:MM±hhmm" in the zone
    daily: list         # @daily's first two fires from 12 hours before the change
    hourly: list        # @hourly within two hours of the change
    seconds: str        # a 6-field fixed-time job, two seconds inside the skipped or repeated minute
    seconds_fires: list


SPRING = [
    Night("America/New_York", "2026-03-08T07:00Z", "30 2 * * *",
          ["07 02:30-0500", "08 03:00-0400", "09 02:30-0400"],        # 02:30 is skipped: right after the gap
          ["08 00:00-0500", "09 00:00-0400"],
          ["08 00:00-0500", "08 01:00-0500", "08 03:00-0400", "08 04:00-0400", "08 05:00-0400", "08 06:00-0400"],
          "10,50 30 2 * * *", ["07 02:30:10-0500", "07 02:30:50-0500", "08 03:00:00-0400",  # both run once, at 03:00
                               "09 02:30:10-0400", "09 02:30:50-0400"]),
    Night("Europe/Berlin", "2026-03-29T01:00Z", "30 2 * * *",
          ["28 02:30+0100", "29 03:00+0200", "30 02:30+0200"],
          ["29 00:00+0100", "30 00:00+0200"],
          ["29 00:00+0100", "29 01:00+0100", "29 03:00+0200", "29 04:00+0200", "29 05:00+0200", "29 06:00+0200"],
          "10,50 30 2 * * *", ["28 02:30:10+0100", "28 02:30:50+0100", "29 03:00:00+0200",
                               "30 02:30:10+0200", "30 02:30:50+0200"]),
    Night("America/Santiago", "2026-09-06T04:00Z", "30 0 * * *",      # midnight to 01:00 is skipped
          ["05 00:30-0400", "06 01:00-0300", "07 00:30-0300"],
          ["06 01:00-0300", "07 00:00-0300"],                          # no midnight that day: 01:00
          ["05 22:00-0400", "05 23:00-0400", "06 01:00-0300", "06 02:00-0300", "06 03:00-0300", "06 04:00-0300"],
          "10,50 30 0 * * *", ["05 00:30:10-0400", "05 00:30:50-0400", "06 01:00:00-0300",
                               "07 00:30:10-0300", "07 00:30:50-0300"]),
    Night("Australia/Lord_Howe", "2026-10-03T15:30Z", "15 2 * * *",   # 02:00 to 02:30 is skipped
          ["03 02:15+1030", "04 02:30+1100", "05 02:15+1100"],
          ["04 00:00+1030", "05 00:00+1100"],
          ["04 00:00+1030", "04 01:00+1030", "04 03:00+1100", "04 04:00+1100", "04 05:00+1100"],
          "10,50 15 2 * * *", ["03 02:15:10+1030", "03 02:15:50+1030", "04 02:30:00+1100",
                               "05 02:15:10+1100", "05 02:15:50+1100"]),
    Night("America/Havana", "2026-03-08T05:00Z", "30 0 * * *",        # midnight to 01:00 is skipped
          ["07 00:30-0500", "08 01:00-0400", "09 00:30-0400"],
          ["08 01:00-0400", "09 00:00-0400"],
          ["07 22:00-0500", "07 23:00-0500", "08 01:00-0400", "08 02:00-0400", "08 03:00-0400", "08 04:00-0400"],
          "10,50 30 0 * * *", ["07 00:30:10-0500", "07 00:30:50-0500", "08 01:00:00-0400",
                               "09 00:30:10-0400", "09 00:30:50-0400"]),
]

FALL = [
    Night("America/New_York", "2026-11-01T06:00Z", "30 1 * * *",      # 01:00 to 02:00 happens twice
          ["31 01:30-0400", "01 01:30-0400", "02 01:30-0500"],        # once, at the first 01:30
          ["01 00:00-0400", "02 00:00-0500"],
          ["01 00:00-0400", "01 01:00-0400", "01 01:00-0500", "01 02:00-0500", "01 03:00-0500", "01 04:00-0500"],
          "10,50 30 1 * * *", ["31 01:30:10-0400", "31 01:30:50-0400", "01 01:30:10-0400", "01 01:30:50-0400",
                               "02 01:30:10-0500", "02 01:30:50-0500"]),
    Night("Europe/Berlin", "2026-10-25T01:00Z", "30 2 * * *",
          ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100"],
          ["25 00:00+0200", "26 00:00+0100"],
          ["25 01:00+0200", "25 02:00+0200", "25 02:00+0100", "25 03:00+0100", "25 04:00+0100", "25 05:00+0100"],
          "10,50 30 2 * * *", ["24 02:30:10+0200", "24 02:30:50+0200", "25 02:30:10+0200", "25 02:30:50+0200",
                               "26 02:30:10+0100", "26 02:30:50+0100"]),
    Night("America/Santiago", "2026-04-05T03:00Z", "30 23 * * *",     # 23:00 to midnight happens twice
          ["03 23:30-0300", "04 23:30-0300", "05 23:30-0400"],
          ["05 00:00-0400", "06 00:00-0400"],
          ["04 22:00-0300", "04 23:00-0300", "04 23:00-0400", "05 00:00-0400", "05 01:00-0400", "05 02:00-0400"],
          "10,50 30 23 * * *", ["03 23:30:10-0300", "03 23:30:50-0300", "04 23:30:10-0300", "04 23:30:50-0300",
                                "05 23:30:10-0400", "05 23:30:50-0400"]),
    Night("Australia/Lord_Howe", "2026-04-04T15:00Z", "45 1 * * *",   # 01:30 to 02:00 happens twice
          ["04 01:45+1100", "05 01:45+1100", "06 01:45+1030"],
          ["05 00:00+1100", "06 00:00+1030"],
          ["05 00:00+1100", "05 01:00+1100", "05 02:00+1030", "05 03:00+1030", "05 04:00+1030"],  # no :00 repeats
          "10,50 45 1 * * *", ["04 01:45:10+1100", "04 01:45:50+1100", "05 01:45:10+1100", "05 01:45:50+1100",
                               "06 01:45:10+1030", "06 01:45:50+1030"]),
    Night("America/Havana", "2026-11-01T05:00Z", "30 0 * * *",        # midnight to 01:00 happens twice
          ["31 00:30-0400", "01 00:30-0400", "02 00:30-0500"],
          ["01 00:00-0400", "02 00:00-0500"],                          # midnight once
          ["31 23:00-0400", "01 00:00-0400", "01 00:00-0500", "01 01:00-0500", "01 02:00-0500", "01 03:00-0500"],
          "10,50 30 0 * * *", ["31 00:30:10-0400", "31 00:30:50-0400", "01 00:30:10-0400", "01 00:30:50-0400",
                               "02 00:30:10-0500", "02 00:30:50-0500"]),
]
NIGHTS = SPRING + FALL
IDS = [f"{n.zone}-{'spring' if n in SPRING else 'fall'}" for n in NIGHTS]


def change_at(night):
    return int(datetime.fromisoformat(night.change.replace("Z", "+00:00")).timestamp() * 1000)


def fires(spec, night, before_ms, after_ms, seconds=False):
    """The job's fires in [change - before, change + after], as local "DD HH:MM[:SS]±hhmm"."""
    tz, change = ZoneInfo(night.zone), change_at(night)
    ticks = schedule.parse(spec, timezone=night.zone).ticks(change - before_ms - 1, change + after_ms)
    return [datetime.fromtimestamp(t / 1000, tz).strftime("%d %H:%M:%S%z" if seconds else "%d %H:%M%z")
            for t in ticks]


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_fixed_time_jobs_follow_the_wall_clock(night):
    assert fires(night.fixed, night, DAY_MS + 2 * HOUR_MS, DAY_MS + 2 * HOUR_MS)[-3:] == night.fixed_fires


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_daily_follows_its_expansion_a_fixed_time(night):
    assert fires("@daily", night, 12 * HOUR_MS, 2 * DAY_MS)[:2] == night.daily


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_hourly_has_a_wildcard_hour_and_follows_real_time(night):
    assert fires("@hourly", night, 2 * HOUR_MS, 4 * HOUR_MS)[:len(night.hourly)] == night.hourly


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
@pytest.mark.parametrize("spec", ["*/15 * * * *", "0 */15 * * * *", "0 0-59/15 * * * *"])
def test_a_wildcard_minute_job_runs_every_15_minutes_of_real_time(night, spec):
    # Every zone here shifts by a whole number of quarter hours: real time never skips or doubles a tick.
    change = change_at(night)
    ticks = schedule.parse(spec, timezone=night.zone).ticks(change - 2 * HOUR_MS, change + 2 * HOUR_MS)
    assert ticks == list(range(change - 2 * HOUR_MS + 15 * MINUTE_MS, change + 2 * HOUR_MS + 1, 15 * MINUTE_MS))


def test_a_wildcard_minute_job_runs_through_both_occurrences_of_the_repeated_hour():
    # The night: New York, 1 November 2026. Before, the job stopped from 01:45 EDT to 02:00 EST.
    night = FALL[0]
    assert fires("*/15 * * * *", night, HOUR_MS, HOUR_MS) == [
        "01 01:00-0400", "01 01:15-0400", "01 01:30-0400", "01 01:45-0400",
        "01 01:00-0500", "01 01:15-0500", "01 01:30-0500", "01 01:45-0500", "01 02:00-0500"]


def test_a_wildcard_minute_job_skips_times_that_do_not_exist():
    # Spring: `*/27 2,7,11 * * *` used to run at 03:00, a time it never names.
    assert fires("*/27 2,7,11 * * *", SPRING[0], 2 * HOUR_MS, 5 * HOUR_MS) == [
        "08 07:00-0400", "08 07:27-0400", "08 07:54-0400"]


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_a_wildcard_hour_job_with_a_fixed_minute_follows_real_time(night):
    # Every instant of the window whose wall clock reads :45 runs, and nothing else: in Lord Howe
    # 01:45 runs twice in autumn (01:30 to 02:00 repeats), 02:45 exists in spring.
    tz, change = ZoneInfo(night.zone), change_at(night)
    got = schedule.parse("45 * * * *", timezone=night.zone).ticks(change - 3 * HOUR_MS, change + 3 * HOUR_MS)
    expected = [t for t in range(change - 3 * HOUR_MS + MINUTE_MS, change + 3 * HOUR_MS + 1, MINUTE_MS)
                if datetime.fromtimestamp(t / 1000, tz).minute == 45]
    assert got == expected and len(got) == 6


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_six_field_forms_follow_the_rule_by_minute_and_hour(night):
    assert fires(night.seconds, night, DAY_MS + 2 * HOUR_MS, DAY_MS + 2 * HOUR_MS, seconds=True) == \
        night.seconds_fires


@pytest.mark.parametrize("night", NIGHTS, ids=IDS)
def test_a_six_field_wildcard_minute_job_follows_real_time(night):
    change = change_at(night)
    ticks = schedule.parse("30 * * * * *", timezone=night.zone).ticks(change - 10 * MINUTE_MS, change + 10 * MINUTE_MS)
    assert ticks == list(range(change - 10 * MINUTE_MS + 30_000, change + 10 * MINUTE_MS, MINUTE_MS))


@pytest.mark.parametrize("spec", ["@every 15m", "@at 2026-11-01T05:30:00Z"])
def test_every_and_at_are_unaffected(spec):
    change = change_at(FALL[0])
    sched = schedule.parse(spec, timezone=FALL[0].zone, anchor_at=change - 4 * HOUR_MS)
    ticks = sched.ticks(change - HOUR_MS, change + HOUR_MS)
    if spec.startswith("@every"):
        assert ticks == list(range(change - 45 * MINUTE_MS, change + HOUR_MS + 1, 15 * MINUTE_MS))
    else:
        assert ticks == [change - 30 * MINUTE_MS]


def test_a_zone_without_daylight_saving_or_utc_is_plain():
    for zone in ("", "UTC", "Asia/Tokyo"):
        sched = schedule.parse("30 1 * * *", timezone=zone)
        t = sched.next_after(int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp() * 1000))
        assert datetime.fromtimestamp(t / 1000, sched.tz).strftime("%H:%M") == "01:30"


def test_a_fire_time_is_strictly_after_the_time_given_at_the_end_of_a_gap():
    # Two times of the gap run once, at its end; asking again from that instant finds the next day.
    night = SPRING[1]
    sched = schedule.parse("0,30 2 * * *", timezone=night.zone)
    change = change_at(night)
    assert sched.next_after(change - 1) == change
    assert sched.next_after(change) == change + DAY_MS - HOUR_MS  # 02:00 CEST on the 30th
