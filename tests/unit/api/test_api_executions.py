"""services/api/executions.py: a job's executions (newest first, X-Total-Count, Dkron's
`_sort`/`_order`, `output_size_limit` keeping the tail), one execution with its full output,
and the running executions (busy)."""

import pytest

from common import errors

from fakeclient import NOW, execution

ZERO_TIME = "0001-01-01T00:00:00Z"


@pytest.fixture
def history(fake):
    fake.add({"name": "hello", "schedule": "@hourly"})
    fake.records["hello"] = [  # newest first, as Raft lists them
        execution("hello", None, status="claimed"),
        execution("hello", NOW - 1_000, output="third line\n", attempt=2),
        execution("hello", NOW - 60_000, status="failed", output="second\n"),
        execution("hello", NOW - 120_000, output="héllo wörld\n"),
    ]
    return fake.records["hello"]


def test_list_in_dkron_shape_newest_first_with_total(api, history):
    resp = api.simulate_get("/v1/jobs/hello/executions")
    assert resp.status_code == 200 and resp.headers["X-Total-Count"] == "4"
    assert [x["id"] for x in resp.json] == [x["id"] for x in history]
    running, newest = resp.json[0], resp.json[1]
    assert running["finished_at"] == ZERO_TIME and running["status"] == "claimed"
    assert newest["job_name"] == "hello" and newest["node_name"] == "s1" and newest["success"] is True
    assert newest["output"] == "third line\n" and newest["output_truncated"] is False
    assert newest["started_at"] == "2025-12-31T23:59:59.000Z"


def test_an_execution_shows_its_tick_and_the_jitter_drawn_for_it(api, history):
    history[1]["jitter_ms"] = 1234
    docs = api.simulate_get("/v1/jobs/hello/executions").json
    assert docs[1]["scheduled_at"] == "2025-12-31T23:59:59.000Z" and docs[1]["jitter_ms"] == 1234
    assert docs[2]["jitter_ms"] == 0  # a record from before jitter, or without it


def test_a_job_without_executions_lists_none(api, fake):
    fake.add({"name": "quiet", "schedule": "@hourly"})
    resp = api.simulate_get("/v1/jobs/quiet/executions")
    assert resp.json == [] and resp.headers["X-Total-Count"] == "0"


def test_executions_of_a_missing_job_are_a_404(api):
    assert api.simulate_get("/v1/jobs/nope/executions").status_code == 404


def test_output_size_limit_keeps_the_last_bytes_and_says_so(api, history):
    resp = api.simulate_get("/v1/jobs/hello/executions", query_string="output_size_limit=5")
    by_id = {x["id"]: x for x in resp.json}
    assert by_id[history[1]["id"]]["output"] == "line\n" and by_id[history[1]["id"]]["output_truncated"] is True
    assert by_id[history[0]["id"]]["output"] == "ok\n" and by_id[history[0]["id"]]["output_truncated"] is False
    # "wörld\n" is 7 bytes: the cut falls inside "ö", so the partial character is dropped.
    assert by_id[history[3]["id"]]["output"] == "rld\n"


def test_output_size_limit_larger_than_the_output_changes_nothing(api, history):
    resp = api.simulate_get("/v1/jobs/hello/executions", query_string="output_size_limit=1000")
    assert all(x["output_truncated"] is False for x in resp.json)
    assert resp.json[3]["output"] == "héllo wörld\n"


def test_an_already_truncated_record_stays_marked(api, fake, history):
    history[2]["output_truncated"] = True
    resp = api.simulate_get("/v1/jobs/hello/executions", query_string="output_size_limit=1000")
    assert resp.json[2]["output_truncated"] is True


@pytest.mark.parametrize("value", ["-1", "lots", "1.5"])
def test_a_bad_output_size_limit_is_a_400(api, history, value):
    resp = api.simulate_get("/v1/jobs/hello/executions", query_string=f"output_size_limit={value}")
    assert resp.status_code == 400 and "output_size_limit" in resp.json["error"]


def test_sort_and_order_as_dkrons_ui_asks(api, history):
    def ids(query):
        return [x["id"] for x in api.simulate_get("/v1/jobs/hello/executions", query_string=query).json]
    newest_first = [x["id"] for x in history]
    assert ids("_sort=id&_order=DESC") == newest_first
    assert ids("_sort=started_at&_order=ASC") == newest_first[::-1]
    assert ids("_order=ASC") == newest_first[::-1]
    assert ids("_sort=attempt&_order=DESC")[0] == history[1]["id"]
    assert ids("_sort=finished_at&_order=ASC")[0] == history[0]["id"]  # a running one has not finished
    bad = api.simulate_get("/v1/jobs/hello/executions", query_string="_sort=output")
    assert bad.status_code == 400 and "_sort" in bad.json["error"]


def test_one_execution_with_its_output(api, history):
    resp = api.simulate_get(f"/v1/jobs/hello/executions/{history[1]['id']}")
    assert resp.status_code == 200
    assert resp.json["id"] == history[1]["id"] and resp.json["output"] == "third line\n"
    assert api.simulate_get("/v1/jobs/hello/executions/123-s9").status_code == 404


def test_a_truncated_record_is_completed_from_the_node_that_ran_it(api, fake, history):
    record = history[2]
    record["output_truncated"] = True
    fake.outputs[record["id"]] = b"first\n" * 1000 + b"second\n"
    resp = api.simulate_get(f"/v1/jobs/hello/executions/{record['id']}")
    assert resp.json["output"] == "first\n" * 1000 + "second\n"
    assert resp.json["output_truncated"] is False
    assert ("output", record["id"]) in fake.calls


def test_when_that_node_is_gone_the_tail_is_what_there_is(api, fake, history):
    record = history[2]
    record["output_truncated"] = True
    fake.fail["output"] = errors.Unavailable("node s1 is not a member")
    resp = api.simulate_get(f"/v1/jobs/hello/executions/{record['id']}")
    assert resp.status_code == 200
    assert resp.json["output"] == "second\n" and resp.json["output_truncated"] is True


def test_a_complete_record_needs_no_trip_to_the_executor(api, fake, history):
    api.simulate_get(f"/v1/jobs/hello/executions/{history[1]['id']}")
    assert not any(c[0] == "output" for c in fake.calls)


def test_busy_lists_running_executions_oldest_first(api, fake):
    fake.running = [execution("b", NOW, status="running"), execution("a", NOW - 5_000, status="running")]
    resp = api.simulate_get("/v1/busy")
    assert resp.status_code == 200 and resp.headers["X-Total-Count"] == "2"
    assert [x["job_name"] for x in resp.json] == ["a", "b"]
    assert all(x["finished_at"] == ZERO_TIME for x in resp.json)


def test_busy_without_a_leader_is_a_503(api, fake):
    fake.fail["busy"] = errors.NotLeader("the cluster has no leader")
    assert api.simulate_get("/v1/busy").status_code == 503
