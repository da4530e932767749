"""A schedule read back before it is saved: a plain-English description (cron-descriptor for the
cron fields, our own words for @every, @at, @manually, TZ= and ~, and the daylight-saving rule
it follows) and its next fire times in its zone and in UTC. The one function behind the api's
GET /v1/schedule and `pykronctl schedule`; pure, the time comes in."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from cron_descriptor import ExpressionDescriptor, Options

from common import models, schedule
from common.errors import BadRequest

MAX_COUNT = 100
DEFAULT_COUNT = 5
WALL_CLOCK = ("On the nights the clock changes it follows the wall clock: a time that happens twice "
              "runs once, at the first; a time the change skips runs right after it.")
REAL_TIME = ("On the nights the clock changes it follows real time: an hour that happens twice runs "
             "in both, and times the change skips are not run.")


def preview(text, *, timezone="", name="", count=DEFAULT_COUNT, now):
    """→ {schedule, timezone, description, daylight_saving, next: [{at, local, zone}]}, `at` in
    UTC and `local` in the schedule's zone; BadRequest says what is wrong. @every is anchored
    at `now`, as a job created now would be; `name` is what `~` hashes."""
    if not 1 <= count <= MAX_COUNT:
        raise BadRequest(f"count: expected 1 to {MAX_COUNT}, got {count}")
    sched = schedule.parse(text, timezone=timezone, name=name, anchor_at=now)
    times, t = [], now
    while len(times) < count and (t := sched.next_after(t)) is not None:
        times.append(t)
    rule = ""
    if sched.kind == "cron" and schedule.offset_changes(sched.tz, now):
        rule = WALL_CLOCK if sched.cron.wall_clock else REAL_TIME
    return {"schedule": text, "timezone": zone_name(sched.tz), "description": describe(sched, text, name, now),
            "daylight_saving": rule, "next": [_time(at, sched.tz) for at in times]}


def describe(sched, text, name, now):
    """In words: what the schedule fires at, in which zone."""
    zone = zone_name(sched.tz)
    prefix = text.split()[0].startswith(("TZ=", "CRON_TZ="))
    where = f"{zone} time, set by {text.split('=')[0]}=" if prefix else ("UTC" if zone == "UTC" else f"{zone} time")
    if sched.kind == "manually":
        return "Never on its own: only when run by hand"
    if sched.kind == "every":
        return f"Every {_duration(sched.every_ms)}, counted from when the job was created"
    if sched.kind == "at":
        when = datetime.fromtimestamp(sched.at / 1000, sched.tz).strftime("%Y-%m-%d %H:%M:%S")
        passed = ", which has passed: it will not run" if sched.at <= now else ""
        return f"Once, at {when} ({where}){passed}"
    words = f"{_cron_words(sched.spec)} ({where})"
    if "~" in text:
        whose = f"the job name {name!r}" if name else "an empty job name (give the job's name)"
        words += f"; ~ is read from {whose}: {sched.spec}"
    return words


def zone_name(tz):
    return "UTC" if tz is dt_timezone.utc else str(tz)


def _cron_words(spec):
    options = Options()
    options.use_24hour_time_format = True
    try:
        return ExpressionDescriptor(spec, options).get_description()
    except Exception:  # words are a courtesy: a form the library cannot put in words is shown as it is
        return f"Cron fields {spec}"


def _duration(ms):
    """90 minutes → "1 hour 30 minutes" (@every is whole seconds)."""
    seconds = ms // 1000
    parts = [(seconds // 86_400, "day"), (seconds // 3600 % 24, "hour"), (seconds // 60 % 60, "minute"),
             (seconds % 60, "second")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)


def _time(at, tz):
    local = datetime.fromtimestamp(at / 1000, tz)
    return {"at": models.rfc3339(at), "local": local.isoformat(timespec="milliseconds"), "zone": local.tzname()}
