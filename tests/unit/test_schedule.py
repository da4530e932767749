"""common/schedule.py: Dkron's schedule language evaluated in the job's zone — cron with and
without seconds, descriptors, @every, @at, @manually, TZ prefixes, the `~` hash; the DST nights
are test_schedule_dst.py's, the day forms test_cron.py's."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from common import schedule
from common.errors import BadRequest

UTC = timezone.utc


def at(*parts, tz=UTC):
    """A wall time in tz → Unix ms."""
    return int(datetime(*parts, tzinfo=tz).timestamp() * 1000)


def wall(ms, tz=UTC):
    """Unix ms → naive wall time in tz, for readable assertions."""
    return datetime.fromtimestamp(ms / 1000, tz=tz).replace(tzinfo=None)


def next_wall(spec, after, tz=UTC, **kw):
    return wall(schedule.parse(spec, **kw).next_after(after), tz)


def test_six_fields_start_with_seconds():
    assert next_wall("15 30 * * * *", at(2026, 1, 1)) == datetime(2026, 1, 1, 0, 30, 15)


def test_five_fields_fire_at_second_zero():
    sched = schedule.parse("*/5 * * * *")
    assert sched.spec == "0 */5 * * * *"
    assert wall(sched.next_after(at(2026, 1, 1, 0, 0, 1))) == datetime(2026, 1, 1, 0, 5, 0)


def test_next_after_is_strictly_after():
    t = at(2026, 1, 1, 0, 5)
    assert wall(schedule.parse("0 */5 * * * *").next_after(t)) == datetime(2026, 1, 1, 0, 10)


@pytest.mark.parametrize("spec,expected", [
    ("0 0 12 ? * MON", datetime(2026, 1, 5, 12)),   # 2026-01-01 is a Thursday
    ("0 0 12 2 * ?", datetime(2026, 1, 2, 12)),
])
def test_question_mark_means_any(spec, expected):
    assert next_wall(spec, at(2026, 1, 1)) == expected


def test_day_of_month_and_day_of_week_are_ored():
    # The 13th, or any Friday (as cron and Dkron do when both are restricted).
    sched = schedule.parse("0 0 12 13 * 5")
    days = [wall(t).day for t in sched.ticks(at(2026, 1, 1), at(2026, 1, 31, 23))]
    assert days == [2, 9, 13, 16, 23, 30]


AFTER = at(2026, 5, 13, 10, 20, 30)  # a Wednesday


@pytest.mark.parametrize("spec,expected", [
    ("@yearly", datetime(2027, 1, 1)),
    ("@annually", datetime(2027, 1, 1)),
    ("@monthly", datetime(2026, 6, 1)),
    ("@weekly", datetime(2026, 5, 17)),      # Sunday midnight
    ("@daily", datetime(2026, 5, 14)),
    ("@midnight", datetime(2026, 5, 14)),
    ("@hourly", datetime(2026, 5, 13, 11)),
    ("@minutely", datetime(2026, 5, 13, 10, 21)),
])
def test_descriptors(spec, expected):
    assert next_wall(spec, AFTER) == expected


def test_descriptors_honour_the_job_timezone():
    tokyo = ZoneInfo("Asia/Tokyo")
    fire = schedule.parse("@daily", timezone="Asia/Tokyo").next_after(at(2026, 1, 1))
    assert wall(fire, tokyo) == datetime(2026, 1, 2)
    assert wall(fire) == datetime(2026, 1, 1, 15)


def test_every_is_anchored_at_anchor_at():
    anchor = at(2026, 1, 1, 0, 0, 0) + 250  # not on a second: ticks keep the anchor's phase
    sched = schedule.parse("@every 10s", anchor_at=anchor)
    assert sched.next_after(anchor) == anchor + 10_000
    assert sched.next_after(anchor + 10_000) == anchor + 20_000
    assert sched.next_after(anchor + 12_345) == anchor + 20_000
    assert sched.next_after(anchor - 60_000) == anchor + 10_000
    assert sched.ticks(anchor, anchor + 30_000) == [anchor + 10_000, anchor + 20_000, anchor + 30_000]


def test_every_accepts_go_durations():
    assert schedule.parse("@every 1h30m").every_ms == 90 * 60_000


@pytest.mark.parametrize("spec,every_ms", [
    ("@every 2500ms", 2000),   # rounded down to whole seconds, as Dkron does
    ("@every 1.5s", 1000),
    ("@every 200ms", 1000),    # with a floor of one second
    ("@every 0s", 1000),
    ("@every 0", 1000),
])
def test_every_rounds_to_whole_seconds_with_a_one_second_floor(spec, every_ms):
    assert schedule.parse(spec).every_ms == every_ms


def test_at_in_the_future_fires_once():
    when = at(2026, 6, 1, 12)
    sched = schedule.parse("@at 2026-06-01T12:00:00Z")
    assert sched.next_after(when - 1) == when
    assert sched.next_after(when) is None


def test_at_in_the_past_never_fires():
    assert schedule.parse("@at 2020-01-01T00:00:00Z").next_after(at(2026, 1, 1)) is None


def test_at_reads_an_offset_or_the_job_timezone():
    assert schedule.parse("@at 2026-06-01T12:00:00+02:00").at == at(2026, 6, 1, 10)
    assert schedule.parse("@at 2026-06-01T12:00:00", timezone="Europe/Berlin").at == at(2026, 6, 1, 10)


def test_manually_never_fires():
    sched = schedule.parse("@manually")
    assert sched.kind == "manually"
    assert sched.next_after(0) is None and sched.ticks(0, at(2030, 1, 1)) == []


@pytest.mark.parametrize("prefix", ["TZ", "CRON_TZ"])
def test_timezone_prefix(prefix):
    ny = ZoneInfo("America/New_York")
    fire = schedule.parse(f"{prefix}=America/New_York 0 0 9 * * *").next_after(at(2026, 1, 1))
    assert wall(fire, ny) == datetime(2026, 1, 1, 9)
    assert wall(fire) == datetime(2026, 1, 1, 14)


def test_timezone_prefix_wins_over_job_timezone():
    fire = schedule.parse("CRON_TZ=Asia/Tokyo 0 0 9 * * *", timezone="Europe/Berlin").next_after(at(2026, 1, 1))
    assert wall(fire) == datetime(2026, 1, 2, 0)


def test_job_timezone_is_honoured_by_cron():
    fire = schedule.parse("0 0 9 * * *", timezone="Europe/Berlin").next_after(at(2026, 1, 1))
    assert wall(fire) == datetime(2026, 1, 1, 8)


def test_name_hash_is_dkrons_sum_of_code_points():
    assert schedule.name_hash("test_job") == 858


def test_tilde_in_hour_field():
    sched = schedule.parse("0 0 ~ * * *", name="test_job")  # 858 % 24 = 18
    assert sched.spec == "0 0 18 * * *"
    assert wall(sched.next_after(at(2026, 1, 1))) == datetime(2026, 1, 1, 18)


def test_tilde_in_month_field_after_timezone_prefix():
    madrid = ZoneInfo("Europe/Madrid")
    sched = schedule.parse("TZ=Europe/Madrid 0 0 1 * ~ *", name="test_job")  # 858 % 12 + 1 = 7
    assert sched.spec == "0 0 1 * 7 *"
    assert wall(sched.next_after(at(2026, 1, 1)), madrid) == datetime(2026, 7, 1, 1)


def test_tilde_depends_on_the_name():
    assert schedule.parse("0 ~ * * * *", name="a").spec != schedule.parse("0 ~ * * * *", name="b").spec


@pytest.mark.parametrize("text,ms", [
    ("1h30m", 5_400_000), ("500ms", 500), ("2s", 2000), ("90s", 90_000), ("1.5h", 5_400_000),
    (".5s", 500), ("1m0.5s", 60_500), ("0", 0), ("-1s", -1000), ("+3s", 3000), ("1500us", 1),
    ("2000000ns", 2), ("1µs", 0),
])
def test_parse_duration_go_syntax(text, ms):
    assert schedule.parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "1", "1d", "h", "1h 2m", "s1", "abc", "+", "-", "--1s", "1s-"])
def test_parse_duration_errors(text):
    with pytest.raises(BadRequest) as err:
        schedule.parse_duration(text)
    assert "invalid duration" in str(err.value)


@pytest.mark.parametrize("spec,fragment", [
    ("", "empty spec"),
    ("   ", "empty spec"),
    ("foo", "expected 5 or 6 fields"),
    ("* * * *", "expected 5 or 6 fields"),
    ("* * * * * * *", "expected 5 or 6 fields"),
    ("61 * * * * *", "second: 61 is out of range 0-59"),
    ("0 0 25 * * *", "hour: 25 is out of range 0-23"),
    ("@every", "unknown descriptor"),
    ("@hourly now", "unknown descriptor"),
    ("@often", "unknown descriptor"),
    ("@every 1d", "invalid duration"),
    ("@every -1s", "negative interval"),
    ("@at tomorrow", "invalid time"),
    ("TZ=Nowhere/City * * * * * *", "unknown time zone"),
    ("TZ=UTC", "nothing after the time zone"),
])
def test_invalid_spec_raises_bad_request_with_a_message(spec, fragment):
    with pytest.raises(BadRequest) as err:
        schedule.parse(spec)
    assert fragment in str(err.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "Local", "../etc/passwd"])
def test_unknown_or_local_timezone_is_refused(name):
    with pytest.raises(BadRequest) as err:
        schedule.parse("@daily", timezone=name)
    assert "unknown time zone" in str(err.value)
