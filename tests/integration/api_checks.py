"""What each API operation must do on a real node, one check per (method, path) registered
with @covers; test_api_spec.py runs them, one test per operation of Dkron's spec and of ours.
Every answer is checked against our spec's schema for its status."""

import json
import time
from pathlib import Path

import jsonschema
import requests
import yaml

from common.schedule import parse_time

OURS = yaml.safe_load((Path(__file__).resolve().parents[2] / "services" / "api" / "openapi.yaml").read_text())
CHECKS = {}


def covers(method, path):
    def register(fn):
        CHECKS[(method, path)] = fn
        return fn
    return register


class Api:
    """Real HTTP to the node; every answer is checked against our spec for its status."""

    def __init__(self, node):
        self.node, self.base = node, f"{node.api()}/v1"

    def call(self, method, template, status, *, path=None, **kw):
        resp = requests.request(method, self.base + (path or template), timeout=15, **kw)
        assert resp.status_code == status, (method, path or template, resp.status_code, resp.text[:500])
        assert resp.headers["X-Whom"] == "s1"
        answer = OURS["paths"][template][method.lower()]["responses"].get(str(status))
        assert answer is not None, f"{method} {template} answered {status}, which our spec does not list"
        content = answer.get("content") or {}
        kind = resp.headers.get("Content-Type", "").split(";")[0]
        if content:
            assert kind in content, (method, template, status, kind, list(content))
        if kind == "application/json" and "application/json" in content:
            schema = {"$ref": "#" + "/".join(["", "paths", template.replace("/", "~1"), method.lower(), "responses",
                                             str(status), "content", "application~1json", "schema"])}
            validator = jsonschema.Draft202012Validator({**OURS, **schema})
            errors = sorted(validator.iter_errors(resp.json()), key=str)
            assert not errors, f"{method} {template} {status}: {errors[0].message} at {list(errors[0].path)}"
        return resp

    def job(self, name, command="echo hi", **extra):
        body = {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": {"command": command},
                **extra}
        return self.call("POST", "/jobs", 201, json=body).json()

    def finished(self, name, count=1):
        def done():
            got = requests.get(f"{self.base}/jobs/{name}/executions", timeout=10).json()
            ended = [x for x in got if x["finished_at"] != "0001-01-01T00:00:00Z"]
            return ended if len(ended) >= count else None
        return wait(done, f"{count} finished executions of {name}")

    def running(self, name):
        return wait(lambda: [x for x in requests.get(f"{self.base}/busy", timeout=10).json()
                             if x["job_name"] == name and x["status"] == "running"], f"{name} running")


def wait(check, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


# -- the node and the cluster -------------------------------------------------------------------


@covers("GET", "/")
def check_status(api):
    doc = api.call("GET", "/", 200).json()
    assert doc["agent"]["name"] == "s1" and doc["serf"]["leader"] == "s1" and doc["tags"]["server"] == "true"
    assert api.call("GET", "/", 200, path="/?pretty").text.startswith("{\n")


@covers("GET", "/members")
def check_members(api):
    resp = api.call("GET", "/members", 200)
    me = resp.json()[0]
    assert resp.headers["X-Total-Count"] == "1"
    assert (me["Name"], me["Status"], me["statusText"], me["id"]) == ("s1", 1, "alive", "s1")


@covers("GET", "/leader")
def check_leader(api):
    leader = api.call("GET", "/leader", 200).json()
    assert leader["Name"] == "s1" and "statusText" not in leader


@covers("GET", "/isleader")
def check_isleader(api):
    assert api.call("GET", "/isleader", 200).json() == "I am a leader"


@covers("POST", "/leave")
def check_leave(api):
    members = api.call("POST", "/leave", 200).json()
    assert [m["Name"] for m in members] == ["s1"]


@covers("GET", "/busy")
def check_busy(api):
    api.job("spec-busy", "sleep 30")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-busy")
    running = api.running("spec-busy")
    resp = api.call("GET", "/busy", 200)
    assert resp.headers["X-Total-Count"] == str(len(resp.json()))
    assert running[0]["node_name"] == "s1" and running[0]["finished_at"] == "0001-01-01T00:00:00Z"
    api.call("POST", "/jobs/{job_name}/kill", 202, path="/jobs/spec-busy/kill")


@covers("GET", "/pause")
def check_pause_status(api):
    assert api.call("GET", "/pause", 200).json() == {"paused": False}


@covers("POST", "/pause")
def check_pause(api):
    assert api.call("POST", "/pause", 200).json() == {"paused": True}
    try:
        assert api.call("GET", "/pause", 200).json() == {"paused": True}
        body = {"name": "spec-paused", "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}
        refused = api.call("POST", "/jobs", 503, json=body)
        assert "paused" in refused.text and refused.headers["Content-Type"].startswith("text/plain")
        api.call("GET", "/jobs/{job_name}", 404, path="/jobs/spec-paused")
    finally:
        api.call("POST", "/unpause", 200)


@covers("POST", "/unpause")
def check_unpause(api):
    api.call("POST", "/pause", 200)
    assert api.call("POST", "/unpause", 200).json() == {"paused": False}
    api.job("spec-unpaused")


@covers("GET", "/settings")
def check_settings(api):
    settings = api.call("GET", "/settings", 200).json()
    assert settings["untagged_jobs"] in ("one", "all") and "default_timezone" in settings


@covers("GET", "/audit")
def check_audit(api):
    """With the ACL off every write is anonymous's; the newest comes first, and pages go back."""
    api.call("PUT", "/settings", 200, json={"default_timezone": ""})
    api.call("PUT", "/settings", 200, json={"untagged_jobs": "one"})
    entries = api.call("GET", "/audit", 200, path="/audit?limit=2").json()
    assert entries[0]["op"] == "settings.put" and entries[0]["target"] == "untagged_jobs"
    assert entries[0]["who"] == "anonymous" and entries[0]["change"] == {"value": "one"}
    older = api.call("GET", "/audit", 200, path=f"/audit?before={entries[0]['seq']}&limit=1").json()
    assert older[0]["seq"] < entries[0]["seq"]
    api.call("GET", "/audit", 400, path="/audit?limit=0")


@covers("PUT", "/settings")
def check_put_settings(api):
    assert api.call("PUT", "/settings", 200, json={"default_timezone": "Europe/Berlin"}).json()[
        "default_timezone"] == "Europe/Berlin"
    api.call("PUT", "/settings", 200, json={"default_timezone": ""})
    assert "no_such" in api.call("PUT", "/settings", 400, json={"no_such": "x"}).json()["error"]


@covers("GET", "/schedule")
def check_schedule_preview(api):
    doc = api.call("GET", "/schedule", 200, params={"schedule": "*/15 * * * *", "timezone": "America/New_York",
                                                    "count": 7}).json()
    assert doc["description"] == "Every 15 minutes (America/New_York time)" and len(doc["next"]) == 7
    first, second = (parse_time(t["at"]) for t in doc["next"][:2])
    assert second - first == 15 * 60_000 and doc["next"][0]["local"].endswith(("-04:00", "-05:00"))
    bad = api.call("GET", "/schedule", 400, params={"schedule": "0 0 0 * * 1#6"}).json()
    assert bad["error"] == "can't parse job schedule '0 0 0 * * 1#6': day-of-week: '1#6': n#k takes a week k from 1 to 5"


@covers("GET", "/openapi.yaml")
def check_openapi(api):
    resp = api.call("GET", "/openapi.yaml", 200)
    assert resp.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(resp.text)["paths"]["/jobs"]


# -- jobs ---------------------------------------------------------------------------------------


@covers("GET", "/jobs")
def check_list(api):
    api.job("spec-list-a", metadata={"team": "ops"})
    api.job("spec-list-b", displayname="Bee")
    resp = api.call("GET", "/jobs", 200)
    assert {"spec-list-a", "spec-list-b"} <= {j["name"] for j in resp.json()}
    assert resp.headers["X-Total-Count"] == str(len(resp.json()))
    assert [j["name"] for j in api.call("GET", "/jobs", 200, path="/jobs?q=spec-list").json()] == ["spec-list-a", "spec-list-b"]
    assert [j["name"] for j in api.call("GET", "/jobs", 200, path="/jobs?metadata[team]=ops").json()] == ["spec-list-a"]
    page = api.call("GET", "/jobs", 200, path="/jobs?q=spec-list&_sort=name&_order=DESC&_start=0&_end=1")
    assert [j["name"] for j in page.json()] == ["spec-list-b"] and page.headers["X-Total-Count"] == "2"
    assert "_sort" in api.call("GET", "/jobs", 400, path="/jobs?_sort=nope").json()["error"]


@covers("POST", "/jobs")
def check_create(api):
    resp = api.call("POST", "/jobs", 201, json={"name": "spec-create", "schedule": "@every 1h", "executor": "shell",
                                                "executor_config": {"command": "echo created"}})
    assert resp.headers["Location"] == "/v1/jobs/spec-create" and resp.json()["next"] != "0001-01-01T00:00:00Z"
    bad = api.call("POST", "/jobs", 400, data="{not json", headers={"Content-Type": "application/json"})
    assert bad.text.startswith("Unable to parse payload")
    bad = api.call("POST", "/jobs", 400, json={"name": "Bad Name", "schedule": "@daily", "executor": "shell",
                                               "executor_config": {"command": "true"}})
    assert "illegal character" in bad.text
    orphan = api.call("POST", "/jobs", 404, json={"name": "spec-orphan", "parent_job": "nobody", "executor": "shell",
                                                  "executor_config": {"command": "true"}})
    assert "parent" in orphan.text
    api.call("POST", "/jobs", 201, path="/jobs?runoncreate", json={
        "name": "spec-runoncreate", "schedule": "@manually", "executor": "shell", "executor_config": {"command": "echo now"}})
    assert api.finished("spec-runoncreate")[0]["output"] == "now\n"


@covers("PATCH", "/jobs")
def check_patch(api):
    api.job("spec-patch")
    body = {"name": "spec-patch", "schedule": "@daily", "executor": "shell", "executor_config": {"command": "true"}}
    assert api.call("PATCH", "/jobs", 201, json=body).json()["schedule"] == "@daily"


@covers("PUT", "/jobs/{job_name}")
def check_put(api):
    body = {"name": "spec-put", "schedule": "@hourly", "executor": "shell", "executor_config": {"command": "true"}}
    assert api.call("PUT", "/jobs/{job_name}", 201, path="/jobs/spec-put", json=body).json()["schedule"] == "@hourly"


@covers("GET", "/jobs/{job_name}")
def check_show(api):
    api.job("spec-show", displayname="Show me")
    assert api.call("GET", "/jobs/{job_name}", 200, path="/jobs/spec-show").json()["displayname"] == "Show me"
    assert "not found" in api.call("GET", "/jobs/{job_name}", 404, path="/jobs/spec-nobody").json()["error"]


@covers("POST", "/jobs/{job_name}")
def check_run(api):
    api.job("spec-run", "echo ran")
    assert api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-run").json()["name"] == "spec-run"
    assert api.finished("spec-run")[0]["output"] == "ran\n"
    api.call("POST", "/jobs/{job_name}", 404, path="/jobs/spec-nobody")


@covers("POST", "/jobs/{job_name}/run")
def check_run_alias(api):
    api.job("spec-run-alias", "echo alias")
    api.call("POST", "/jobs/{job_name}/run", 202, path="/jobs/spec-run-alias/run")
    assert api.finished("spec-run-alias")[0]["output"] == "alias\n"


@covers("DELETE", "/jobs/{job_name}")
def check_delete(api):
    api.job("spec-delete")
    assert api.call("DELETE", "/jobs/{job_name}", 200, path="/jobs/spec-delete").json()["name"] == "spec-delete"
    api.call("GET", "/jobs/{job_name}", 404, path="/jobs/spec-delete")
    api.call("DELETE", "/jobs/{job_name}", 404, path="/jobs/spec-delete")


@covers("POST", "/jobs/{job_name}/toggle")
def check_toggle(api):
    api.job("spec-toggle")
    assert api.call("POST", "/jobs/{job_name}/toggle", 200, path="/jobs/spec-toggle/toggle").json()["disabled"] is True
    assert api.call("POST", "/jobs/{job_name}/toggle", 200, path="/jobs/spec-toggle/toggle").json()["disabled"] is False
    api.call("POST", "/jobs/{job_name}/toggle", 404, path="/jobs/spec-nobody/toggle")


@covers("POST", "/restore")
def check_restore(api):
    jobs = [{"name": "spec-child", "parent_job": "spec-parent", "executor": "shell", "executor_config": {"command": "true"}},
            {"name": "spec-parent", "schedule": "@daily", "executor": "shell", "executor_config": {"command": "true"}}]
    done = api.call("POST", "/restore", 200, files={"file": ("jobs.json", json.dumps(jobs))}).json()
    assert done == ["success create spec-parent", "success create spec-child"]  # parents first
    child = api.call("GET", "/jobs/{job_name}", 200, path="/jobs/spec-child").json()
    assert child["parent_job"] == "spec-parent"
    api.call("POST", "/restore", 404, files={"other": ("x.json", "[]")})
    api.call("POST", "/restore", 400, files={"file": ("x.json", "{not json")})


# -- executions ---------------------------------------------------------------------------------


@covers("GET", "/jobs/{job_name}/executions")
def check_executions(api):
    api.job("spec-execs", "echo listed")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-execs")
    api.finished("spec-execs")
    resp = api.call("GET", "/jobs/{job_name}/executions", 200, path="/jobs/spec-execs/executions")
    assert resp.headers["X-Total-Count"] == "1" and resp.json()[0]["output"] == "listed\n"
    cut = api.call("GET", "/jobs/{job_name}/executions", 200, path="/jobs/spec-execs/executions?output_size_limit=2")
    assert cut.json()[0]["output"] == "d\n" and cut.json()[0]["output_truncated"] is True
    api.call("GET", "/jobs/{job_name}/executions", 404, path="/jobs/spec-nobody/executions")


@covers("DELETE", "/jobs/{job_name}/executions")
def check_delete_executions(api):
    api.job("spec-clear")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-clear")
    api.finished("spec-clear")
    job = api.call("DELETE", "/jobs/{job_name}/executions", 200, path="/jobs/spec-clear/executions").json()
    assert (job["success_count"], job["error_count"], job["last_success"]) == (0, 0, None)
    assert api.call("GET", "/jobs/{job_name}/executions", 200, path="/jobs/spec-clear/executions").json() == []
    api.call("DELETE", "/jobs/{job_name}/executions", 404, path="/jobs/spec-nobody/executions")


@covers("GET", "/jobs/{job_name}/executions/{execution}")
def check_execution(api):
    api.job("spec-one", "echo one")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-one")
    ran = api.finished("spec-one")[0]
    got = api.call("GET", "/jobs/{job_name}/executions/{execution}", 200, path=f"/jobs/spec-one/executions/{ran['id']}")
    assert got.json()["output"] == "one\n" and got.json()["success"] is True
    api.call("GET", "/jobs/{job_name}/executions/{execution}", 404, path="/jobs/spec-one/executions/1-nowhere")


@covers("POST", "/jobs/{job_name}/kill")
def check_kill_job(api):
    api.job("spec-kill-all", "sleep 30")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-kill-all")
    running = api.running("spec-kill-all")
    killed = api.call("POST", "/jobs/{job_name}/kill", 202, path="/jobs/spec-kill-all/kill").json()["killed"]
    assert killed == [running[0]["id"]]
    assert api.finished("spec-kill-all")[0]["status"] == "killed"


@covers("POST", "/jobs/{job_name}/executions/{execution}/kill")
def check_kill_execution(api):
    api.job("spec-kill-one", "sleep 30")
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-kill-one")
    execution_id = api.running("spec-kill-one")[0]["id"]
    template = "/jobs/{job_name}/executions/{execution}/kill"
    assert api.call("POST", template, 202, path=f"/jobs/spec-kill-one/executions/{execution_id}/kill").json() == {
        "killed": [execution_id]}
    ended = api.finished("spec-kill-one")[0]
    assert (ended["status"], ended["success"]) == ("killed", False)


@covers("GET", "/jobs/{job_name}/executions/{execution}/output")
def check_output_stream(api):
    api.job("spec-stream", executor_config={"shell": "true", "command": "for i in 1 2 3 4; do echo line$i; sleep 0.5; done"})
    api.call("POST", "/jobs/{job_name}", 202, path="/jobs/spec-stream")
    execution_id = api.running("spec-stream")[0]["id"]
    template = "/jobs/{job_name}/executions/{execution}/output"
    path = f"/jobs/spec-stream/executions/{execution_id}/output"
    events, first_at = [], None
    with api.call("GET", template, 200, path=path, stream=True) as resp:
        for block in resp.iter_lines(delimiter=b"\n\n"):
            events += parse_events(block.decode())
            if events and first_at is None:
                first_at = time.time_ns() // 1_000_000
            if events and events[-1]["event"] == "end":
                break
    assert output_of(events) == "line1\nline2\nline3\nline4\n"
    assert json.loads(events[-1]["data"])["status"] == "success"
    assert [e["id"] for e in events if e["event"] == "output"] == ["6", "12", "18", "24"]  # byte offsets
    finished_at = parse_time(api.finished("spec-stream")[0]["finished_at"])
    assert first_at < finished_at, "the first line arrived only after the run ended"
    # Reconnecting with the last event id seen resumes after it.
    resumed = parse_events(api.call("GET", template, 200, path=path, headers={"Last-Event-ID": "12"}).text)
    assert output_of(resumed) == "line3\nline4\n" and resumed[-1]["event"] == "end"
    api.call("GET", template, 400, path=path, headers={"Last-Event-ID": "nope"})
    api.call("GET", template, 404, path="/jobs/spec-stream/executions/1-nowhere/output")


def parse_events(text):
    found = []
    for block in text.split("\n\n"):
        event = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if event.get("event"):
            found.append(event)
    return found


def output_of(events):
    return "".join(json.loads(e["data"]) for e in events if e["event"] == "output")
