"""Dkron's POST /v1/restore on a real node over real HTTP: 100,000 small jobs in one file are
created in Raft batches (job.put_batch, each within [raft] max_append_bytes) and every one is
listed after; a job refused in a batch is reported and the jobs beside it are stored."""

import json
import time

import requests

JOBS = 100_000
RESTORE_TIMEOUT_S = 900  # a bound, not a speed: the machine may be shared


def jobs_file(docs):
    return {"file": ("jobs.json", json.dumps(docs).encode(), "application/json")}


def test_a_restore_of_100000_jobs_stores_and_lists_every_one(node):
    docs = [{"name": f"r-{i:06d}", "schedule": "@manually", "executor": "shell",
             "executor_config": {"command": "true"}} for i in range(JOBS)]
    applied = node.ctl("s1", "raft")["applied"]
    started = time.monotonic()
    resp = requests.post(f"{node.api()}/v1/restore", files=jobs_file(docs), timeout=RESTORE_TIMEOUT_S)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.json() == [f"success create {d['name']}" for d in docs]
    print(f"restore of {JOBS} jobs: {time.monotonic() - started:.1f} s")
    entries = node.ctl("s1", "raft")["applied"] - applied
    assert entries < JOBS // 50, f"{entries} entries for {JOBS} jobs: not in batches"
    listed = requests.get(f"{node.api()}/v1/jobs", timeout=300)
    assert listed.headers["X-Total-Count"] == str(JOBS)
    assert sorted(j["name"] for j in listed.json()) == [d["name"] for d in docs]


def test_a_job_refused_in_a_batch_is_reported_and_the_jobs_beside_it_are_stored(node):
    docs = [{"name": "rb-a", "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}},
            {"name": "rb-b", "schedule": "@manually", "executor": "nowhere-executor"},
            {"name": "rb-c", "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}]
    resp = requests.post(f"{node.api()}/v1/restore", files=jobs_file(docs), timeout=60)
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done[0] == "success create rb-a" and done[2] == "success create rb-c"
    assert done[1].startswith("fail create rb-b: ") and "no alive node offers executor" in done[1]
    assert requests.get(f"{node.api()}/v1/jobs/rb-c", timeout=10).status_code == 200
    assert requests.get(f"{node.api()}/v1/jobs/rb-b", timeout=10).status_code == 404
