"""common/models.py: Dkron's job validation and JSON shapes, and the next fire time of a job
(disabled, child, starts_at, expires_at)."""

from datetime import datetime, timezone

import pytest

from common import models
from common.errors import BadRequest

NOW = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
MINUTE_MS = 60_000

# The job of Dkron's OpenAPI examples (reference/dkron-openapi.yaml), every writable field set.
DKRON_EXAMPLE = {
    "name": "job1", "displayname": "Job one", "schedule": "@every 10s", "timezone": "Europe/Berlin",
    "owner": "Platform Team", "owner_email": "platform@example.com", "disabled": False,
    "tags": {"server": "true"}, "metadata": {"office": "Barcelona"}, "retries": 2,
    "processors": {"log": {"forward": "true"}}, "concurrency": "allow", "executor": "shell",
    "executor_config": {"command": "echo 'Hello from Dkron'"},
}


def job(**fields):
    doc = {"name": "backup", "schedule": "0 * * * * *", "executor": "shell",
           "executor_config": {"command": "true"}}
    doc.update(fields)
    return models.validate_job(doc, now=NOW)


def rejected(**fields):
    with pytest.raises(BadRequest) as err:
        job(**fields)
    return str(err.value)


def test_accepts_dkrons_example_job():
    got = models.validate_job(dict(DKRON_EXAMPLE), now=NOW)
    for key, value in DKRON_EXAMPLE.items():
        assert got[key] == value, key
    assert got["created_at"] == NOW
    assert got["parent_job"] == "" and got["dependent_jobs"] == [] and got["ephemeral"] is False


def test_unknown_fields_are_ignored_and_read_only_fields_not_taken():
    got = job(command="legacy", success_count=99, status="success", next="2030-01-01T00:00:00Z")
    assert "command" not in got and "next" not in got
    assert "success_count" not in got and "status" not in got


def test_concurrency_defaults_to_allow_and_empty_stays_empty():
    assert job()["concurrency"] == "allow"
    assert job(concurrency="")["concurrency"] == ""
    assert job(concurrency="forbid")["concurrency"] == "forbid"


def test_payload_must_be_an_object():
    with pytest.raises(BadRequest) as err:
        models.validate_job(["backup"])
    assert "JSON object" in str(err.value)


@pytest.mark.parametrize("name", ["", None])
def test_rejects_empty_name(name):
    assert "name cannot be empty" in rejected(name=name)


def test_rejects_illegal_characters():
    assert rejected(name="BAD JOB NAME!") == "Job validation failed: name contains illegal character 'B'."


@pytest.mark.parametrize("name", ["a b", "a.b", "a/b", "ABC", "a\nb", "a:b"])
def test_rejects_each_illegal_character(name):
    assert "illegal character" in rejected(name=name)


def test_rejects_non_string_name():
    assert "name must be a string" in rejected(name=5)


@pytest.mark.parametrize("name", ["abc-_ßñ", "job-01_x", "abc-_ßñëäïüøüáéíóýćàèìòùâêîôûæšłç"])
def test_accepts_unicode_lower_case(name):
    assert job(name=name)["name"] == name


def test_rejects_bad_concurrency():
    assert 'invalid concurrency policy value, use "allow", "forbid" or "replace"' in rejected(concurrency="sometimes")


def test_rejects_negative_retries():
    assert "retries must be 0..1000" in rejected(retries=-1)


@pytest.mark.parametrize("value", [True, "2", 1.5])
def test_rejects_retries_that_are_not_an_integer(value):
    assert "retries must be an integer" in rejected(retries=value)


def test_rejects_self_parent():
    assert "can not have itself as parent" in rejected(parent_job="backup")


def test_child_job_needs_no_schedule_but_a_top_level_job_does():
    assert job(schedule="", parent_job="nightly")["schedule"] == ""
    assert "empty spec string" in rejected(schedule="")


def test_rejects_bad_timezone():
    assert "unknown time zone 'Mars/Olympus'" in rejected(timezone="Mars/Olympus")


@pytest.mark.parametrize("spec", ["every minute", "61 * * * * *", "@every 1d"])
def test_rejects_bad_schedule(spec):
    message = rejected(schedule=spec)
    assert message.startswith("Job validation failed: ")


@pytest.mark.parametrize("config", [{"command": "true", "timeout": 30}, {"command": ["ls", "-l"]}])
def test_rejects_non_string_executor_config_values(config):
    assert "executor_config must map names to strings" in rejected(executor_config=config)


@pytest.mark.parametrize("key,value", [("tags", {"role": 1}), ("metadata", "x"),
                                       ("processors", {"log": "forward"})])
def test_rejects_maps_of_the_wrong_shape(key, value):
    assert "Unable to parse payload" in rejected(**{key: value})


def test_rejects_shell_without_command():
    assert "needs executor_config.command" in rejected(executor_config={})
    assert "needs executor_config.command" in rejected(executor_config={"command": ""})


def test_rejects_shell_timeout_that_is_not_a_duration():
    assert "invalid duration" in rejected(executor_config={"command": "true", "timeout": "10 minutes"})


DKRON_HTTP = {"method": "GET", "url": "http://example.com", "headers": "[]", "body": "", "timeout": "30",
              "expectCode": "200", "expectBody": "", "debug": "true"}  # Dkron's documented example


@pytest.mark.parametrize("timeout,ms", [("30", 30_000), ("0", 0), (" 5 ", 5_000), ("30s", 30_000), ("1m30s", 90_000)])
def test_http_timeout_is_whole_seconds_as_dkron_reads_it_or_a_go_duration(timeout, ms):
    job = models.validate_job({"name": "h", "schedule": "@manually", "executor": "http",
                               "executor_config": {**DKRON_HTTP, "timeout": timeout}})
    assert models.executor_timeout_ms("http", job["executor_config"]["timeout"]) == ms


@pytest.mark.parametrize("timeout", ["-5", "-5s", "thirty", "3O", "²"])
def test_rejects_http_timeout_neither_seconds_nor_a_duration(timeout):
    message = rejected(executor="http", executor_config={**DKRON_HTTP, "timeout": timeout})
    assert message.startswith("Job validation failed: ") and ("timeout" in message or "duration" in message)


@pytest.mark.parametrize("kind", [{}, [], None, 1])
def test_rejects_a_notification_type_that_is_not_a_name(kind):
    assert ".type must be" in rejected(notifications=[{"type": kind, "url": "http://example.com"}])


def test_shell_timeout_stays_a_go_duration_as_in_dkron():
    assert "invalid duration" in rejected(executor_config={"command": "true", "timeout": "30"})
    assert models.executor_timeout_ms("shell", "1m") == 60_000


def test_rejects_wrongly_typed_flags():
    assert "disabled must be true or false" in rejected(disabled="false")


def test_starts_and_expires_at_are_parsed_in_the_job_timezone():
    got = job(timezone="Europe/Berlin", starts_at="2026-01-01T01:00", expires_at="2026-02-01T00:00:00Z")
    assert got["starts_at"] == NOW  # 01:00 CET is midnight UTC
    assert got["expires_at"] == NOW + 31 * 24 * 60 * MINUTE_MS
    assert "invalid time" in rejected(starts_at="soon")


def test_job_to_dkron_has_dkrons_fields_and_zero_values():
    out = models.job_to_dkron(job())
    assert set(out) == {
        "id", "name", "displayname", "timezone", "schedule", "owner", "owner_email", "success_count",
        "error_count", "skipped_count", "last_success", "last_error", "disabled", "tags", "metadata", "retries",
        "dependent_jobs", "parent_job", "processors", "concurrency", "executor", "executor_config",
        "status", "next", "ephemeral", "starts_at", "expires_at",
        "misfire_policy", "catchup_window", "jitter", "retry_interval", "max_retry_interval", "timeout",
        "history_limit", "notifications"}
    assert out["id"] == out["name"] == "backup"
    assert out["tags"] is None and out["metadata"] is None and out["dependent_jobs"] is None
    assert out["last_success"] is None and out["starts_at"] is None
    assert out["next"] == "0001-01-01T00:00:00Z"
    assert out["success_count"] == 0 and out["status"] == ""


def test_job_to_dkron_renders_times_and_state():
    stored = dict(job(tags={"role": "web"}), success_count=3, last_success_at=NOW + 1234, status="success",
                  dependent_jobs=["child"])
    out = models.job_to_dkron(stored, next_at=NOW + MINUTE_MS)
    assert out["next"] == "2026-01-01T00:01:00.000Z"
    assert out["last_success"] == "2026-01-01T00:00:01.234Z"
    assert (out["success_count"], out["status"], out["tags"], out["dependent_jobs"]) == (
        3, "success", {"role": "web"}, ["child"])


def test_execution_to_dkron_of_a_running_execution():
    ex = dict(models.new_execution("backup", "web1", group=NOW * 1_000_000, scheduled_at=NOW),
              status="running", started_at=NOW + 5)
    out = models.execution_to_dkron(ex)
    assert out["finished_at"] == "0001-01-01T00:00:00Z"  # what Dkron's UI reads as "running"
    assert out["started_at"] == "2026-01-01T00:00:00.005Z"
    assert (out["id"], out["job_name"], out["node_name"], out["attempt"]) == (
        f"backup-{NOW * 1_000_000}-web1", "backup", "web1", 1)
    assert out["scheduled_at"] == "2026-01-01T00:00:00.000Z"
    assert out["success"] is False and out["status"] == "running"


def test_execution_to_dkron_of_a_finished_execution():
    ex = dict(models.new_execution("backup", "web1", group=1, scheduled_at=NOW), status="success",
              started_at=NOW, finished_at=NOW + 2000, success=True, exit_code=0, output="ok\n")
    out = models.execution_to_dkron(ex)
    assert out["finished_at"] == "2026-01-01T00:00:02.000Z"
    assert (out["success"], out["exit_code"], out["output"]) == (True, 0, "ok\n")


def test_next_fire_is_the_next_schedule_time():
    assert models.next_fire(job(), NOW) == NOW + MINUTE_MS


def test_next_fire_of_a_disabled_job_is_none():
    assert models.next_fire(job(disabled=True), NOW) is None


def test_next_fire_of_a_child_job_is_none():
    assert models.next_fire(job(parent_job="nightly"), NOW) is None


def test_next_fire_waits_for_starts_at():
    starts = "2026-01-01T01:00:00Z"
    assert models.next_fire(job(starts_at=starts), NOW) == NOW + 60 * MINUTE_MS  # starts_at itself fires
    assert models.next_fire(job(starts_at="2026-01-01T01:00:30Z"), NOW) == NOW + 61 * MINUTE_MS


def test_next_fire_stops_at_expires_at():
    assert models.next_fire(job(expires_at="2026-01-01T00:00:30Z"), NOW) is None
    assert models.next_fire(job(expires_at="2026-01-01T00:01:00Z"), NOW) == NOW + MINUTE_MS


def test_next_fire_after_the_last_scheduled_tick():
    stored = dict(job(), last_scheduled_at=NOW + 5 * MINUTE_MS)
    assert models.next_fire(stored, NOW) == NOW + 6 * MINUTE_MS


def test_next_fire_of_every_is_anchored_at_created_at():
    every = job(schedule="@every 10s")
    assert models.next_fire(every, NOW + 12_000) == NOW + 20_000


def test_next_fire_uses_the_default_timezone_when_the_job_has_none():
    daily = job(schedule="0 0 10 * * *")
    assert models.next_fire(daily, NOW, default_timezone="Asia/Tokyo") == NOW + 60 * MINUTE_MS  # UTC+9
    assert models.next_fire(daily, NOW) == NOW + 10 * 60 * MINUTE_MS
    assert models.next_fire(dict(daily, timezone="UTC"), NOW, default_timezone="Asia/Tokyo") == (
        NOW + 10 * 60 * MINUTE_MS)


def test_tail_cuts_on_a_character_boundary():
    assert models.tail("abc", 10) == ("abc", False)
    assert models.tail("xßß", 3) == ("ß", True)


def test_pykron_scheduling_fields_are_checked():
    assert "misfire_policy" in rejected(misfire_policy="sometimes")
    assert "duration" in rejected(jitter="soon")
    assert "negative" in rejected(retry_interval="-1s")
    assert "history_limit" in rejected(history_limit=0)
    assert "value:N" in rejected(tags={"role": "web:many"})
    assert "value:N" in rejected(tags={"role": "web:0"})
