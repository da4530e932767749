"""The cron expression under every cron schedule: six fields (seconds first) read into the
values each allows, with names and the day forms of Quartz and Debian cron (L, LW, nW, L-n, nL,
n#k), and the search for the next wall-clock time that matches. Pure and zone-free: turning
wall times into instants, by the daylight-saving rule, is common/schedule.py's part."""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from common.errors import BadRequest

MONTH_NAMES = {n: i + 1 for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
DAY_NAMES = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# A schedule with no time this far ahead never fires. The rarest real dates recur within it
# (Feb 29 on a Saturday: every 28 years), and a search that finds nothing stays cheap: it
# walks months and their matching days, never single minutes.
MAX_YEARS = 50
EPOCH_DAY = date(1970, 1, 1).toordinal()
DAY_S = 86_400
SATURDAY, SUNDAY = 6, 0  # cron numbers the days of the week from Sunday = 0


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int        # day-of-week goes to 7, which is Sunday again, as in cron
    names: dict
    forms: str       # what the field takes, said when it is refused


SECOND = Field("second", 0, 59, {}, "0-59")
MINUTE = Field("minute", 0, 59, {}, "0-59")
HOUR = Field("hour", 0, 23, {}, "0-23")
MONTHDAY = Field("day-of-month", 1, 31, {}, "1-31, L, LW, L-n or nW")
MONTH = Field("month", 1, 12, MONTH_NAMES, "1-12 or JAN-DEC")
WEEKDAY = Field("day-of-week", 0, 7, DAY_NAMES, "0-7 or SUN-SAT, nL or n#k")
FIELDS = (SECOND, MINUTE, HOUR, MONTHDAY, MONTH, WEEKDAY)

_NEAREST = re.compile(r"^(?:(\d+)W|W(\d+))$", re.ASCII)  # 15W; W15 as croniter also read it
_LAST_BEFORE = re.compile(r"^L-(\d+)$", re.ASCII)
_TO_LAST = re.compile(r"^(\w+)-L(?:/(\d+))?$", re.ASCII)  # 10-L, 1-L/2: to the month's last day


@dataclass(frozen=True)
class Cron:
    """A parsed expression. Day terms are tuples, e.g. ("last", 2) for L-2; a day field that is
    `*` or `?` is None, and when both day fields are restricted a day matching either runs
    (cron's OR rule, as robfig and croniter apply it)."""

    seconds: tuple
    minutes: tuple
    hours: tuple
    months: tuple
    monthdays: tuple | None
    weekdays: tuple | None
    wall_clock: bool  # neither the minute nor the hour field starts with `*` (cron(8)'s DST rule)

    def days(self, year, month):
        """The days of that month that match, in order."""
        first, last = calendar.monthrange(year, month)
        first = (first + 1) % 7  # Python's Monday = 0 → cron's Sunday = 0
        if self.monthdays is None and self.weekdays is None:
            return range(1, last + 1)
        found = set()
        for term in self.monthdays or ():
            found |= _monthday(term, first, last)
        for term in self.weekdays or ():
            found |= _weekday(term, first, last)
        return sorted(found)

    def next_wall(self, start):
        """The first matching wall time at or after `start`, both in seconds counted on a naive
        calendar from 1970-01-01 00:00; None when none comes within MAX_YEARS."""
        begin = datetime(1970, 1, 1) + timedelta(seconds=start)
        today = (begin.year, begin.month, begin.day)
        for year in range(begin.year, min(begin.year + MAX_YEARS, 9999) + 1):
            for month in self.months:
                if (year, month) < today[:2]:
                    continue
                for day in self.days(year, month):
                    if (year, month, day) < today:
                        continue
                    if (year, month, day) == today:
                        clock = self.first_time(begin.hour, begin.minute, begin.second)
                        if clock is None:
                            continue
                    else:
                        clock = (self.hours[0], self.minutes[0], self.seconds[0])
                    hour, minute, second = clock
                    day_start = (date(year, month, day).toordinal() - EPOCH_DAY) * DAY_S
                    return day_start + hour * 3600 + minute * 60 + second
        return None

    def first_time(self, hour, minute, second):
        """The first matching (hour, minute, second) of a day at or after the one given."""
        for h in self.hours[bisect.bisect_left(self.hours, hour):]:
            for m in self.minutes[bisect.bisect_left(self.minutes, minute if h == hour else 0):]:
                s = bisect.bisect_left(self.seconds, second if (h, m) == (hour, minute) else 0)
                if s < len(self.seconds):
                    return h, m, self.seconds[s]
        return None


def parse_fields(fields):
    """Six field texts (seconds first, `~` already resolved) → Cron; BadRequest names the
    field and the form that is wrong."""
    for field, text in zip(FIELDS, fields):
        if "?" in text and field not in (MONTHDAY, WEEKDAY):
            raise BadRequest(f'{field.name}: "?" is only for day-of-month and day-of-week')
    seconds, minutes, hours = (tuple(sorted(_plain(f, text))) for f, text in zip(FIELDS[:3], fields[:3]))
    months = tuple(sorted(_plain(MONTH, fields[4])))
    monthdays = _day_field(MONTHDAY, fields[3], _monthday_term)
    weekdays = _day_field(WEEKDAY, fields[5], _weekday_term)
    wall_clock = not fields[1].startswith("*") and not fields[2].startswith("*")
    return Cron(seconds, minutes, hours, months, monthdays, weekdays, wall_clock)


# -- fields ---------------------------------------------------------------------------------------

def _day_field(field, text, term):
    if text in ("*", "?"):
        return None
    if "?" in text:
        raise BadRequest(f'{field.name}: "?" stands alone, meaning any day')
    return tuple(term(part) for part in _terms(field, text))


def _terms(field, text):
    parts = text.upper().split(",")
    if any(not p for p in parts):
        raise BadRequest(f"{field.name}: {text!r} has an empty value in its list")
    return parts


def _plain(field, text):
    """A field of values, ranges and steps (seconds, minutes, hours, months) → its values."""
    values = set()
    for part in _terms(field, text):
        values |= _values(field, part)
    return values


def _values(field, part):
    """One list item: `*`, `n`, `a-b` (wrapping past the end, as croniter did: `FRI-MON`),
    `*/s`, `a/s` (a to the end) or `a-b/s` → its values; day-of-week's 7 comes back as 0."""
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not _digits(step_text) or int(step_text) < 1:
            raise BadRequest(f"{field.name}: {part!r}: the step after / must be a whole number of at least 1")
        step = int(step_text)
    high = 6 if field is WEEKDAY else field.high  # `*` and `a/s` end on Saturday
    if base == "*":
        low, end = field.low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _number(field, first, part), field.high
        # croniter read an end of 0 in the day-of-month and month fields as the field's end.
        end = high if last == "0" and field.low == 1 else _number(field, last, part)
    else:
        low = _number(field, base, part)
        end = high if slash else low
        if low > end:  # `7/2` in day-of-week: Sunday alone
            end = low
    size = high - field.low + 1
    span = (end - low) % size  # a range whose end comes before its start wraps round
    found = {field.low + (low - field.low + k) % size for k in range(0, span + 1, step)}
    return {0 if field is WEEKDAY and v == 7 else v for v in found}


def _number(field, text, part):
    if _digits(text):
        value = int(text)
    elif text in field.names:
        value = field.names[text]
    else:
        raise BadRequest(f"{field.name}: {part!r} is not {field.forms}" if text == part
                         else f"{field.name}: {text!r} in {part!r} is not {field.forms}")
    if not field.low <= value <= field.high:
        where = "" if text == part else f" in {part!r}"
        raise BadRequest(f"{field.name}: {value}{where} is out of range {field.low}-{field.high}")
    return value


# -- day terms ------------------------------------------------------------------------------------

def _monthday_term(part):
    if part == "L":
        return ("last", 0)
    if part == "LW":
        return ("last weekday",)
    if match := _LAST_BEFORE.match(part):
        before = int(match.group(1))
        if before > 30:
            raise BadRequest(f"day-of-month: {part!r}: L-n takes n from 0 to 30")
        return ("last", before)
    if match := _NEAREST.match(part):
        day = int(match.group(1) or match.group(2))
        if not 1 <= day <= 31:
            raise BadRequest(f"day-of-month: {part!r}: nW takes a day 1-31")
        return ("nearest", day)
    if match := _TO_LAST.match(part):
        step = match.group(2)
        if step is not None and int(step) < 1:
            raise BadRequest(f"day-of-month: {part!r}: the step after / must be at least 1")
        return ("to last", _number(MONTHDAY, match.group(1), part), int(step or 1))
    if "L" in part or "W" in part:
        raise BadRequest(f"day-of-month: {part!r} is not {MONTHDAY.forms}")
    return ("days", frozenset(_values(MONTHDAY, part)))


def _weekday_term(part):
    if "#" in part:
        day, _, week = part.partition("#")
        if not _digits(week) or not 1 <= int(week) <= 5:
            raise BadRequest(f"day-of-week: {part!r}: n#k takes a week k from 1 to 5")
        return ("nth", _number(WEEKDAY, day, part) % 7, int(week))
    if part == "L":
        raise BadRequest('day-of-week: "L" needs a day before it: 5L is the last Friday')
    if len(part) > 1 and part.endswith("L"):  # no day name ends or starts with L
        return ("last of", _number(WEEKDAY, part[:-1], part) % 7)
    if len(part) > 1 and part.startswith("L"):  # L5, as croniter read the last Friday
        return ("last of", _number(WEEKDAY, part[1:], part) % 7)
    return ("weekdays", frozenset(_values(WEEKDAY, part)))


def _monthday(term, first, last):
    """The days of a month (its first day's weekday and its length) that a day-of-month term names."""
    kind = term[0]
    if kind == "days":
        return {d for d in term[1] if d <= last}
    if kind == "last":
        return {last - term[1]} if last - term[1] >= 1 else set()
    if kind == "to last":
        return set(range(term[1], last + 1, term[2]))
    if kind == "last weekday":
        day = last
        while _weekday_of(day, first) in (SATURDAY, SUNDAY):
            day -= 1
        return {day}
    day = term[1]  # nearest: the weekday nearest the day, never leaving the month
    if day > last:
        return set()
    weekday = _weekday_of(day, first)
    if weekday == SATURDAY:
        return {day - 1 if day > 1 else day + 2}
    if weekday == SUNDAY:
        return {day + 1 if day < last else day - 2}
    return {day}


def _weekday(term, first, last):
    kind = term[0]
    if kind == "weekdays":
        return {d for d in range(1, last + 1) if _weekday_of(d, first) in term[1]}
    if kind == "last of":
        return {last - (_weekday_of(last, first) - term[1]) % 7}
    day = 1 + (term[1] - first) % 7 + 7 * (term[2] - 1)  # nth: the k-th such weekday
    return {day} if day <= last else set()


def _digits(text):
    return text.isascii() and text.isdigit()  # not "²" or "٣", which str.isdigit also takes


def _weekday_of(day, first):
    return (first + day - 1) % 7
