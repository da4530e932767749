"""common/cron.py: the fields of a cron expression and its day forms — L, LW, nW, L-n, nL, n#k
and names — in leap and common years and in months of 28 to 31 days, the nearest-weekday
edges, cron's OR of the two day fields, refusals that name the field, and the expressions
croniter accepted before, which must keep their ticks."""

import random
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from common import cron, schedule
from common.errors import BadRequest

UTC = timezone.utc

# Months with their first weekday and length, named for what they test.
FEB_2026 = (2026, 2)    # 28 days, Sunday 1st, Saturday 28th
FEB_2028 = (2028, 2)    # 29 days (leap), Tuesday 1st, Tuesday 29th
FEB_2024 = (2024, 2)    # 29 days (leap), Thursday 1st, Thursday 29th
APR_2026 = (2026, 4)    # 30 days, Thursday 30th
NOV_2025 = (2025, 11)   # 30 days, Saturday 1st, Sunday 30th
MAY_2026 = (2026, 5)    # 31 days, Sunday 31st
AUG_2026 = (2026, 8)    # 31 days, Saturday 1st, Monday 31st


def days(monthday, weekday, month):
    return list(schedule.parse(f"0 0 0 {monthday} * {weekday}").cron.days(*month))


@pytest.mark.parametrize("month, last", [(FEB_2026, 28), (FEB_2028, 29), (APR_2026, 30), (AUG_2026, 31)])
def test_L_is_the_last_day_of_months_of_28_to_31_days(month, last):
    assert days("L", "*", month) == [last]


@pytest.mark.parametrize("month, expected", [
    (FEB_2026, [27]),   # the 28th is a Saturday
    (FEB_2028, [29]),   # a Tuesday
    (APR_2026, [30]),   # a Thursday
    (MAY_2026, [29]),   # the 31st is a Sunday: back to Friday
    (NOV_2025, [28]),   # the 30th is a Sunday
])
def test_LW_is_the_last_weekday(month, expected):
    assert days("LW", "?", month) == expected


@pytest.mark.parametrize("form, month, expected", [
    ("1W", AUG_2026, [3]),    # the 1st is a Saturday: Monday the 3rd, never July 31st
    ("1W", NOV_2025, [3]),
    ("1W", FEB_2026, [2]),    # the 1st is a Sunday: Monday the 2nd
    ("31W", MAY_2026, [29]),  # the 31st is a Sunday: Friday the 29th, never June 1st
    ("30W", NOV_2025, [28]),  # the last day, a Sunday
    ("31W", AUG_2026, [31]),  # a Monday stays
    ("15W", AUG_2026, [14]),  # a Saturday: the Friday before
    ("15W", FEB_2026, [16]),  # a Sunday: the Monday after
    ("31W", APR_2026, []),    # no 31st: no run, as plain 31
    ("29W", FEB_2026, []),
    ("29W", FEB_2028, [29]),
    ("W15", AUG_2026, [14]),  # croniter's spelling
])
def test_nW_is_the_weekday_nearest_day_n_within_the_month(form, month, expected):
    assert days(form, "*", month) == expected


@pytest.mark.parametrize("form, month, expected", [
    ("L-1", FEB_2026, [27]), ("L-1", FEB_2028, [28]), ("L-1", APR_2026, [29]), ("L-1", AUG_2026, [30]),
    ("L-28", FEB_2026, []), ("L-28", FEB_2028, [1]), ("L-28", AUG_2026, [3]),
    ("L-30", APR_2026, []), ("L-30", AUG_2026, [1]), ("L-0", FEB_2026, [28]),
])
def test_L_minus_n_counts_back_from_the_last_day(form, month, expected):
    assert days(form, "*", month) == expected


@pytest.mark.parametrize("form, month, expected", [
    ("5L", FEB_2026, [27]), ("5L", FEB_2028, [25]), ("5L", APR_2026, [24]), ("5L", AUG_2026, [28]),
    ("5L", MAY_2026, [29]), ("FRIL", MAY_2026, [29]), ("L5", MAY_2026, [29]),
    ("0L", MAY_2026, [31]), ("7L", MAY_2026, [31]), ("SUNL", FEB_2026, [22]),
])
def test_nL_is_the_last_such_weekday(form, month, expected):
    assert days("?", form, month) == expected


@pytest.mark.parametrize("form, month, expected", [
    ("1#2", FEB_2026, [9]), ("1#2", AUG_2026, [10]), ("1#2", FEB_2028, [14]), ("MON#2", AUG_2026, [10]),
    ("6#1", AUG_2026, [1]), ("0#1", FEB_2026, [1]), ("7#1", FEB_2026, [1]),
    ("4#5", FEB_2024, [29]),  # a fifth Thursday in February only when it is leap and starts on one
    ("4#5", FEB_2026, []), ("5#5", MAY_2026, [29]), ("5#5", AUG_2026, []),
    ("1#1,5L", AUG_2026, [3, 28]),
])
def test_n_hash_k_is_the_kth_such_weekday(form, month, expected):
    assert days("?", form, month) == expected


def test_ranges_to_the_last_day():
    assert days("25-L", "*", FEB_2026) == [25, 26, 27, 28]
    assert days("25-L", "*", FEB_2028) == [25, 26, 27, 28, 29]
    assert days("1-L/10", "*", AUG_2026) == [1, 11, 21, 31]
    assert days("L,15", "*", APR_2026) == [15, 30]


def test_names_everywhere_in_any_case():
    assert days("*", "MON-FRI", FEB_2026) == days("*", "1-5", FEB_2026)
    assert days("*", "fri-mon", FEB_2026) == days("*", "5,6,0,1", FEB_2026)  # wraps past Saturday
    assert schedule.parse("0 0 0 1 jan-mar/2 *").cron.months == (1, 3)
    assert schedule.parse("0 0 0 1 NOV-FEB *").cron.months == (1, 2, 11, 12)
    assert days("*", "0-7", FEB_2026) == list(range(1, 29))


def test_both_day_fields_restricted_run_on_either():
    # The last day of the month, or its last Friday (cron's OR, kept as croniter had it).
    assert days("L", "5L", AUG_2026) == [28, 31]
    assert days("13", "5", FEB_2026) == [6, 13, 20, 27]
    assert days("*", "5", FEB_2026) == [6, 13, 20, 27]          # one of them `*`: the other alone
    assert days("13", "?", FEB_2026) == [13]


def test_next_wall_crosses_years_to_a_rare_day():
    sched = schedule.parse("0 0 12 29 2 *")
    ticks = sched.ticks(at(2026, 1, 1), at(2033, 1, 1))
    assert [datetime.fromtimestamp(t / 1000, UTC).year for t in ticks] == [2028, 2032]
    assert schedule.parse("0 0 0 30 2 *").next_after(at(2026, 1, 1)) is None  # never, within MAX_YEARS


def test_last_day_of_february_through_leap_years():
    fires = schedule.parse("0 0 0 L 2 *").ticks(at(2026, 1, 1), at(2029, 1, 1))
    assert [datetime.fromtimestamp(t / 1000, UTC).date().isoformat() for t in fires] == [
        "2026-02-28", "2027-02-28", "2028-02-29"]


def test_minute_hour_and_second_take_ranges_steps_and_lists():
    c = schedule.parse("10/20 0-30/7,45 22-2 * * *").cron
    assert c.seconds == (10, 30, 50)
    assert c.minutes == (0, 7, 14, 21, 28, 45)
    assert c.hours == (0, 1, 2, 22, 23)  # a range that wraps past midnight
    assert schedule.parse("59/15 * * * * *").cron.seconds == (59,)
    assert schedule.parse("0 5-5 * * * *").cron.minutes == (5,)  # croniter 7 read 5-5 as every minute


def test_wall_clock_is_decided_by_the_minute_and_hour_fields():
    wall = lambda text: schedule.parse(text).cron.wall_clock  # noqa: E731
    assert wall("30 2 * * *") and wall("0-59 2 * * *") and wall("0 9-17 * * 1-5") and wall("@daily")
    assert wall("* 30 2 * * *")  # a 6-field expression by its minute and hour
    assert not wall("*/15 * * * *") and not wall("13 * * * *") and not wall("@hourly") and not wall("@minutely")
    assert wall("0 ~ ~ * * *") and not wall("0 ~ * * * *")


def test_croniters_R_is_read_as_the_name_hash():
    # 858 is test_job's hash: R is ~ (858 % 60 = 18); R(0-10) keeps within 0..10 (858 % 11 = 0).
    assert schedule.parse("0 R * * * *", name="test_job").spec == "0 18 * * * *"
    assert schedule.parse("0 R/20 * * * *", name="test_job").spec == "0 18/20 * * * *"
    assert schedule.parse("0 R(0-10) * * * *", name="test_job").spec == "0 0 * * * *"
    assert schedule.parse("0 0 0 * MAR *").cron.months == (3,)  # an R inside a name is a name


# Accepted by croniter, which read them before this evaluator: they keep their ticks.
BEFORE = [
    "0 */5 * * * *", "*/10 * * * * *", "0 0 12 * * MON-FRI", "0 30 9 1,15 * *", "0 0 0 L * *",
    "0 0 0 15W * *", "0 0 0 W15 * *", "0 0 0 * * L5", "0 0 0 * * 1#2", "0 0 0 * * MON#2", "0 0 0 * * 7",
    "0 0 0 * * 0-7", "0 0 0 * * FRI-MON", "0 0 0 * NOV-FEB *", "0 0 0 * jan *", "0 59/15 * * * *",
    "0 10/15 * * * *", "0 5-50/15 * * * *", "0 0 0 1-L * *", "0 0 0 L,15 * *", "0 0 0 ? * ?",
    "0 0 0 * * 6#5", "0 0 0 * * MON-FRI/2", "0 0 0 * * SUN#1,MON#1", "0 0 0 01 * *", "0 00 00 * * *",
    "0 0 0 * * */2", "0 0 0 */2 * 1", "0 0 */25 * * *", "0 0 0 1 JAN-MAR/2 *", "0 0-30/7,45 * * * *",
    "0 0 12 13 * 5", "0 30-10 * * * *", "0 0 22-2 * * *", "0 0 0 31-1 * *", "0 0 0 1-L/2 * *",
    "0 0 0 * * L1,L5", "0 0 0 * * 2#1,L5", "0 */60 * * * *", "*/90 * * * * *", "0 0 0 * * 5-1",
    "0 0 0 25-0 * *", "0 0 0 1 10-0 *",
]


@pytest.mark.parametrize("spec", BEFORE)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_expressions_croniter_accepted_keep_their_ticks_outside_dst_nights(spec, zone):
    tz = ZoneInfo(zone)
    sched = schedule.parse(spec, timezone=zone)
    # A summer and a winter with no change of offset in Berlin: up to 40 ticks of each.
    for start, end in [(datetime(2026, 4, 2, tzinfo=tz), datetime(2026, 10, 20, tzinfo=tz)),
                       (datetime(2026, 11, 1, tzinfo=tz), datetime(2027, 3, 20, tzinfo=tz))]:
        expected, it = [], croniter(spec, start, second_at_beginning=True, day_or=True)
        while len(expected) < 40 and (fire := it.get_next(datetime)) < end:
            expected.append(int(fire.timestamp() * 1000))
        got, t = [], int(start.timestamp() * 1000)
        while len(got) < len(expected) + 1 and (t := sched.next_after(t)) < end.timestamp() * 1000:
            got.append(t)
        assert got[:len(expected)] == expected
        assert len(got) == len(expected) or len(expected) == 40


@pytest.mark.parametrize("text, message", [
    ("0 0 0 LW5 * *", "day-of-month: 'LW5' is not 1-31, L, LW, L-n or nW"),
    ("0 0 0 L-31 * *", "day-of-month: 'L-31': L-n takes n from 0 to 30"),
    ("0 0 0 0W * *", "day-of-month: '0W': nW takes a day 1-31"),
    ("0 0 0 * * 1#0", "day-of-week: '1#0': n#k takes a week k from 1 to 5"),
    ("0 0 0 * * FOO#1", "day-of-week: 'FOO' in 'FOO#1' is not 0-7 or SUN-SAT, nL or n#k"),
    ("0 0 0 * * 5W", "day-of-week: '5W' is not 0-7 or SUN-SAT, nL or n#k"),
    ("0 0 0 1-32 * *", "day-of-month: 32 in '1-32' is out of range 1-31"),
    ("0 0 0 * 0 *", "month: 0 is out of range 1-12"),
    ("0 0 0 1? * *", 'day-of-month: "?" stands alone'),
    ("0 MON * * * *", "minute: 'MON' is not 0-59"),
    ("0 1- * * * *", "minute: '' in '1-' is not 0-59"),
    ("0 0 0 L/2 * *", "day-of-month: 'L/2' is not 1-31, L, LW, L-n or nW"),
    ("0 0 0 * 13 *", "month: 13 is out of range 1-12"),
    ("0 0 0 * FOO *", "month: 'FOO' is not 1-12 or JAN-DEC"),
    ("*/0 * * * *", "minute: '*/0': the step after / must be a whole number of at least 1"),
    ("0 ? * * * *", 'minute: "?" is only for day-of-month and day-of-week'),
    ("0 0 0 32W * *", "day-of-month: '32W': nW takes a day 1-31"),
    ("0 0 0 * * 1#6", "day-of-week: '1#6': n#k takes a week k from 1 to 5"),
    ("0 0 0 * * 8L", "day-of-week: 8 in '8L' is out of range 0-7"),
    ("0 0 0 * * L", 'day-of-week: "L" needs a day before it'),
    ("0 0 0 LX * *", "day-of-month: 'LX' is not 1-31, L, LW, L-n or nW"),
    ("0 5,,6 * * * *", "minute: '5,,6' has an empty value in its list"),
])
def test_refusals_name_the_field_and_the_form(text, message):
    pytest.raises(BadRequest, schedule.parse, text).match(re.escape(message))


def test_fields_are_listed_in_order():
    assert [f.name for f in cron.FIELDS] == ["second", "minute", "hour", "day-of-month", "month", "day-of-week"]


def at(*parts):
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def test_any_text_is_parsed_or_refused_never_crashes():
    # Seeded: valid fields with none, one or two of them swapped for garbage built of the
    # characters the grammar uses and some it does not. Only BadRequest comes out.
    rng = random.Random(19)
    valid = [["0", "*/10", "5-50/5"], ["*", "30", "*/15"], ["*", "2", "22-2"], ["*", "L", "15W", "?"],
             ["*", "JAN-MAR", "12"], ["*", "MON#2", "5L", "?"]]
    atoms = ["*", "?", "/", "-", ",", "#", "L", "W", "LW", "0", "1", "7", "12", "31", "60", "99999999999999", "MON",
             "jan", "R", "~", "(", ")", "²", "٣", "ß", "-1"]
    parsed = 0
    for _ in range(3000):
        fields = [rng.choice(choices) for choices in valid]
        for i in rng.sample(range(6), rng.randint(0, 2)):
            fields[i] = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 3)))
        try:
            sched = schedule.parse(" ".join(fields), timezone="Europe/Berlin", name="fuzz")
        except BadRequest:
            continue
        parsed += 1
        ticks = sched.ticks(at(2026, 3, 29, 0, 30), at(2026, 3, 29, 1, 30))  # Berlin springs forward at 01:00
        assert ticks == sorted(set(ticks))
    assert parsed > 500
