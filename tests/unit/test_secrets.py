"""common/secrets.py: secret values of a job's executor_config are redacted for every face and
kept as stored when a job comes back with them redacted."""

import json

import pytest

from common import errors, secrets

R = secrets.REDACTED


def job(**config):
    return {"name": "db", "executor": "shell", "executor_config": {"command": "backup", **config}}


def test_secret_keys_and_headers_are_redacted_and_the_rest_left_alone():
    stored = job(password="hunter2", saslPassword="s", Token="t", user="bob",
                 headers=json.dumps(["Content-Type: application/json", "Authorization: Bearer abc"]))
    shown = secrets.redact(stored)
    config = shown["executor_config"]
    assert (config["password"], config["saslPassword"], config["Token"]) == (R, R, R)
    assert config["user"] == "bob" and config["command"] == "backup"
    assert json.loads(config["headers"]) == ["Content-Type: application/json", f"Authorization: {R}"]
    assert "hunter2" not in json.dumps(shown) and "abc" not in json.dumps(shown)
    assert stored["executor_config"]["password"] == "hunter2"  # the stored job is untouched
    assert secrets.redact(job(dsn="x"), extra=["DSN"])["executor_config"]["dsn"] == R
    assert secrets.redact(job()) == job()


def test_a_job_sent_back_as_shown_keeps_its_stored_secrets():
    stored = job(password="hunter2", headers=json.dumps(["Authorization: Bearer abc", "X-Other: 1"]))
    back = secrets.redact(stored)
    back["executor_config"]["command"] = "backup --full"
    kept = secrets.keep_stored(back, stored)
    assert kept["executor_config"]["password"] == "hunter2"
    assert json.loads(kept["executor_config"]["headers"]) == ["Authorization: Bearer abc", "X-Other: 1"]
    assert kept["executor_config"]["command"] == "backup --full"
    assert secrets.keep_stored(job(password="new"), stored)["executor_config"]["password"] == "new"


def test_a_redacted_value_with_nothing_stored_is_refused():
    with pytest.raises(errors.BadRequest, match="no stored value"):
        secrets.keep_stored(job(password=R), None)
