"""A backup restored into a fresh cluster: 1,000 jobs and the history of a job @every 1s saved
from a secure cluster of 3 servers and an agent, every node of it then gone; restored into a
new secure cluster, every server holds the same jobs, executions, settings, tokens and keys, the
old management token works, the job fires at its next ticks, and no tick runs twice."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from common import backup, models
from scripts.cluster import Cluster, wait_until

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")
BEAT = {"name": "beat", "schedule": "@every 1s", "executor": "shell", "executor_config": {"command": "true"},
        "tags": {"server": "false:1"}, "history_limit": 1000}


def ctl(cluster, *args, code=0):
    done = subprocess.run([PYKRONCTL, *args], capture_output=True, text=True, timeout=180, env=cluster.ctl_env())
    assert done.returncode == code, done.stderr
    return done


def settled(read, what):
    """A read's answer, retried across an election: loading a backup keeps a cluster busy, and
    a leader may change while it settles."""
    return wait_until(lambda: [read()], timeout=60, what=what)[0]


def jobs_of(client, name=None):
    return {j["name"]: {k: v for k, v in j.items() if k not in ("next",)} for j in client.jobs(stale=name is not None)}


@pytest.mark.timeout(400)  # two secure clusters of four nodes, and 1,000 jobs written
def test_a_backup_restored_into_a_fresh_cluster(tmp_path):
    path = tmp_path / "backup.snap"
    with Cluster(servers=3, agents=1, secure=True) as old:
        client = old.client()
        for i in range(1000):
            client.put_job({"name": f"job-{i:04d}", "schedule": "@manually", "executor": "shell",
                            "executor_config": {"command": "true"}})
        client.put_job(BEAT)
        client.put_setting("untagged_jobs", "all")
        wait_until(lambda: len([x for x in client.executions("beat") if x["status"] == "success"]) >= 5,
                   timeout=30, what="beat's history")
        ctl(old, "snapshot", "save", str(path))
        saved_jobs = jobs_of(client)
        saved_runs = {x["id"]: x for x in client.executions("beat", limit=1000)}
        saved_tokens = {t["accessor"] for t in client.tokens()}
        saved_keys = {k["key"]: k["name"] for k in client.keys_list() if k["status"] == "accepted"}
        old_token = old.management_token
    header, _ = backup.read_header(path)

    with Cluster(servers=3, agents=1, secure=True) as new:
        live = {k["key"]: k["name"] for k in new.client().keys_list() if k["status"] == "accepted"}
        assert "holds jobs" not in ctl(new, "snapshot", "restore", str(path)).stderr
        new.management_token = old_token  # the backup's tokens replaced the new cluster's
        client = new.client()
        restored = settled(lambda: jobs_of(client), "the jobs after the restore")
        assert set(restored) == set(saved_jobs)
        definition = lambda job: {k: v for k, v in job.items() if k not in models.JOB_STATE}  # noqa: E731
        for name in ("job-0000", "job-0999"):  # runs in the new cluster change beat's counters
            assert restored[name] == saved_jobs[name]
        assert definition(restored["beat"]) == definition(saved_jobs["beat"])
        for server in ("s1", "s2", "s3"):
            wait_until(lambda: set(jobs_of(new.client(server), server)) == set(saved_jobs), timeout=30,
                       what=f"the jobs on {server}")
        assert settled(client.settings, "the settings")["untagged_jobs"] == "all"
        assert {t["accessor"] for t in settled(client.tokens, "the tokens")} == saved_tokens
        accepted = {k["key"]: k["name"] for k in settled(client.keys_list, "the keys") if k["status"] == "accepted"}
        # The new cluster's nodes keep their own keys (same names, new keys); the backup's other
        # keys are added; a name holds one accepted key.
        assert live.items() <= accepted.items()
        assert {k: n for k, n in saved_keys.items() if n not in live.values()}.items() <= accepted.items()
        assert len(set(accepted.values())) == len(accepted)
        runs = {x["id"]: x for x in settled(lambda: client.executions("beat", limit=1000), "beat's history")}
        for run_id, run in saved_runs.items():
            assert run_id in runs
            if run["status"] == "success":
                assert runs[run_id]["status"] == "success"
        taken_at = header["taken_at"]
        wait_until(lambda: len([x for x in client.executions("beat", limit=1000)
                                if x["scheduled_at"] > taken_at and x["status"] == "success"]) >= 3,
                   timeout=60, what="beat firing in the new cluster")
        ticks = collections.Counter(x["scheduled_at"] for x in settled(lambda: client.executions("beat", limit=1000),
                                                                        "beat's history"))
        assert not [t for t, n in ticks.items() if n > 1], "a tick ran twice"
        assert "holds jobs" in ctl(new, "snapshot", "restore", str(path), code=2).stderr  # not without --force
