"""The api's routes beyond the first slice, over the fake client: pause/unpause and settings,
restore (parents first, the whole file checked), kill, deleting executions, the output event
stream with Last-Event-ID, the UI's files, the / redirect and /v1/openapi.yaml."""

import json

import pytest

from common import errors

from fakeclient import SHELL, execution


def multipart(name, data, filename="jobs.json"):
    boundary = "pykronboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/json\r\n\r\n{data}\r\n--{boundary}--\r\n")
    return {"body": body.encode(), "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


# -- pause and settings -------------------------------------------------------------------------


def test_pause_refuses_job_writes_with_dkrons_503_until_unpaused(api, fake):
    assert api.simulate_get("/v1/pause").json == {"paused": False}
    assert api.simulate_post("/v1/pause").json == {"paused": True}
    assert fake.settings_map["paused"] == "true" and api.simulate_get("/v1/pause").json == {"paused": True}
    for method, path in (("POST", "/v1/jobs"), ("PATCH", "/v1/jobs"), ("PUT", "/v1/jobs/held")):
        resp = api.simulate_request(method, path, json={"name": "held", "schedule": "@daily", **SHELL})
        assert resp.status_code == 503 and resp.headers["Content-Type"].startswith("text/plain")
        assert "paused" in resp.text
    assert "held" not in fake.stored
    fake.add({"name": "kept", "schedule": "@daily"})
    assert api.simulate_post("/v1/jobs/kept/toggle").status_code == 200  # as Dkron: toggle is not held
    assert api.simulate_post("/v1/unpause").json == {"paused": False}
    assert api.simulate_post("/v1/jobs", json={"name": "held", "schedule": "@daily", **SHELL}).status_code == 201


def test_settings_read_and_change_with_json_spellings(api, fake):
    assert api.simulate_get("/v1/settings").json["untagged_jobs"] == "one"
    resp = api.simulate_put("/v1/settings", json={"untagged_jobs": "all", "paused": False})
    assert resp.status_code == 200 and resp.json["untagged_jobs"] == "all" and resp.json["paused"] == "false"
    assert ("put_setting", "paused", "false") in fake.calls


@pytest.mark.parametrize("body, says", [
    ([], "JSON object"), ({}, "JSON object"), ({"untagged_jobs": ["all"]}, "expected a string"),
    ({"nope": "x"}, "unknown setting")])
def test_bad_settings_are_a_json_400(api, body, says):
    resp = api.simulate_put("/v1/settings", json=body)
    assert resp.status_code == 400 and says in resp.json["error"]


# -- restore ------------------------------------------------------------------------------------


def test_restore_puts_parents_before_children(api, fake):
    jobs = [{"name": "child", "parent_job": "parent", **SHELL}, {"name": "grandchild", "parent_job": "child", **SHELL},
            {"name": "parent", "schedule": "@daily", **SHELL}]
    resp = api.simulate_post("/v1/restore", **multipart("file", json.dumps(jobs)))
    assert resp.status_code == 200
    assert resp.json == ["success create parent", "success create child", "success create grandchild"]
    assert [c[1]["name"] for c in fake.calls if c[0] == "put_job"] == ["parent", "child", "grandchild"]


def test_restore_puts_one_job_to_an_entry_while_a_server_speaks_protocol_3(api, fake):
    fake.info = {**fake.info, "protocol": 3, "entry_bytes": 1 << 20}  # a voter not yet upgraded
    jobs = [{"name": n, "schedule": "@daily", **SHELL} for n in "xyz"]
    assert api.simulate_post("/v1/restore", **multipart("file", json.dumps(jobs))).json == [
        "success create x", "success create y", "success create z"]
    assert [c[1]["name"] for c in fake.calls if c[0] == "put_job"] == ["x", "y", "z"]


def test_restore_accepts_a_parent_that_is_already_stored(api, fake):
    fake.add({"name": "stored", "schedule": "@daily"})
    jobs = [{"name": "kid", "parent_job": "stored", **SHELL}]
    assert api.simulate_post("/v1/restore", **multipart("file", json.dumps(jobs))).json == ["success create kid"]


def test_a_refused_job_is_reported_and_the_rest_go_on(api, fake, monkeypatch):
    real = fake.put_job

    def put_job(doc):
        if doc["name"] == "b":
            raise errors.BadRequest("no alive node offers executor 'shell'")
        return real(doc)

    monkeypatch.setattr(fake, "put_job", put_job)
    jobs = [{"name": n, "schedule": "@daily", **SHELL} for n in "abc"]
    assert api.simulate_post("/v1/restore", **multipart("file", json.dumps(jobs))).json == [
        "success create a", "fail create b: no alive node offers executor 'shell'", "success create c"]


@pytest.mark.parametrize("form, status, says", [
    (multipart("other", "[]"), 404, "no field named file"),
    (multipart("file", "{not json"), 400, "not JSON"),
    (multipart("file", '{"name": "x"}'), 400, "JSON array"),
    (multipart("file", json.dumps([{"name": "Bad Name", **SHELL}])), 400, "illegal character"),
    (multipart("file", json.dumps([{"name": "a", "parent_job": "b", **SHELL}, {"name": "b", "parent_job": "a", **SHELL}])),
     400, "cycle"),
    (multipart("file", json.dumps([{"name": "a", "parent_job": "ghost", **SHELL}])), 400, "neither in the list"),
    (multipart("file", json.dumps([{"name": "a", "schedule": "@daily", **SHELL}] * 2)), 400, "twice"),
    ({"json": []}, 400, "multipart/form-data"),
])
def test_bad_restores_store_nothing(api, fake, form, status, says):
    resp = api.simulate_post("/v1/restore", **form)
    assert resp.status_code == status and says in resp.json["error"], resp.text
    assert not [c for c in fake.calls if c[0] == "put_job"]


# -- executions: delete, kill -------------------------------------------------------------------


def test_deleting_executions_answers_the_job_with_its_counters_reset(api, fake):
    fake.add({"name": "busy", "schedule": "@daily"}, success_count=4, error_count=1, status="success")
    fake.records["busy"] = [execution("busy", 1_767_225_600_000)]
    resp = api.simulate_delete("/v1/jobs/busy/executions")
    assert resp.status_code == 200 and (resp.json["success_count"], resp.json["error_count"]) == (0, 0)
    assert api.simulate_get("/v1/jobs/busy/executions").json == []
    assert api.simulate_delete("/v1/jobs/nobody/executions").status_code == 404


def test_kill_one_or_every_running_execution(api, fake):
    fake.add({"name": "long", "schedule": "@daily"})
    fake.running = [execution("long", 1_767_225_600_000, status="running"),
                    execution("long", 1_767_225_601_000, status="running", node="s2")]
    ids = [x["id"] for x in fake.running]
    resp = api.simulate_post(f"/v1/jobs/long/executions/{ids[1]}/kill")
    assert resp.status_code == 202 and resp.json == {"killed": [ids[1]]}
    assert api.simulate_post("/v1/jobs/long/kill").json == {"killed": ids}
    assert api.simulate_post("/v1/jobs/long/executions/1-nowhere/kill").status_code == 409
    assert api.simulate_post("/v1/jobs/nobody/kill").status_code == 404


# -- the output stream --------------------------------------------------------------------------


class Chunks:
    """client.output as an executor answers it: the bytes written so far, then finished."""

    def __init__(self, fake, record, parts):
        self.fake, self.record, self.parts, self.reads = fake, record, parts, 0

    def __call__(self, record, offset=0):
        self.reads += 1
        written = b"".join(self.parts[:self.reads])
        finished = self.reads >= len(self.parts)
        if finished:
            self.fake.records[record["job"]][0] = {**self.record, "finished_at": self.record["started_at"] + 10,
                                                   "status": "success", "success": True}
        return {"data": written[offset:], "size": len(written), "finished": finished}


def events(text):
    return [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            for block in text.split("\n\n") if "event: " in block]


def test_output_streams_events_with_byte_offsets_then_the_final_record(api, fake, monkeypatch):
    monkeypatch.setattr("services.api.output.POLL_S", 0)
    fake.add({"name": "echo", "schedule": "@daily"})
    record = execution("echo", 1_767_225_600_000, status="running")
    fake.records["echo"] = [record]
    # "é" is two bytes cut across two reads: it is sent whole, once both have arrived.
    monkeypatch.setattr(fake, "output", Chunks(fake, record, [b"one\n\xc3", b"\xa9\n", b"three\n"]), raising=False)
    resp = api.simulate_get(f"/v1/jobs/echo/executions/{record['id']}/output")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/event-stream"
    got = events(resp.text)
    assert [(e["event"], e["id"]) for e in got] == [("output", "4"), ("output", "7"), ("output", "13"), ("end", "13")]
    assert "".join(json.loads(e["data"]) for e in got[:-1]) == "one\né\nthree\n"
    assert json.loads(got[-1]["data"])["status"] == "success"


def test_output_resumes_from_last_event_id(api, fake, monkeypatch):
    fake.add({"name": "echo", "schedule": "@daily"})
    record = execution("echo", 1_767_225_600_000, output="abcdef")
    fake.records["echo"] = [record]
    fake.outputs[record["id"]] = b"abcdef"
    got = events(api.simulate_get(f"/v1/jobs/echo/executions/{record['id']}/output",
                                  headers={"Last-Event-ID": "4"}).text)
    assert [json.loads(e["data"]) for e in got if e["event"] == "output"] == ["ef"]
    assert api.simulate_get(f"/v1/jobs/echo/executions/{record['id']}/output",
                            headers={"Last-Event-ID": "x"}).status_code == 400
    assert api.simulate_get("/v1/jobs/echo/executions/1-nowhere/output").status_code == 404


def test_output_of_a_gone_node_falls_back_to_the_replicated_tail(api, fake):
    fake.add({"name": "echo", "schedule": "@daily"})
    record = execution("echo", 1_767_225_600_000, output="tail only\n")
    fake.records["echo"] = [record]
    fake.fail["output"] = errors.Unavailable("node s9 is not a member")
    got = events(api.simulate_get(f"/v1/jobs/echo/executions/{record['id']}/output").text)
    assert [e["event"] for e in got] == ["output", "end"] and json.loads(got[0]["data"]) == "tail only\n"


# -- the UI's files and the spec ----------------------------------------------------------------


def test_ui_files_are_served_and_nothing_else(api):
    page = api.simulate_get("/ui")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/ui/app.js" in page.text and api.simulate_get("/ui/").text == page.text
    for name in ("app.js", "lib.js", "job.js", "form.js"):
        assert api.simulate_get(f"/ui/{name}").headers["Content-Type"].startswith("text/javascript")
    assert api.simulate_get("/ui/app.css").headers["Content-Type"].startswith("text/css")
    assert api.simulate_get("/ui/../app.py").status_code == 404
    assert api.simulate_get("/ui/secrets.txt").status_code == 404


def test_root_sends_browsers_to_the_ui_and_others_get_a_404(api):
    resp = api.simulate_get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/ui/")
    assert api.simulate_get("/", headers={"Accept": "application/json"}).status_code == 404


def test_the_spec_is_served_as_yaml(api):
    resp = api.simulate_get("/v1/openapi.yaml")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/yaml"
    assert resp.text.startswith("---\nopenapi: 3.1.0")


def test_with_a_token_the_ui_and_spec_load_but_data_needs_it(app_with):
    api = app_with(token="s3cret")
    assert api.simulate_get("/ui").status_code == 200 and api.simulate_get("/ui/app.js").status_code == 200
    assert api.simulate_get("/v1/openapi.yaml").status_code == 200
    assert api.simulate_get("/v1/jobs").status_code == 401 and api.simulate_get("/metrics").status_code == 401
    assert api.simulate_get("/v1/jobs", headers={"X-Dkron-Token": "s3cret"}).status_code == 200
