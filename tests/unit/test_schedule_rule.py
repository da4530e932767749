"""A property test of cron's daylight-saving rule: for random expressions started near every
2026 change of five zones, `next_after` agrees with an evaluation written here, apart from the
evaluator — a walk of real time, minute by minute for 5-field expressions and second by second
for 6-field ones, as cron(8) walks it: a wildcard job runs at each instant whose wall time
matches; a wall-clock job runs when the clock passes a matching wall time it has not passed
before, so a repeated time runs once and the times a gap skipped run when the clock lands
after it. Seeded, and bounded (a few seconds here)."""

import calendar
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from common import schedule

SEED = 19
ZONES = ("America/New_York", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "America/Havana")
PER_CHANGE = 40   # expressions per change of a zone: half 5-field, half 6-field
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def changes_2026(zone):
    """The instants (s) of the zone's 2026 changes, found an hour apart and narrowed to the second."""
    tz, found = ZoneInfo(zone), []
    offset = lambda s: datetime.fromtimestamp(s, tz).utcoffset()  # noqa: E731
    t = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())
    while t < datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp():
        if offset(t + 3600) != offset(t):
            low, high = t, t + 3600
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if offset(mid) == offset(t) else (low, mid)
            found.append(high)
        t += 3600
    return found


@dataclass
class Expression:
    text: str
    seconds: set
    minutes: set
    hours: set
    monthday: object   # None for `*`, else a set of days; "L" for the last day
    weekday: object    # None for `*`, else a set of cron weekdays (Sunday 0)
    wall_clock: bool

    def matches(self, wall):
        if wall.second not in self.seconds or wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        last = calendar.monthrange(wall.year, wall.month)[1]
        dom = wall.day == last if self.monthday == "L" else self.monthday is None or wall.day in self.monthday
        dow = self.weekday is None or wall.isoweekday() % 7 in self.weekday
        if self.monthday is not None and self.weekday is not None:
            return dom or dow  # both day fields restricted: either will do
        return dom and dow


def field(rng, size, near):
    """A minute, hour or second field: (text, values). `near` are values worth hitting."""
    kind = rng.choice(["*", "step", "one", "list", "range", "range-step"])
    if kind == "*":
        return "*", set(range(size))
    if kind == "step":
        step = rng.choice([2, 3, 5, 7, 10, 15, 20, 27, 30][: 9 if size == 60 else 3])
        return f"*/{step}", set(range(0, size, step))
    pick = lambda: rng.choice(near) if rng.random() < 0.9 else rng.randrange(size)  # noqa: E731
    if kind == "one":
        value = pick()
        return str(value), {value}
    if kind == "list":
        values = sorted({pick() for _ in range(rng.randint(2, 4))})
        return ",".join(map(str, values)), set(values)
    low = pick()
    high = min(size - 1, low + rng.randint(0, size // 6))
    if kind == "range":
        return f"{low}-{high}", set(range(low, high + 1))
    step = rng.randint(2, 9)
    return f"{low}-{high}/{step}", set(range(low, high + 1, step))


def expression(rng, six, walls):
    """A random expression whose times and days are mostly those the clock shows around the
    change (`walls`: the wall times of the window, a few minutes apart)."""
    hours = sorted({w.hour for w in walls})
    minutes = sorted({w.minute for w in walls})
    second_text, seconds = (rng.choice([("0", {0}), ("30", {30}), ("*/20", {0, 20, 40}), ("5,45", {5, 45}),
                                        ("0-10/5", {0, 5, 10})]) if six else ("0", {0}))
    minute_text, minute_set = field(rng, 60, minutes)
    hour_text, hour_set = field(rng, 24, hours)
    days = sorted({w.day for w in walls})
    monthday_text, monthday = rng.choice([("*", None)] * 8 + [
        (str(days[0]), {days[0]}), (",".join(map(str, days)), set(days)), ("L", "L"), ("1-L", set(range(1, 32)))])
    weekdays = sorted({w.isoweekday() % 7 for w in walls})
    weekday_text, weekday = rng.choice([("*", None)] * 8 + [
        (DAYS[weekdays[0]], {weekdays[0]}), ("MON-FRI", {1, 2, 3, 4, 5}), ("SUN,SAT", {0, 6}), ("0-6", set(range(7)))])
    if monthday_text == "*" and weekday_text != "*" and rng.random() < 0.5:
        monthday_text = "?"
    fields = [minute_text, hour_text, monthday_text, "*", weekday_text]
    text = " ".join(([second_text] if six else []) + fields)
    return Expression(text, seconds, minute_set, hour_set, monthday, weekday,
                      wall_clock=not minute_text.startswith("*") and not hour_text.startswith("*"))


def walk(expr, tz, start, end, step):
    """The fires in (start, end] (s) by walking real time `step` seconds at a time."""
    wall = lambda s: datetime.fromtimestamp(s, tz).replace(tzinfo=None)  # noqa: E731
    passed, fires = wall(start), []  # the latest wall time the clock has shown
    for at in range(start + step, end + 1, step):
        now = wall(at)
        if not expr.wall_clock:
            if expr.matches(now):
                fires.append(at)
            continue
        if now <= passed:
            continue  # the clock shows a wall time it showed before: a wall-clock job has run it
        # Every wall time the clock passed since the last step: one normally, a whole gap in spring.
        count = int((now - passed).total_seconds()) // step
        if any(expr.matches(passed + timedelta(seconds=k * step)) for k in range(1, count + 1)):
            fires.append(at)
        passed = now
    return fires


CASES = [(zone, change) for zone in ZONES for change in changes_2026(zone)]


def test_every_zone_changes_twice_in_2026():
    assert len(CASES) == 10


@pytest.mark.parametrize("zone, change", CASES, ids=[f"{z}-{c}" for z, c in CASES])
def test_next_after_agrees_with_a_walk_of_real_time(zone, change):
    rng, tz = random.Random(f"{SEED}-{zone}-{change}"), ZoneInfo(zone)
    for i in range(PER_CHANGE):
        six = i % 2 == 1
        step, reach = (1, 40 * 60) if six else (60, 150 * 60)
        walls = [datetime.fromtimestamp(change + d, tz).replace(tzinfo=None) for d in range(-reach, reach, 300)]
        expr = expression(rng, six, walls)
        start = change - rng.randrange(reach // 3, reach, step)
        end = change + reach
        expected = walk(expr, tz, start, end, step)
        got = schedule.parse(expr.text, timezone=zone).ticks(start * 1000, end * 1000)
        assert got == [s * 1000 for s in expected], (
            f"{expr.text!r} in {zone} from {datetime.fromtimestamp(start, tz)}: "
            f"next_after gives {[str(datetime.fromtimestamp(t / 1000, tz)) for t in got]}, "
            f"the walk {[str(datetime.fromtimestamp(s, tz)) for s in expected]}")
