"""common/preview.py: a schedule read back in words, with its next fire times in its zone and in
UTC, for every form a job takes; and `pykronctl schedule`, which prints it without a cluster."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common import preview
from common.errors import BadRequest

NOW = 1_793_505_600_000  # 2026-11-01T04:00:00Z: midnight in New York, an hour before its clocks go back
PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")


def test_a_cron_schedule_in_words_with_its_times_in_its_zone_and_in_utc():
    doc = preview.preview("*/15 * * * *", timezone="America/New_York", count=9, now=NOW + 3_600_000)
    assert doc["schedule"] == "*/15 * * * *" and doc["timezone"] == "America/New_York"
    assert doc["description"] == "Every 15 minutes (America/New_York time)"
    assert "real time" in doc["daylight_saving"] and "runs in both" in doc["daylight_saving"]
    assert [t["local"][11:16] + " " + t["zone"] for t in doc["next"]] == [
        "01:15 EDT", "01:30 EDT", "01:45 EDT", "01:00 EST", "01:15 EST", "01:30 EST", "01:45 EST", "02:00 EST",
        "02:15 EST"]
    assert doc["next"][3] == {"at": "2026-11-01T06:00:00.000Z", "local": "2026-11-01T01:00:00.000-05:00",
                              "zone": "EST"}


def test_a_fixed_time_says_it_follows_the_wall_clock():
    doc = preview.preview("30 1 * * *", timezone="America/New_York", count=2, now=NOW)
    assert doc["description"] == "At 01:30 (America/New_York time)"
    assert "wall clock" in doc["daylight_saving"]
    assert [t["local"] for t in doc["next"]] == ["2026-11-01T01:30:00.000-04:00", "2026-11-02T01:30:00.000-05:00"]


@pytest.mark.parametrize("text, zone, words", [
    ("0 0 12 LW * *", "", "At 12:00, on the last weekday of the month (UTC)"),
    ("0 0 9 ? * MON#2", "", "At 09:00, on the second Monday of the month (UTC)"),
    ("0 0 0 * * 5L", "", "At 00:00, on the last Friday of the month (UTC)"),
    ("0 0 8 15W * *", "", "At 08:00, on the weekday nearest day 15 of the month (UTC)"),
    ("0 0 0 L-2 * *", "", "At 00:00, 2 days before the last day of the month (UTC)"),
    ("@daily", "Asia/Tokyo", "At 00:00 (Asia/Tokyo time)"),
    ("TZ=Europe/Berlin 0 30 9 * * MON-FRI", "Asia/Tokyo", "At 09:30, Monday through Friday (Europe/Berlin time, set by TZ=)"),
    ("@every 90m", "", "Every 1 hour 30 minutes, counted from when the job was created"),
    ("@every 1s", "", "Every 1 second, counted from when the job was created"),
    ("@at 2026-12-24T18:00:00Z", "Europe/Berlin", "Once, at 2026-12-24 19:00:00 (Europe/Berlin time)"),
    ("@at 2020-01-01T00:00:00Z", "", "Once, at 2020-01-01 00:00:00 (UTC), which has passed: it will not run"),
    ("@manually", "", "Never on its own: only when run by hand"),
])
def test_every_form_in_words(text, zone, words):
    assert preview.preview(text, timezone=zone, now=NOW)["description"] == words


def test_the_name_hash_is_shown_resolved():
    doc = preview.preview("0 ~ * * *", name="test_job", now=NOW)  # the hour: 858 % 24 = 18
    assert doc["description"] == "At 18:00 (UTC); ~ is read from the job name 'test_job': 0 0 18 * * *"
    assert "give the job's name" in preview.preview("0 ~ * * *", now=NOW)["description"]


def test_zones_without_changes_and_other_kinds_say_nothing_of_daylight_saving():
    for text, zone in [("30 1 * * *", ""), ("30 1 * * *", "Asia/Tokyo"), ("@every 1h", "America/New_York")]:
        assert preview.preview(text, timezone=zone, now=NOW)["daylight_saving"] == ""


def test_every_is_anchored_now_and_at_fires_once():
    assert [t["at"] for t in preview.preview("@every 1h", count=2, now=NOW)["next"]] == [
        "2026-11-01T05:00:00.000Z", "2026-11-01T06:00:00.000Z"]
    assert len(preview.preview("@at 2026-12-24T18:00:00Z", count=5, now=NOW)["next"]) == 1
    assert preview.preview("@manually", now=NOW)["next"] == []
    assert preview.preview("0 0 0 30 2 *", now=NOW)["next"] == []  # valid, but never


@pytest.mark.parametrize("count", [0, 101])
def test_count_is_1_to_100(count):
    with pytest.raises(BadRequest, match="count: expected 1 to 100"):
        preview.preview("@daily", count=count, now=NOW)
    assert len(preview.preview("*/5 * * * *", count=100, now=NOW)["next"]) == 100


@pytest.mark.parametrize("text, zone, message", [
    ("0 0 0 32 * *", "", "day-of-month: 32 is out of range 1-31"),
    ("*/15 * * *", "", "expected 5 or 6 fields, found 4"),
    ("@daily", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
])
def test_a_bad_schedule_is_refused_with_the_parsers_message(text, zone, message):
    with pytest.raises(BadRequest, match=message):
        preview.preview(text, timezone=zone, now=NOW)


def ctl(*args):
    # A server nobody listens on: the preview is computed by pykronctl itself.
    return subprocess.run([PYKRONCTL, "--server", "127.0.0.1:9", "--timeout-ms", "300", *args],
                          capture_output=True, text=True, timeout=60)


def test_pykronctl_schedule_prints_words_and_times_without_a_cluster():
    done = ctl("schedule", "30 2 * * *", "--tz", "Europe/Berlin", "--count", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "At 02:30 (Europe/Berlin time)" and "wall clock" in lines[1]
    assert lines[2].split() == ["LOCAL", "UTC"] and len(lines) == 6
    assert lines[3].split()[1:3] == ["02:30:00", lines[3].split()[2]] and lines[3].split()[2] in ("CET", "CEST")


def test_pykronctl_schedule_json_is_the_apis_document_and_words_join():
    done = ctl("--json", "schedule", "@every", "10s", "--count", "2")  # unquoted words are one schedule
    doc = json.loads(done.stdout)
    assert doc["schedule"] == "@every 10s" and doc["description"].startswith("Every 10 seconds")
    assert set(doc) == {"schedule", "timezone", "description", "daylight_saving", "next"} and len(doc["next"]) == 2


def test_pykronctl_schedule_refuses_a_bad_expression_with_exit_2():
    done = ctl("schedule", "0 0 0 * * 1#6")
    assert done.returncode == 2
    assert "day-of-week: '1#6': n#k takes a week k from 1 to 5" in done.stderr
    assert ctl("schedule", "@daily", "--count", "0").returncode == 2
