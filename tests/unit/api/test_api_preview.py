"""services/api/preview.py: GET /v1/schedule answers common/preview.py's document (the one
pykronctl schedule prints), in the cluster's default zone when none is given, and a bad
schedule, zone or count with a 400 whose error says what is wrong."""

import pytest

from common import errors, preview
from fakeclient import NOW
from services.api import preview as resource


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(resource, "now_ms", lambda: NOW)


def test_the_answer_is_the_preview_functions(api):
    resp = api.simulate_get("/v1/schedule", params={"schedule": "*/15 * * * *", "timezone": "America/New_York",
                                                    "count": "3"})
    assert resp.status_code == 200
    assert resp.json == preview.preview("*/15 * * * *", timezone="America/New_York", count=3, now=NOW)
    assert resp.json["description"] == "Every 15 minutes (America/New_York time)" and len(resp.json["next"]) == 3


def test_without_a_zone_the_clusters_default_applies(api, fake):
    fake.settings_map["default_timezone"] = "Europe/Berlin"
    resp = api.simulate_get("/v1/schedule", params={"schedule": "0 30 9 * * *"})
    assert resp.json["timezone"] == "Europe/Berlin" and len(resp.json["next"]) == preview.DEFAULT_COUNT
    assert resp.json["next"][0]["local"] == "2026-01-01T09:30:00.000+01:00"
    assert ("settings",) in fake.calls


def test_the_name_reaches_the_hash(api, fake):
    resp = api.simulate_get("/v1/schedule", params={"schedule": "0 ~ * * * *", "name": "test_job"})
    assert resp.json["next"][0]["at"] == "2026-01-01T00:18:00.000Z"  # 858 % 60


@pytest.mark.parametrize("params, message", [
    ({"schedule": "0 0 0 32 * *"}, "day-of-month: 32 is out of range 1-31"),
    ({"schedule": "61 * * * *"}, "minute: 61 is out of range 0-59"),
    ({"schedule": "@daily", "timezone": "Nowhere/City"}, "unknown time zone"),
    ({"schedule": "@daily", "count": "101"}, "count: expected 1 to 100"),
    ({"schedule": "@daily", "count": "0"}, "count: expected 1 to 100"),
    ({"schedule": "@daily", "count": "five"}, "count: expected a whole number"),
    ({}, "schedule: the schedule to read"),
])
def test_a_bad_request_is_a_400_that_says_why(api, params, message):
    resp = api.simulate_get("/v1/schedule", params=params)
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("application/json")
    assert message in resp.json["error"]


def test_no_leader_for_the_default_zone_is_a_503(api, fake):
    fake.fail["settings"] = errors.Error.from_code("unavailable", "no leader")
    assert api.simulate_get("/v1/schedule", params={"schedule": "@daily"}).status_code == 503
    assert api.simulate_get("/v1/schedule", params={"schedule": "@daily", "timezone": "UTC"}).status_code == 200
