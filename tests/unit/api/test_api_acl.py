"""services/api/access.py over a fake node whose ACL is on: 401 without a token or with an
unknown or expired one, 403 for a token whose policies do not allow the route, a job write
judged by the body's job (create or update, and su), lists and their count filtered, and the
writes made for the token it acts for. A [security] token is a management token once the ACL
is on."""

import json

import pytest

from common import acl
from common.loop import now_ms

RULES = {"/v1/jobs": ["list"], "/v1/jobs/team-a-*": ["create", "read", "update", "list"]}


@pytest.fixture
def acl_on(fake):
    fake.view = acl.View(True, {
        "a": {"accessor": "a", "type": "client", "policies": ["team-a"], "hash": acl.secret_hash("a" * 20)},
        "old": {"accessor": "old", "type": "client", "policies": ["team-a"], "hash": acl.secret_hash("o" * 20),
                "expires_at": now_ms() - 1},
        "m": {"accessor": "m", "type": "management", "policies": [], "hash": acl.secret_hash("m" * 20)}},
        {"team-a": RULES})
    for name in ("team-a-web", "team-b-db"):
        fake.add({"name": name, "schedule": "@every 1m"})
    return fake


def get(api, path, secret=None, **kw):
    return api.simulate_get(path, headers={"X-Dkron-Token": secret} if secret else {}, **kw)


def post(api, path, secret, body):
    return api.simulate_post(path, headers={"X-Dkron-Token": secret}, json=body)


def job(name, **config):
    return {"name": name, "schedule": "@every 1m", "executor": "shell", "executor_config": {"command": "x", **config}}


def test_no_token_unknown_or_expired_is_401_and_a_token_without_the_right_403(api, acl_on):
    assert get(api, "/v1/jobs").status_code == 401
    assert get(api, "/v1/jobs", "x" * 20).status_code == 401
    assert get(api, "/v1/jobs", "o" * 20).status_code == 401
    assert get(api, "/v1/jobs/team-b-db", "a" * 20).status_code == 403
    assert get(api, "/v1/jobs/team-a-web", "a" * 20).status_code == 200
    assert api.simulate_delete("/v1/jobs/team-a-web", headers={"X-Dkron-Token": "a" * 20}).status_code == 403
    assert get(api, "/health").status_code == 200 and get(api, "/ui/").status_code == 200


def test_lists_and_their_count_cover_only_what_the_token_may_read(api, acl_on):
    for query in ("", "?_start=0&_end=10"):
        resp = get(api, "/v1/jobs" + query, "a" * 20)
        assert [j["name"] for j in resp.json] == ["team-a-web"] and resp.headers["X-Total-Count"] == "1"
    assert [j["name"] for j in get(api, "/v1/jobs", "m" * 20).json] == ["team-a-web", "team-b-db"]


def test_a_job_write_is_judged_by_the_job_in_its_body_and_made_for_the_token(api, acl_on):
    assert post(api, "/v1/jobs", "a" * 20, job("team-b-new")).status_code == 403
    assert post(api, "/v1/jobs", "a" * 20, job("team-a-new")).status_code == 201
    assert acl_on.acting == "a"
    refused = post(api, "/v1/jobs", "a" * 20, job("team-a-new", su="root"))
    assert refused.status_code == 403 and "/v1/su/root" in refused.text
    assert "team-b-new" not in acl_on.stored


def test_secret_values_are_for_a_management_token_only(api, acl_on):
    assert get(api, "/v1/jobs/team-a-web", "a" * 20, params={"secrets": "true"}).status_code == 403


def test_the_security_token_is_a_management_token_once_the_acl_is_on(app_with, acl_on):
    api = app_with(token="s3cret-legacy-token")
    assert get(api, "/v1/jobs/team-b-db", "s3cret-legacy-token").status_code == 200
    assert get(api, "/v1/jobs/team-b-db", "wrong").status_code == 401


def test_token_self_tells_the_ui_what_the_token_may_do(api, acl_on):
    doc = get(api, "/v1/acl/token/self", "a" * 20).json
    assert doc["AccessorID"] == "a" and doc["Rules"] == {"team-a": RULES}
    assert get(api, "/v1/acl/token/self").status_code == 401  # no anonymous policy here
    acl_on.view.policies[acl.ANONYMOUS] = {"/v1/jobs": ["list"]}
    assert get(api, "/v1/acl/token/self").json["Rules"] == {"anonymous": {"/v1/jobs": ["list"]}}
    assert json.loads(json.dumps(get(api, "/v1/acl/token/self", "m" * 20).json))["Type"] == "management"
