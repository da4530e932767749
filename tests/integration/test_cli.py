"""pykronctl as a user runs it (a subprocess) against a real node: every command, tables and
--json, and each exit code (0 ok, 1 job failed, 2 usage or bad input, 3 not found, 4 cluster
unavailable); `tail` and `run --wait` show output while the job still runs. `leave` runs last."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import requests

PYKRONCTL = str(Path(sys.executable).parent / "pykronctl")


def ctl(node, *args, timeout=60):
    return subprocess.run([PYKRONCTL, "--server", node.nodes["s1"].server, *args],
                          capture_output=True, text=True, timeout=timeout, env=node.ctl_env())


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
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node.ctl_env())
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


def ok(node, *args):
    done = ctl(node, *args)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done


def job_file(tmp_path, name, command, **extra):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "schedule": "@manually", "executor": "shell",
                                "executor_config": {"shell": "true", "command": command}, **extra}))
    return str(path)


def test_status_in_both_forms(node):
    table = ok(node, "status").stdout
    assert table.splitlines()[0].split() == ["node", "s1"] and ["leader", "s1"] in [x.split() for x in table.splitlines()]
    assert "replicas" in table  # the newest snapshot point the replicas compared (none yet here)
    doc = json.loads(ok(node, "status", "--json").stdout)
    assert doc["agent"]["name"] == "s1" and doc["serf"]["leader"] == "s1" and doc["serf"]["alive"] == "1"


def test_json_forms_of_apply_delete_import_and_the_leader_table(node, tmp_path):
    applied = json.loads(ok(node, "apply", job_file(tmp_path, "jsonform", "true"), "--json").stdout)
    assert applied["name"] == "jsonform" and applied["executor"] == "shell"
    assert json.loads(ok(node, "delete", "jsonform", "--json").stdout)["name"] == "jsonform"
    (tmp_path / "list.json").write_text(json.dumps([json.loads((tmp_path / "jsonform.json").read_text())]))
    assert json.loads(ok(node, "import", str(tmp_path / "list.json"), "--json").stdout) == {"job": "jsonform", "error": None}
    leader = dict(line.split(None, 1) for line in ok(node, "leader").stdout.splitlines())
    assert leader["name"] == "s1" and leader["ready"] == "true"


def test_jobs_filtered_by_tag(node, tmp_path):
    ok(node, "apply", job_file(tmp_path, "tagged", "true", tags={"role": "pykron:1"}),
       job_file(tmp_path, "untagged", "true"))
    names = [j["name"] for j in json.loads(ok(node, "jobs", "--tag", "role=pykron", "--json").stdout)]
    assert "tagged" in names and "untagged" not in names
    assert [line.split()[0] for line in ok(node, "jobs", "--tag", "role=pykron").stdout.splitlines()[1:]] == names
    assert ctl(node, "jobs", "--tag", "novalue").returncode == 2


def test_toggle_in_both_forms(node, tmp_path):
    ok(node, "apply", job_file(tmp_path, "flip", "true"))
    assert ok(node, "toggle", "flip").stdout.strip() == "flip disabled"
    assert json.loads(ok(node, "toggle", "flip", "--json").stdout)["disabled"] is False
    assert ctl(node, "toggle", "no-such-job").returncode == 3


def test_run_wait_prints_output_before_the_run_ends(node, tmp_path):
    ok(node, "apply", job_file(tmp_path, "slowprint", "for i in 1 2 3 4 5 6; do echo out$i; sleep 0.5; done"))
    run = subprocess.Popen([PYKRONCTL, "--server", node.nodes["s1"].server, "run", "slowprint", "--wait"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node.ctl_env())
    try:
        first = run.stdout.readline()
        first_at = time.time_ns() // 1_000_000
        rest = run.stdout.read()
        assert run.wait(timeout=30) == 0
        progress = run.stderr.read()
    finally:
        run.kill()
    assert first == "out1\n" and rest.split() == [f"out{i}" for i in range(2, 7)]
    assert "pykronctl: running slowprint" in progress and ": success (exit 0)" in progress
    assert first_at < node.client().executions("slowprint")[0]["finished_at"]
    lines = [json.loads(x) for x in ok(node, "run", "slowprint", "--wait", "--json").stdout.splitlines()]
    assert "".join(x.get("output", "") for x in lines).split() == [f"out{i}" for i in range(1, 7)]
    assert lines[-1]["finished"]["status"] == "success"
    plain = json.loads(ok(node, "run", "slowprint", "--json").stdout)  # without --wait: the runs started
    assert plain[0]["job_name"] == "slowprint" and plain[0]["status"] in ("claimed", "running")


def test_busy_and_kill(node, tmp_path, eventually):
    ok(node, "apply", job_file(tmp_path, "sleeper", "sleep 60"))
    assert ok(node, "kill", "sleeper").stdout.strip() == "nothing of sleeper is running"
    ok(node, "run", "sleeper")
    running = eventually(lambda: [x for x in json.loads(ok(node, "busy", "--json").stdout)
                                  if x["job_name"] == "sleeper" and x["status"] == "running"], what="sleeper running")
    assert any(line.split()[1] == "sleeper" for line in ok(node, "busy").stdout.splitlines()[1:])
    assert ok(node, "kill", "sleeper", running[0]["id"]).stdout.strip() == f"killing {running[0]['id']}"
    eventually(lambda: node.client().executions("sleeper")[0]["status"] == "killed", what="sleeper killed")
    ok(node, "run", "sleeper")
    eventually(lambda: node.client().busy(), what="sleeper running again")
    assert json.loads(ok(node, "kill", "sleeper", "--json").stdout)["killed"]
    assert ctl(node, "kill", "no-such-job").returncode == 3


def test_settings_pause_and_unpause(node, tmp_path):
    table = ok(node, "settings").stdout
    assert "untagged_jobs" in table and "default_timezone" in table
    assert ok(node, "settings", "untagged_jobs").stdout.strip() in ("one", "all")
    assert json.loads(ok(node, "settings", "default_timezone", "UTC", "--json").stdout) == {"default_timezone": "UTC"}
    ok(node, "settings", "default_timezone", "")
    assert ctl(node, "settings", "untagged_jobs", "some").returncode == 2  # refused by the state machine
    assert ctl(node, "settings", "no_such_setting").returncode == 3
    assert ok(node, "pause").stdout.strip() == "paused: new job submissions are refused"
    try:
        refused = ctl(node, "apply", job_file(tmp_path, "while-paused", "true"))
        assert refused.returncode == 4 and "paused" in refused.stderr
        assert json.loads(ok(node, "settings", "--json").stdout)["paused"] == "true"
    finally:
        assert json.loads(ok(node, "unpause", "--json").stdout) == {"paused": False}
    ok(node, "apply", job_file(tmp_path, "after-pause", "true"))
    assert json.loads(ok(node, "pause", "--json").stdout) == {"paused": True}
    assert ok(node, "unpause").stdout.strip() == "unpaused: new job submissions are taken"


def test_export_then_import_round_trips(node, tmp_path):
    ok(node, "apply", job_file(tmp_path, "exported", "echo kept", metadata={"team": "ops"}))
    path = tmp_path / "all.json"
    ok(node, "export", str(path))
    jobs = json.loads(path.read_text())
    assert any(j["name"] == "exported" for j in jobs)
    ok(node, "delete", "exported")
    done = ok(node, "import", str(path))
    assert "success create exported" in done.stdout.splitlines()
    assert node.client().job("exported")["metadata"] == {"team": "ops"}
    assert json.loads(ok(node, "export", "-").stdout) == json.loads(ok(node, "export", "-", "--json").stdout)
    child = tmp_path / "child.yaml"
    child.write_text("- name: orphan\n  parent_job: nobody\n  executor: shell\n  executor_config: {command: 'true'}\n")
    assert ctl(node, "import", str(child)).returncode == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "fine", "schedule": "@manually", "executor": "shell",
                                "executor_config": {"command": "true"}}, {"name": "NOT FINE"}]))
    assert ctl(node, "import", str(bad)).returncode == 2  # the whole file is checked first
    assert ctl(node, "job", "fine").returncode == 3
    assert ctl(node, "import", str(tmp_path / "missing.json")).returncode == 2


def test_raft_verbs_and_their_refusals(node):
    peers = json.loads(ok(node, "raft", "list-peers", "--json").stdout)
    assert [(p["id"], p["role"], p["leader"]) for p in peers] == [("s1", "voter", True)]
    assert ok(node, "raft", "list-peers").stdout.splitlines()[1].split()[:3] == ["s1", "voter", "true"]
    assert ctl(node, "raft", "transfer-leader").returncode == 2  # no other voter to take it
    assert ctl(node, "raft", "remove-peer", "nobody").returncode == 3


def test_keygen_and_keyring(node):
    key = ok(node, "keygen").stdout.strip()
    assert len(base64.b64decode(key)) == 32
    listed = ctl(node, "keyring", "--list", "--json")
    assert listed.returncode in (0, 2), listed.stderr  # 2: this node's gossip runs without encryption


def test_usage_errors_exit_2_and_help_exits_0():
    assert subprocess.run([PYKRONCTL, "--help"], capture_output=True, text=True).returncode == 0
    for args in (["run"], ["kill"], ["settings", "a", "b", "c"], ["jobs", "--bogus"], ["--timeout-ms", "0", "jobs"]):
        assert subprocess.run([PYKRONCTL, *args], capture_output=True, text=True).returncode == 2, args


def test_an_unreachable_cluster_exits_4_for_reads_and_writes(tmp_path):
    for args in (["status"], ["busy"], ["pause"], ["settings"], ["export", str(tmp_path / "x.json")]):
        gone = subprocess.run([PYKRONCTL, "--server", "127.0.0.1:1", "--timeout-ms", "200", *args],
                              capture_output=True, text=True, timeout=30)
        assert gone.returncode == 4 and "unavailable" in gone.stderr, args


def test_schedule_prints_what_the_api_answers(node):
    # One function behind both: the same words and times (a yearly tick, so no tick passes between the calls).
    here = json.loads(ok(node, "--json", "schedule", "0 0 12 1 1 *", "--tz", "Asia/Tokyo", "--count", "3").stdout)
    there = requests.get(f"{node.api()}/v1/schedule", params={"schedule": "0 0 12 1 1 *", "timezone": "Asia/Tokyo",
                                                                "count": 3}, timeout=10).json()
    assert here == there and there["next"][0]["local"].endswith("T12:00:00.000+09:00")


def test_leave_last(node):
    left = ok(node, "leave", "--yes")
    assert left.stdout.strip() == "s1 is leaving the cluster"
