"""pykronctl as a user runs it (a subprocess) against a real node: every verb of the first
slice, tables and --json, and each exit code; `tail` shows output while the job still runs."""

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")


def ctl(node, *args, timeout=60):
    return subprocess.run([PYKRONCTL, "--server", node.nodes["s1"].server, *args],
                          capture_output=True, text=True, timeout=timeout)


def test_apply_list_show_run_delete(node, tmp_path):
    path = tmp_path / "greet.json"
    path.write_text(json.dumps({"name": "greet", "schedule": "@manually", "executor": "shell",
                                "executor_config": {"command": "echo hello from greet"}}))
    done = ctl(node, "apply", str(path))
    assert done.returncode == 0, done.stderr
    assert "applied greet" in done.stdout
    assert ctl(node, "apply", str(path)).returncode == 0  # idempotent

    table = ctl(node, "jobs")
    assert table.returncode == 0 and table.stdout.startswith("NAME")
    assert any(line.split()[0] == "greet" for line in table.stdout.splitlines()[1:])
    listed = json.loads(ctl(node, "jobs", "--json").stdout)
    assert [j["name"] for j in listed if j["name"] == "greet"] == ["greet"]
    shown = json.loads(ctl(node, "job", "greet", "--json").stdout)
    assert shown["executor_config"] == {"command": "echo hello from greet"}

    ran = ctl(node, "run", "greet", "--wait")
    assert ran.returncode == 0, ran.stderr
    assert "hello from greet" in ran.stdout
    executions = json.loads(ctl(node, "executions", "greet", "--json").stdout)
    assert executions[0]["success"] and executions[0]["output"] == "hello from greet\n"
    assert "greet" in ctl(node, "executions", "greet").stdout.splitlines()[1]

    assert ctl(node, "delete", "greet").returncode == 0
    assert ctl(node, "job", "greet").returncode == 3


def test_run_wait_exits_1_when_the_job_fails(node, tmp_path):
    path = tmp_path / "fail.yaml"
    path.write_text("name: fails\nschedule: '@manually'\nexecutor: shell\n"
                    "executor_config:\n  command: sh -c 'echo about to fail; exit 3'\n")
    assert ctl(node, "apply", str(path)).returncode == 0
    ran = ctl(node, "run", "fails", "--wait")
    assert ran.returncode == 1
    assert "about to fail" in ran.stdout and "exit 3" in ran.stderr


def test_members_and_leader(node):
    members = ctl(node, "members")
    assert members.returncode == 0 and members.stdout.splitlines()[1].split()[0] == "s1"
    assert json.loads(ctl(node, "members", "--json").stdout)[0]["executors"] == "http,shell"
    leader = json.loads(ctl(node, "leader", "--json").stdout)
    assert leader["name"] == "s1" and leader["ready"] is True


def test_exit_codes_for_bad_input_missing_jobs_and_no_cluster(node, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "schedule": "not a schedule", "executor": "shell",
                               "executor_config": {"command": "true"}}))
    refused = ctl(node, "apply", str(bad))
    assert refused.returncode == 2 and "schedule" in refused.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{ this is: [not json")
    assert ctl(node, "apply", str(garbage)).returncode == 2
    assert ctl(node, "job", "no-such-job").returncode == 3
    assert ctl(node, "executions", "no-such-job").returncode == 3
    assert ctl(node, "no-such-verb").returncode == 2
    assert ctl(node, "executions", "x", "--limit", "zero").returncode == 2
    gone = subprocess.run([PYKRONCTL, "--server", "127.0.0.1:1", "--timeout-ms", "300", "jobs"],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 4 and "unavailable" in gone.stderr


def test_tail_shows_output_before_the_job_finishes(node):
    job = {"name": "ticker", "schedule": "@manually", "executor": "shell",
           "executor_config": {"shell": "true", "command": "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.5; done"}}
    assert requests.post(f"{node.api()}/v1/jobs", json=job, timeout=10).status_code == 201
    tail = subprocess.Popen([PYKRONCTL, "--server", node.nodes["s1"].server, "tail", "ticker"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "waiting for a run of ticker" in tail.stderr.readline()
        assert requests.post(f"{node.api()}/v1/jobs/ticker", timeout=10).status_code == 202
        first = tail.stdout.readline()
        first_at = time.time_ns() // 1_000_000
        rest = tail.stdout.read()
        assert tail.wait(timeout=30) == 0
    finally:
        tail.kill()
    assert first == "line1\n"
    assert rest.splitlines() == [f"line{i}" for i in range(2, 7)]
    execution = node.client().executions("ticker")[0]
    # The first line reached the terminal while the job was still running.
    assert first_at < execution["finished_at"], (first_at, execution["finished_at"])
