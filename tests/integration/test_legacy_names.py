"""A job whose name is longer than this release creates (200 characters), as releases before it
stored, stays reachable on a real node: listed across a page boundary, read, run with its
executions listed, deleted. Its row is written into state.db as such a release left it."""

import json
import os
import sqlite3

import requests

from common import messages as m

LONG = "a" * 300  # sorts first, so that a page of one ends on it


def store_as_an_older_release(node, like):
    path = os.path.join(node.nodes["s1"].conf.node.data_dir, "state.db")
    db = sqlite3.connect(path, timeout=10)
    try:
        with db:
            (body,) = db.execute("SELECT body FROM jobrow WHERE name = ?", (like,)).fetchone()
            job = dict(json.loads(body), name=LONG)
            db.execute("INSERT INTO jobrow (name, parent, body) VALUES (?, '', ?)", (LONG, json.dumps(job)))
            row = db.execute("SELECT body FROM jobstaterow WHERE name = ?", (like,)).fetchone()
            if row:
                db.execute("INSERT INTO jobstaterow (name, body) VALUES (?, ?)", (LONG, row[0]))
    finally:
        db.close()


def test_a_job_with_a_long_name_stays_reachable(node, eventually):
    api = f"{node.api()}/v1"
    seed = {"name": "legacy-seed", "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": "echo legacy"}}
    assert requests.post(f"{api}/jobs", json=seed, timeout=10).status_code == 201
    store_as_an_older_release(node, "legacy-seed")

    client = node.client()
    first = client.ask(client.endpoint, m.JobList(limit=1))
    assert [j["name"] for j in first.jobs] == [LONG] and first.more
    rest = client.ask(client.endpoint, m.JobList(after=first.jobs[-1]["name"], limit=1))  # the page after it
    assert [j["name"] for j in rest.jobs] == ["legacy-seed"]
    assert {j["name"] for j in requests.get(f"{api}/jobs", timeout=10).json()} == {LONG, "legacy-seed"}

    assert requests.get(f"{api}/jobs/{LONG}", timeout=10).json()["name"] == LONG
    assert requests.post(f"{api}/jobs/{LONG}", timeout=10).status_code == 202
    runs = eventually(lambda: [x for x in requests.get(f"{api}/jobs/{LONG}/executions", timeout=10).json()
                               if x["status"] == "success"], timeout=30, what="the long-named job's run")
    assert runs[0]["output"].strip() == "legacy"
    assert requests.delete(f"{api}/jobs/{LONG}", timeout=10).status_code == 200
    assert requests.get(f"{api}/jobs/{LONG}", timeout=10).status_code == 404
