"""services/api/jobs.py and the job list conventions of dkron.py: list with Dkron's filters,
sort, slice and X-Total-Count; create-or-update; show; delete; run now (202 at once); toggle."""

import pytest

from common import errors, schedule
from common.loop import now_ms

from fakeclient import NOW, SHELL

HOUR_MS = 3_600_000


@pytest.fixture
def catalog(fake):
    """Five jobs that differ in every field the list filters and sorts on."""
    fake.add({"name": "backup", "displayname": "Nightly Backup", "schedule": "@daily",
              "metadata": {"team": "ops", "env": "prod"}}, status="success", success_count=9)
    fake.add({"name": "report", "displayname": "weekly report", "schedule": "@weekly",
              "metadata": {"team": "bi", "env": "prod"}}, status="failed", success_count=2, error_count=1)
    fake.add({"name": "cleanup", "displayname": "", "schedule": "@hourly", "disabled": True,
              "metadata": {"team": "ops"}}, success_count=5)
    fake.add({"name": "ping", "displayname": "health ping", "schedule": "@every 10s"}, status="running")
    fake.add({"name": "sync-backup", "displayname": "Sync", "schedule": "@every 1m",
              "metadata": {"team": "ops", "env": "dev"}}, status="success", success_count=1)
    return fake


def names(resp):
    return [j["name"] for j in resp.json]


def test_list_renders_dkron_jobs_with_next_and_total(api, fake):
    fake.add({"name": "ticker", "schedule": "@every 10s"})
    fake.add({"name": "off", "schedule": "@every 10s", "disabled": True})
    resp = api.simulate_get("/v1/jobs")
    assert resp.status_code == 200 and resp.headers["X-Total-Count"] == "2"
    ticker = next(j for j in resp.json if j["name"] == "ticker")
    assert ticker["id"] == "ticker" and ticker["executor"] == "shell" and ticker["status"] == ""
    assert schedule.parse_time(ticker["next"]) > NOW
    off = next(j for j in resp.json if j["name"] == "off")
    assert off["next"] == "0001-01-01T00:00:00Z"  # a disabled job never fires


def test_list_is_empty_array_when_no_jobs(api):
    resp = api.simulate_get("/v1/jobs")
    assert resp.json == [] and resp.headers["X-Total-Count"] == "0"


def test_default_order_is_by_name_ascending(api, catalog):
    assert names(api.simulate_get("/v1/jobs")) == ["backup", "cleanup", "ping", "report", "sync-backup"]


def test_metadata_filters_must_all_match_and_jobs_without_metadata_never_do(api, catalog):
    resp = api.simulate_get("/v1/jobs", query_string="metadata[team]=ops&metadata[env]=prod")
    assert names(resp) == ["backup"] and resp.headers["X-Total-Count"] == "1"
    assert names(api.simulate_get("/v1/jobs", query_string="metadata[team]=ops")) == [
        "backup", "cleanup", "sync-backup"]
    assert "ping" not in names(api.simulate_get("/v1/jobs", query_string="metadata[env]="))


def test_q_is_a_case_sensitive_substring_of_name_or_displayname(api, catalog):
    assert names(api.simulate_get("/v1/jobs", query_string="q=backup")) == ["backup", "sync-backup"]
    assert names(api.simulate_get("/v1/jobs", query_string="q=Backup")) == ["backup"]
    assert names(api.simulate_get("/v1/jobs", query_string="q=ping")) == ["ping"]
    assert names(api.simulate_get("/v1/jobs", query_string="q=health")) == ["ping"]


def test_status_filter_and_untriggered_for_never_ran(api, catalog):
    assert names(api.simulate_get("/v1/jobs", query_string="status=success")) == ["backup", "sync-backup"]
    assert names(api.simulate_get("/v1/jobs", query_string="status=untriggered")) == ["cleanup"]


def test_disabled_filter(api, catalog):
    assert names(api.simulate_get("/v1/jobs", query_string="disabled=true")) == ["cleanup"]
    assert "cleanup" not in names(api.simulate_get("/v1/jobs", query_string="disabled=false"))


def test_sort_and_order(api, catalog):
    got = api.simulate_get("/v1/jobs", query_string="_sort=success_count&_order=DESC")
    assert names(got) == ["backup", "cleanup", "report", "sync-backup", "ping"]
    got = api.simulate_get("/v1/jobs", query_string="_sort=displayname")
    assert names(got)[0] == "cleanup"  # "" first, then by code point
    assert names(api.simulate_get("/v1/jobs", query_string="_sort=id&_order=DESC"))[0] == "sync-backup"
    assert names(api.simulate_get("/v1/jobs", query_string="_sort=name&_order=asc"))[0] == "backup"


def test_a_sort_on_a_missing_value_puts_it_last(api, fake):
    fake.add({"name": "ran", "schedule": "@daily"}, last_success_at=1_700_000_000_000)
    fake.add({"name": "never", "schedule": "@daily"})
    assert names(api.simulate_get("/v1/jobs", query_string="_sort=last_success")) == ["ran", "never"]


def test_start_and_end_slice_after_filtering_and_total_counts_all_matches(api, catalog):
    resp = api.simulate_get("/v1/jobs", query_string="_start=1&_end=3")
    assert names(resp) == ["cleanup", "ping"] and resp.headers["X-Total-Count"] == "5"
    resp = api.simulate_get("/v1/jobs", query_string="metadata[team]=ops&_start=1&_end=99")
    assert names(resp) == ["cleanup", "sync-backup"] and resp.headers["X-Total-Count"] == "3"
    assert names(api.simulate_get("/v1/jobs", query_string="_start=9")) == []
    assert names(api.simulate_get("/v1/jobs", query_string="_start=3&_end=1")) == []


@pytest.mark.parametrize("query, named", [("_sort=owner", "_sort"), ("_start=-1", "_start"),
                                          ("_end=ten", "_end")])
def test_bad_list_parameters_are_a_400_that_names_them(api, catalog, query, named):
    resp = api.simulate_get("/v1/jobs", query_string=query)
    assert resp.status_code == 400 and named in resp.json["error"]


def test_stale_reads_are_passed_through(api, fake):
    api.simulate_get("/v1/jobs", query_string="stale")
    assert fake.calls == [("jobs", True)]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_create_passes_the_body_as_is_and_answers_201_with_the_stored_job(api, fake, method):
    body = {"name": "hello", "schedule": "@every 2s", "command": "legacy field", **SHELL}
    resp = api.simulate_request(method, "/v1/jobs", json=body)
    assert resp.status_code == 201
    assert fake.calls == [("settings",), ("put_job", body)]  # not paused, then stored
    assert resp.json["name"] == "hello" and resp.json["schedule"] == "@every 2s"
    assert resp.json["next"] != "0001-01-01T00:00:00Z"
    assert resp.headers["Location"] == "/v1/jobs/hello"
    assert "hello" in fake.stored


def test_update_answers_the_stored_state_not_the_request(api, fake):
    fake.add({"name": "hello", "schedule": "@hourly"}, success_count=7, status="success")
    resp = api.simulate_post("/v1/jobs", json={"name": "hello", "schedule": "@daily", "success_count": 0, **SHELL})
    assert resp.json["success_count"] == 7 and resp.json["status"] == "success"
    assert resp.json["schedule"] == "@daily"


def test_runoncreate_runs_after_storing(api, fake):
    resp = api.simulate_post("/v1/jobs", query_string="runoncreate", json={"name": "now", "schedule": "@daily", **SHELL})
    assert resp.status_code == 201
    assert [c[0] for c in fake.calls] == ["settings", "put_job", "run"] and fake.calls[2] == ("run", "now")


def test_runoncreate_failing_still_reports_the_stored_job(api, fake):
    fake.fail["run"] = errors.Conflict("no alive node offers executor 'shell'")
    resp = api.simulate_post("/v1/jobs?runoncreate=true", json={"name": "now", "schedule": "@daily", **SHELL})
    assert resp.status_code == 201 and "now" in fake.stored


def test_without_runoncreate_nothing_runs(api, fake):
    api.simulate_post("/v1/jobs", json={"name": "later", "schedule": "@daily", **SHELL})
    assert [c[0] for c in fake.calls] == ["settings", "put_job"]


@pytest.mark.parametrize("body, says", [
    (b"{not json", "Unable to parse payload: "),
    (b"", "Unable to parse payload: the body is empty"),
    (b"\xff\xfe", "Unable to parse payload: "),
    (b"x" * ((1 << 20) + 1), "Unable to parse payload: body over"),
])
def test_unparseable_bodies_are_a_plain_400_and_reach_nobody(api, fake, body, says):
    resp = api.simulate_post("/v1/jobs", body=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text.startswith(says)
    assert fake.calls == []


def test_the_servers_validation_message_is_the_400_body(api):
    resp = api.simulate_post("/v1/jobs", json={"name": "BAD NAME", "schedule": "@daily", **SHELL})
    assert resp.status_code == 400 and "illegal character" in resp.text
    resp = api.simulate_post("/v1/jobs", json=["not", "an", "object"])
    assert resp.status_code == 400 and "JSON object" in resp.text


def test_a_missing_parent_is_a_plain_404(api):
    resp = api.simulate_post("/v1/jobs", json={"name": "child", "parent_job": "nobody", **SHELL})
    assert resp.status_code == 404 and resp.text == "specified parent job not found"


def test_put_on_a_job_path_is_the_same_upsert_and_the_bodys_name_wins(api, fake):
    resp = api.simulate_put("/v1/jobs/ignored", json={"name": "real", "schedule": "@daily", **SHELL})
    assert resp.status_code == 201 and resp.json["name"] == "real"
    assert "real" in fake.stored and "ignored" not in fake.stored


def test_show_one_job(api, fake):
    fake.add({"name": "hello", "schedule": "@hourly", "tags": {"role": "web:1"}})
    resp = api.simulate_get("/v1/jobs/hello")
    assert resp.status_code == 200 and resp.json["name"] == "hello" and resp.json["tags"] == {"role": "web:1"}
    missing = api.simulate_get("/v1/jobs/nope")
    assert missing.status_code == 404 and "nope" in missing.json["error"]


def test_delete_answers_the_deleted_job(api, fake):
    fake.add({"name": "old", "schedule": "@hourly"})
    resp = api.simulate_delete("/v1/jobs/old")
    assert resp.status_code == 200 and resp.json["name"] == "old"
    assert "old" not in fake.stored
    assert api.simulate_delete("/v1/jobs/old").status_code == 404


def test_delete_refused_by_the_server_is_a_409(api, fake):
    fake.add({"name": "parent", "schedule": "@hourly"})
    fake.fail["delete_job"] = errors.Conflict("job 'parent' has dependent jobs: child")
    resp = api.simulate_delete("/v1/jobs/parent")
    assert resp.status_code == 409 and "dependent" in resp.json["error"]


@pytest.mark.parametrize("path", ["/v1/jobs/hello", "/v1/jobs/hello/run"])
def test_run_now_answers_202_with_the_job_once_claimed(api, fake, path):
    fake.add({"name": "hello", "schedule": "@hourly"})
    resp = api.simulate_post(path)
    assert resp.status_code == 202
    assert resp.json["name"] == "hello"
    assert fake.calls == [("run", "hello")]  # the job shown is the one the run read: no second read
    assert resp.headers["Location"] == "/v1/jobs/hello"


@pytest.mark.parametrize("path", ["/v1/jobs/nope", "/v1/jobs/nope/run"])
def test_run_of_a_missing_job_is_a_404_and_runs_nothing(api, fake, path):
    assert api.simulate_post(path).status_code == 404
    assert [c[0] for c in fake.calls] == ["run"]  # the job is read once, by the run (the dispatcher)


def test_run_refused_by_the_dispatcher_keeps_its_status(api, fake):
    fake.add({"name": "hello", "schedule": "@hourly"})
    fake.fail["run"] = errors.Conflict("no alive node offers executor 'shell' with tags {}")
    resp = api.simulate_post("/v1/jobs/hello/run")
    assert resp.status_code == 409 and resp.headers["Content-Type"].startswith("application/json")


def test_the_run_route_takes_only_post(api, fake):
    fake.add({"name": "hello", "schedule": "@hourly"})
    assert api.simulate_get("/v1/jobs/hello/run").status_code == 405
    assert api.simulate_delete("/v1/jobs/hello/run").status_code == 405


def test_toggle_flips_disabled_and_keeps_the_rest(api, fake):
    fake.add({"name": "hello", "schedule": "@hourly", "metadata": {"a": "b"}})
    resp = api.simulate_post("/v1/jobs/hello/toggle")
    assert resp.status_code == 200 and resp.json["disabled"] is True
    assert fake.stored["hello"]["metadata"] == {"a": "b"} and fake.stored["hello"]["disabled"] is True
    assert api.simulate_post("/v1/jobs/hello/toggle").json["disabled"] is False


def test_next_is_the_next_fire_after_now(api, fake):
    fake.add({"name": "hourly", "schedule": "@hourly"})
    before = now_ms()
    at = schedule.parse_time(api.simulate_get("/v1/jobs/hourly").json["next"])
    assert before < at <= before + HOUR_MS and at % HOUR_MS == 0


def test_a_plain_page_reads_only_that_page_from_the_state(api, catalog):
    resp = api.simulate_get("/v1/jobs", query_string="_start=1&_end=3")
    assert names(resp) == ["cleanup", "ping"] and resp.headers["X-Total-Count"] == "5"
    assert [c[0] for c in catalog.calls] == ["job_page"]  # not every job: 10,000 of them cost seconds


def test_a_filtered_or_reordered_page_still_reads_every_job(api, catalog):
    resp = api.simulate_get("/v1/jobs", query_string="_start=0&_end=2&metadata[team]=ops")
    assert names(resp) == ["backup", "cleanup"] and resp.headers["X-Total-Count"] == "3"
    resp = api.simulate_get("/v1/jobs", query_string="_start=0&_end=2&_order=DESC")
    assert names(resp) == ["sync-backup", "report"] and resp.headers["X-Total-Count"] == "5"
    assert "job_page" not in [c[0] for c in catalog.calls]
