"""Schedule parsing shared by the api (validation, `next`, the preview) and the scheduler core
(firing): Dkron's language — 6-field cron with seconds, 5-field cron, descriptors, @every, @at,
@manually, TZ=/CRON_TZ= prefixes and the `~` name hash — evaluated in the job's IANA zone by
cron's daylight-saving rule (common/cron.py reads the fields). Pure: time comes in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.cron import Cron, parse_fields
from common.errors import BadRequest

DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *", "@minutely": "0 * * * * *",
}
# `~` replacement per field of a 6-field spec (Dkron's scheduleHash): modulus and offset.
HASH_FIELDS = ((60, 0), (60, 0), (24, 0), (28, 1), (12, 1), (7, 0))
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
MIN_EVERY_MS = 1000
# croniter's R (a random value, drawn again at each evaluation and so on each server) in a
# field of its own, as stored schedules may hold it: read as Dkron's `~`, R(a-b) within a..b.
_RANDOM = re.compile(r"^R(?:\((\d+)-(\d+)\))?(/\d+)?$", re.IGNORECASE | re.ASCII)
CHANGE_PROBE_S = 86_400          # UTC offsets are read this far apart when looking for a change
YEAR_S = 366 * 86_400
# Instants a cron schedule is evaluated between (1900-01-01 and 9999-01-01 UTC): Python's
# calendar ends in the year 9999, and wall times near its end would not fit.
MIN_S, MAX_S = -2_208_988_800, 253_370_764_800


# The longest duration taken anywhere (an interval, a timeout, a window): 100 years, far past
# any schedule's use and far inside what an int64 of ms holds once added to a time.
MAX_DURATION_MS = 100 * 365 * 86_400_000
MAX_DURATION_CHARS = 64
MAX_ZONE_CHARS = 64  # the longest IANA name has 32
# Instants a time may name, after its offset: from year 1 to the end of year 9999, UTC.
MIN_TIME_MS, MAX_TIME_MS = -62_135_596_800_000, 253_402_300_799_999


def parse_duration(text):
    """A Go duration ("1h30m", "500ms", "2s") → int ms, at most MAX_DURATION_MS either way;
    BadRequest when it is not one."""
    if not isinstance(text, str) or len(text) > MAX_DURATION_CHARS:
        raise BadRequest(f"invalid duration: expected a Go duration of at most {MAX_DURATION_CHARS} characters")
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text  # Go takes one sign, not "--1s"
    if body == "0":
        return 0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise BadRequest(f"invalid duration {text!r} (Go syntax, e.g. 90s, 1h30m, 500ms)")
    if not total <= MAX_DURATION_MS:  # also infinity, which a long run of digits becomes
        raise BadRequest(f"duration {text!r} is over the maximum of 100 years ({MAX_DURATION_MS // 3_600_000}h)")
    return sign * int(total)


def zone(name):
    """An IANA zone; "" and "UTC" are UTC. "Local" is refused: servers must agree on times."""
    if name in ("", "UTC", "utc", "Z"):
        return dt_timezone.utc
    if not isinstance(name, str) or len(name) > MAX_ZONE_CHARS:
        raise BadRequest(f"unknown time zone: expected an IANA name of at most {MAX_ZONE_CHARS} characters")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the file system refuses
        raise BadRequest(f"unknown time zone {name!r}") from None


def name_hash(name):
    return sum(ord(c) for c in name)


@dataclass(frozen=True)
class Schedule:
    kind: str            # cron | every | at | manually
    spec: str = ""       # the 6-field cron after descriptors and ~ were resolved
    tz: object = dt_timezone.utc
    every_ms: int = 0
    anchor_at: int = 0   # @every ticks are anchor_at + k * every_ms
    at: int = 0
    cron: Cron | None = None

    def next_after(self, t):
        """The first fire time strictly after t (Unix ms), or None when there is none."""
        if self.kind == "every":
            if t < self.anchor_at:
                return self.anchor_at + self.every_ms
            return self.anchor_at + ((t - self.anchor_at) // self.every_ms + 1) * self.every_ms
        if self.kind == "at":
            return self.at if self.at > t else None
        if self.kind == "manually":
            return None
        return self._next_cron(t)

    def _next_cron(self, t):
        """Cron's daylight-saving rule (cron(8)), walking the zone's stretches of one UTC offset.
        Within one, wall time and real time move together. Where the offset changes, a wall-clock
        job goes on from the wall time the last stretch reached: an hour repeated is not run
        again, and times a gap skipped run at its end; a real-time job goes on from the wall
        time the new stretch starts at: the repeated hour runs again, the skipped one never."""
        after = t // 1000  # the last whole second that is not after t
        if not MIN_S <= after <= MAX_S:
            return None
        offset = _offset(self.tz, after)
        start, low, floor = after, after + offset + 1, after
        while True:
            wall = self.cron.next_wall(low)
            if wall is None:
                return None
            fire = max(floor, wall - offset)
            change = _next_change(self.tz, start, fire, offset)
            if change is None:
                return fire * 1000
            new = _offset(self.tz, change)
            low = change + (offset if self.cron.wall_clock else new)
            start, offset, floor = change, new, change

    def ticks(self, after, until):
        """Every fire time in (after, until]."""
        found, t = [], after
        while True:
            t = self.next_after(t)
            if t is None or t > until:
                return found
            found.append(t)


def _offset(tz, at):
    """The zone's UTC offset at instant `at` (seconds)."""
    return int(datetime.fromtimestamp(at, tz).utcoffset().total_seconds())


def _next_change(tz, start, until, offset):
    """The first instant in (start, until] whose UTC offset is not `offset`, or None. Offsets
    are read a day apart, then the change is narrowed to its second: zones change at most a
    couple of times a year, never twice in a day."""
    if tz is dt_timezone.utc:
        return None
    low = start
    while low < until:
        high = min(low + CHANGE_PROBE_S, until)
        if _offset(tz, high) != offset:
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if _offset(tz, mid) == offset else (low, mid)
            return high
        low = high
    return None


def offset_changes(tz, at):
    """Whether the zone's UTC offset changes within a year after `at` (Unix ms)."""
    start = at // 1000
    return MIN_S <= start <= MAX_S and _next_change(tz, start, start + YEAR_S, _offset(tz, start)) is not None


def parse(text, *, timezone="", name="", anchor_at=0):
    """Parse a job's schedule; BadRequest names what is wrong. `anchor_at` anchors @every."""
    text = (text or "").strip()
    if not text:
        raise BadRequest("can't parse job schedule: empty spec string")
    tz = zone(timezone)
    parts = text.split()
    if parts[0].startswith(("TZ=", "CRON_TZ=")):
        tz = zone(parts[0].split("=", 1)[1])
        parts = parts[1:]
        if not parts:
            raise BadRequest(f"can't parse job schedule {text!r}: nothing after the time zone")
    head = parts[0]
    if head.startswith("@"):
        return _descriptor(head, parts[1:], tz, anchor_at, text)
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise BadRequest(f"can't parse job schedule {text!r}: expected 5 or 6 fields, found {len(parts)}")
    return _cron([_unhash(f, i, name) for i, f in enumerate(parts)], tz, text)


def _cron(fields, tz, text):
    try:
        cron = parse_fields(fields)
    except BadRequest as err:
        raise BadRequest(f"can't parse job schedule {text!r}: {err}") from None
    return Schedule("cron", spec=" ".join(fields), tz=tz, cron=cron)


def _descriptor(head, rest, tz, anchor_at, text):
    if head in DESCRIPTORS and not rest:
        return _cron(DESCRIPTORS[head].split(), tz, text)
    if head == "@manually" and not rest:
        return Schedule("manually", tz=tz)
    if head == "@every" and len(rest) == 1:
        every = parse_duration(rest[0])
        if every < 0:
            raise BadRequest(f"can't parse job schedule {text!r}: negative interval")
        # Dkron rounds to whole seconds with a floor of one second.
        every = max(MIN_EVERY_MS, every - every % 1000)
        return Schedule("every", tz=tz, every_ms=every, anchor_at=anchor_at)
    if head == "@at" and len(rest) == 1:
        return Schedule("at", tz=tz, at=parse_time(rest[0], tz))
    raise BadRequest(f"can't parse job schedule {text!r}: unknown descriptor")


def parse_time(text, tz=dt_timezone.utc):
    """RFC 3339 → Unix ms; a time without an offset (HTML datetime-local) is read in tz."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"invalid time {text!r}, expected RFC 3339 like 2026-01-02T15:04:05Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    try:
        at = int(when.timestamp() * 1000)
    except (OverflowError, ValueError):
        at = MAX_TIME_MS + 1
    if not MIN_TIME_MS <= at <= MAX_TIME_MS:
        raise BadRequest(f"time {text!r} is outside years 1 to 9999 once its offset is applied")
    return at


def _unhash(field, index, name):
    modulus, offset = HASH_FIELDS[index]
    if match := _RANDOM.match(field):
        low, high, step = match.groups()
        if low is not None and int(low) <= int(high):
            modulus, offset = int(high) - int(low) + 1, int(low)
        return str(name_hash(name) % modulus + offset) + (step or "")
    if "~" not in field:
        return field
    return field.replace("~", str(name_hash(name) % modulus + offset))
