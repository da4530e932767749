"""services/api/hooks.py: X-Whom on every response, CORS for the listed origins only, the
X-Dkron-Token check, and the mapping of the client library's errors to HTTP statuses and
bodies (JSON; text on job writes)."""

import json

import pytest

from common import errors, wire


@pytest.mark.parametrize("path", ["/health", "/v1", "/v1/jobs", "/v1/jobs/missing", "/no/such/route"])
def test_every_response_names_the_node_and_allows_a_listed_origin(app_with, path):
    api = app_with(cors_origins=["https://ops.example"])
    resp = api.simulate_get(path, headers={"Origin": "https://ops.example"})
    assert resp.headers["X-Whom"] == "s1"
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    assert "X-Total-Count" in resp.headers["Access-Control-Expose-Headers"]
    assert "*" in resp.headers["Access-Control-Expose-Headers"]
    assert "Origin" in resp.headers["Vary"]


@pytest.mark.parametrize("origins", [[], ["https://ops.example"]])
def test_no_cors_for_an_origin_not_listed(app_with, origins):
    api = app_with(cors_origins=origins)
    for resp in (api.simulate_get("/v1/jobs", headers={"Origin": "https://evil.example"}),
                 api.simulate_options("/v1/jobs", headers={"Origin": "https://evil.example",
                                                           "Access-Control-Request-Method": "POST"})):
        assert resp.headers["X-Whom"] == "s1"
        assert not any(h.lower().startswith("access-control-") for h in resp.headers)


def test_a_body_that_is_not_declared_json_is_refused_unread(api, fake):
    """What a page of another site may send without a preflight: text/plain, forms, no type."""
    body = '{"name": "x", "schedule": "@every 1m", "executor": "shell", "executor_config": {"command": "id"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        resp = api.simulate_post("/v1/jobs", body=body, headers=headers)
        assert resp.status_code == 415 and "application/json" in resp.text, content_type
    assert fake.calls == []
    assert api.simulate_post("/v1/jobs", body=body, headers={"Content-Type": "application/json; charset=utf-8"}
                             ).status_code == 201


def test_a_write_from_a_page_of_another_origin_is_refused_whatever_its_body(app_with, fake):
    """A form needs no preflight: /v1/restore takes multipart, so the Origin itself is checked."""
    api = app_with(cors_origins=["https://ops.example"])
    form = {"body": b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n[]\r\n--x--\r\n",
            "headers": {"Content-Type": "multipart/form-data; boundary=x"}}
    refused = api.simulate_post("/v1/restore", **{**form, "headers": {**form["headers"], "Origin": "https://evil.example"}})
    assert refused.status_code == 403 and "evil.example" in refused.text
    assert api.simulate_post("/v1/jobs/x/run", headers={"Origin": "https://evil.example"}).status_code == 403
    assert fake.calls == []
    assert api.simulate_post("/v1/restore", **{**form, "headers": {**form["headers"], "Origin": "https://ops.example"}}
                             ).status_code == 200
    assert api.simulate_post("/v1/restore", **form).status_code == 200  # no Origin: not a browser
    assert api.simulate_get("/v1/jobs", headers={"Origin": "https://evil.example"}).status_code == 200


def test_preflight_answers_with_the_cors_headers_and_runs_nothing(app_with, fake):
    api = app_with(cors_origins=["http://ui.example"])
    resp = api.simulate_options("/v1/jobs", headers={
        "Origin": "http://ui.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, X-Dkron-Token"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Dkron-Token"
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        assert method in resp.headers["Access-Control-Allow-Methods"]
    assert fake.calls == []


def test_a_set_token_is_required_on_every_route_but_health(app_with, fake):
    api = app_with(token="s3cret")
    missing = api.simulate_get("/v1/jobs")
    assert missing.status_code == 401
    assert "X-Dkron-Token" in missing.json["error"]
    assert missing.headers["X-Whom"] == "s1"
    wrong = api.simulate_post("/v1/jobs/x/run", headers={"X-Dkron-Token": "guess"})
    assert wrong.status_code == 401 and wrong.json == {"error": "wrong X-Dkron-Token"}
    assert fake.calls == []  # refused before any call reaches the node
    assert api.simulate_get("/v1/jobs", headers={"X-Dkron-Token": "s3cret"}).status_code == 200
    assert api.simulate_get("/health").status_code == 200


def test_the_token_may_come_as_a_bearer_token_as_dkrons_ui_sends_it(app_with):
    api = app_with(token="s3cret")
    assert api.simulate_get("/v1/members", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert api.simulate_get("/v1/members", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.simulate_get("/v1/members", headers={"Authorization": "Basic s3cret"}).status_code == 401


def test_preflight_needs_no_token(app_with):
    assert app_with(token="s3cret").simulate_options("/v1/jobs").status_code == 200


def test_no_token_configured_means_no_check(api):
    assert api.simulate_get("/v1/jobs", headers={"X-Dkron-Token": "anything"}).status_code == 200


@pytest.mark.parametrize("err, status", [
    (errors.BadRequest("bad"), 400), (errors.NotFound("gone"), 404), (errors.Conflict("busy"), 409),
    (errors.Unavailable("nobody answered"), 503), (errors.NotLeader("no leader"), 503),
    (errors.Timeout("slow"), 503), (errors.Error.from_code("internal", "boom"), 500),
])
def test_client_errors_map_to_statuses_with_a_json_error(api, fake, err, status):
    fake.fail["members"] = err
    resp = api.simulate_get("/v1/members")
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json == {"error": str(err)}


def test_not_leader_names_the_leader_when_known(api, fake):
    fake.fail["members"] = errors.NotLeader("ask another", leader="s2")
    assert api.simulate_get("/v1/members").json == {"error": "ask another", "leader": "s2"}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("err, status", [
    (errors.BadRequest("Job validation failed: name cannot be empty."), 400),
    (errors.NotFound("specified parent job not found"), 404),
    (errors.Unavailable("no reply"), 503),
])
def test_job_write_errors_are_plain_text(api, fake, method, err, status):
    fake.fail["put_job"] = err
    resp = api.simulate_request(method, "/v1/jobs", json={"name": "x"})
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text == str(err)


def test_an_undecodable_reply_is_a_502(api, fake):
    fake.fail["jobs"] = wire.WireError("format", "not msgpack")
    resp = api.simulate_get("/v1/jobs")
    assert resp.status_code == 502 and "not msgpack" in resp.json["error"]


def test_an_unexpected_exception_is_a_json_500(api, fake):
    fake.fail["busy"] = KeyError("group")
    resp = api.simulate_get("/v1/busy")
    assert resp.status_code == 500 and resp.json == {"error": "internal error: KeyError"}
    assert resp.headers["X-Whom"] == "s1"


def test_unknown_routes_and_methods_answer_json(api):
    assert api.simulate_get("/v1/nothing").json == {"error": "404 Not Found"}
    wrong = api.simulate_delete("/v1/members")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert "error" in wrong.json


def test_pretty_indents_with_any_value_or_none(api, fake):
    fake.add({"name": "a", "schedule": "@hourly"})
    compact = api.simulate_get("/v1/jobs/a")
    assert "\n" not in compact.text
    for query in ("pretty", "pretty=true", "pretty=0"):
        pretty = api.simulate_get("/v1/jobs/a", query_string=query)
        assert pretty.text.startswith("{\n  ") and json.loads(pretty.text) == compact.json
