"""The traps a newcomer met, fixed in code and driven as a user meets them (pykron and pykronctl
through their entry points, the API over real HTTP, one real node): a node bound on every
interface without an address to advertise will not start; apply and the API warn of shell
syntax in a command that runs without a shell, and store the job; leave asks first; --help says
what each command does and lists the exit codes; `pykron supervisorctl` reaches the node's own
supervisord; human tables say "-" and "never" where Dkron's JSON has a zero time and ""."""

import json
import os
import pty
import subprocess
import sys
import tomllib
from pathlib import Path

import requests

from common import ctl_usage, models
from scripts.cluster import to_toml

BIN = Path(sys.executable).parent
FOR_LOOP = {"name": "for-loop", "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": "for i in 1 2 3; do echo $i; done"}}


def ctl(node, *args, stdin=subprocess.DEVNULL, timeout=60):
    return subprocess.run([str(BIN / "pykronctl"), *args], capture_output=True, text=True, timeout=timeout,
                          env=node.ctl_env(), stdin=stdin)


def pykron(*args, timeout=60):
    return subprocess.run([str(BIN / "pykron"), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_a_node_bound_on_every_interface_without_advertise_will_not_start(tmp_path):
    for bind in ("0.0.0.0", "::"):
        conf = tmp_path / "node.toml"
        run_dir = tmp_path / "run"
        conf.write_text(f'[node]\nname = "n1"\nbind = "{bind}"\ndata_dir = "{tmp_path / "data"}"\n'
                        f'run_dir = "{run_dir}"\n')
        started = pykron("node", "-c", str(conf))
        assert started.returncode == 2, started.stderr
        assert f'{conf}: [node] bind = "{bind}" listens on every interface' in started.stderr
        assert "set [node] advertise" in started.stderr
        assert not run_dir.exists()  # refused before anything was written or started
    conf.write_text(conf.read_text() + 'advertise = "127.0.0.1"\n')
    rendered = pykron("render", "-c", str(conf))  # with an address to advertise it is taken
    assert rendered.returncode == 0 and "[program:gossip]" in rendered.stdout, rendered.stderr


def test_apply_warns_of_shell_syntax_per_job_and_stores_every_job(node, tmp_path):
    jobs = [FOR_LOOP,
            {**FOR_LOOP, "name": "plain", "executor_config": {"command": "echo plain words"}},
            {**FOR_LOOP, "name": "in-a-shell", "executor_config": {"command": "echo $(hostname) | wc -c",
                                                                   "shell": "true"}},
            {**FOR_LOOP, "name": "quoted", "executor_config": {"command": "sh -c 'echo a | wc -l'"}}]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    applied = ctl(node, "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    warnings = [line for line in applied.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith("pykronctl: warning: job for-loop: "), applied.stderr
    assert "'for'" in warnings[0] and "';'" in warnings[0] and "'$VAR'" in warnings[0]
    assert 'add "shell": "true"' in warnings[0]
    for job in jobs:
        assert ctl(node, "job", job["name"]).returncode == 0
    ran = ctl(node, "run", "for-loop", "--wait")  # the warning is true: split into words, it fails
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert ctl(node, "run", "quoted", "--wait").stdout.strip() == "1"


def test_the_api_answers_as_before_with_a_warning_header(node):
    doc = {**FOR_LOOP, "name": "api-for-loop", "executor_config": {"command": "date > /tmp/stamp"}}
    for method, url, code in (("POST", "/v1/jobs", 201), ("PATCH", "/v1/jobs", 201),
                              ("PUT", "/v1/jobs/api-for-loop", 201)):
        resp = requests.request(method, f"{node.api()}{url}", json=doc, timeout=10)
        assert resp.status_code == code, resp.text
        assert resp.json()["name"] == "api-for-loop"
        assert resp.headers["Warning"].startswith("299 - \"executor_config.command has shell syntax ('>')")
        assert resp.headers["Warning"].endswith('add \\"shell\\": \\"true\\" to executor_config to run it with '
                                                '/bin/sh -c"')
    stored = requests.get(f"{node.api()}/v1/jobs/api-for-loop", timeout=10).json()
    assert stored["executor_config"] == {"command": "date > /tmp/stamp"}
    for config in ({"command": "date"}, {"command": "date > /tmp/stamp", "shell": "true"}):
        resp = requests.post(f"{node.api()}/v1/jobs", json={**doc, "executor_config": config}, timeout=10)
        assert resp.status_code == 201 and "Warning" not in resp.headers
    bad = requests.post(f"{node.api()}/v1/jobs", json={**doc, "schedule": "never ever"}, timeout=10)
    assert bad.status_code == 400 and "Warning" not in bad.headers  # refused is refused, not warned


def test_leave_asks_first_and_without_a_terminal_refuses_naming_the_flag(node):
    refused = ctl(node, "leave")
    assert refused.returncode == 2
    assert "s1 (server, " in refused.stderr and "will leave the cluster" in refused.stderr
    assert "add --yes" in refused.stderr

    main, child = pty.openpty()
    try:
        asked = subprocess.Popen([str(BIN / "pykronctl"), "leave"], stdin=child, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=node.ctl_env())
        os.close(child)
        os.write(main, b"n\n")
        out, err = asked.communicate(timeout=60)
    finally:
        os.close(main)
    assert asked.returncode == 2, err
    assert "s1 (server, " in err and "will leave the cluster. Go on? [y/N]" in err
    assert "leave: not confirmed, nothing done" in err
    members = json.loads(ctl(node, "members", "--json").stdout)
    assert [(x["name"], x["status"]) for x in members] == [("s1", "alive")]


def test_help_says_what_each_command_does_and_lists_the_exit_codes():
    shown = subprocess.run([str(BIN / "pykronctl"), "--help"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0
    assert shown.stdout.strip() == ctl_usage.USAGE.strip()
    assert "\nCommands:\n  status " in shown.stdout and "\n  leave                   Make the server" in shown.stdout
    assert "\nExit codes:\n  0  ok\n  1  the job failed" in shown.stdout
    assert "\n  5  refused by the ACL" in shown.stdout


def test_pykron_supervisorctl_reaches_the_nodes_own_supervisord(node, eventually, tmp_path):
    conf_path = node.nodes["s1"].conf_path
    status = pykron("supervisorctl", "-c", conf_path, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    running = {line.split()[0] for line in status.stdout.splitlines() if "RUNNING" in line}
    assert running == {f"pykron:{s}" for s in ("gossip", "raft", "scheduler", "dispatcher", "executor", "api")}

    # The README's reload of tags: the node's file edited, then HUP through the wrapper.
    sections = tomllib.loads(Path(conf_path).read_text())
    sections["node"]["tags"] = {**sections["node"].get("tags", {}), "trap": "hup"}
    Path(conf_path).write_text(to_toml(sections))
    signalled = pykron("supervisorctl", "-c", conf_path, "signal", "HUP", "pykron:gossip")
    assert signalled.returncode == 0 and "pykron:gossip: signalled" in signalled.stdout, signalled.stderr
    eventually(lambda: "trap=hup" in json.loads(ctl(node, "members", "--json").stdout)[0]["tags"].split(","),
               what="the tag read again on SIGHUP")

    elsewhere = tmp_path / "other.toml"
    elsewhere.write_text(f'[node]\nname = "other"\nrun_dir = "{tmp_path / "run"}"\ndata_dir = "{tmp_path}"\n')
    missing = pykron("supervisorctl", "-c", str(elsewhere), "status")
    assert missing.returncode == 4
    assert f"no {tmp_path / 'run'}/supervisord.conf: node other has not been started" in missing.stderr


def test_human_tables_say_dash_and_never_where_dkron_sends_zero_time_and_blank(node, tmp_path):
    path = tmp_path / "idle.json"
    path.write_text(json.dumps({**FOR_LOOP, "name": "idle", "executor_config": {"command": "true"}}))
    assert ctl(node, "apply", str(path)).returncode == 0
    table = ctl(node, "jobs").stdout.splitlines()
    header = table[0].split()
    row = dict(zip(header, next(line.split() for line in table[1:] if line.split()[0] == "idle")))
    assert (row["NEXT"], row["STATUS"], row["LAST_SUCCESS"]) == ("-", "never", "-"), table
    assert len(header) == len(next(line.split() for line in table[1:] if line.split()[0] == "idle"))
    as_json = next(j for j in json.loads(ctl(node, "jobs", "--json").stdout) if j["name"] == "idle")
    assert (as_json["next"], as_json["status"]) == (models.ZERO_TIME, "")  # Dkron's shape, unchanged
    shown = dict((line.split() + [""])[:2] for line in ctl(node, "job", "idle").stdout.splitlines())
    assert shown["next"] == "-" and shown["status"] == "never"
    assert "0001-01-01" not in ctl(node, "jobs").stdout

    members = ctl(node, "members").stdout.splitlines()  # every cell filled, so columns read by split
    assert all(len(line.split()) == len(members[0].split()) for line in members[1:]), members
