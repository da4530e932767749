"""The replicated state stays bounded on a real node: a job that can never find a node, ticking
every second, keeps at most its history_limit of skipped rows while skipped_count counts every
tick, and its claimed ticks (tickrow, read from the node's state.db) stay within its catch-up
window. tests/unit/raft/test_followups.py holds the same over 300 ticks of the state machine."""

import json
import os
import sqlite3
import urllib.request

from scripts.cluster import wait_until

TICKS = 20


def test_a_job_that_never_finds_a_node_keeps_bounded_rows_and_counts_every_skip(node):
    client = node.client()
    client.put_job({"name": "nowhere", "schedule": "@every 1s", "executor": "shell", "tags": {"role": "nowhere"},
                    "executor_config": {"command": "true"}, "history_limit": 5, "catchup_window": "8s"})
    try:
        wait_until(lambda: client.job("nowhere")["skipped_count"] >= TICKS, timeout=TICKS + 30,
                   what=f"{TICKS} ticks skipped")
    finally:
        client.put_job({**client.job("nowhere"), "disabled": True})
    job = client.job("nowhere")
    ticked = (job["last_scheduled_at"] - job["created_at"]) // 1000
    assert job["skipped_count"] == ticked >= TICKS  # every tick, each once
    rows = client.executions("nowhere", limit=1000)
    assert len(rows) == 5 and all(x["status"] == "skipped" for x in rows)
    assert any("no alive node" in x["reason"] for x in rows)
    with urllib.request.urlopen(f"{node.api()}/v1/jobs/nowhere", timeout=10) as resp:
        assert json.load(resp)["skipped_count"] == ticked
    path = os.path.join(node.nodes["s1"].conf.node.data_dir, "state.db")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        kept = [t for (t,) in db.execute("SELECT scheduled_at FROM tickrow WHERE job = 'nowhere'")]
    finally:
        db.close()
    assert len(kept) <= 9 and min(kept) >= job["last_scheduled_at"] - 8000  # the newest, and 8 s behind it
