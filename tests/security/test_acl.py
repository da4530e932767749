"""Dkron's ACL on a secure cluster of three servers and an agent (which bootstraps it and prints
its management token): through the HTTP API of every server and through pykronctl with a token,
the same policies decide; lists and their counts show only what a token may read; a token
deleted or expired stops on every server within a second; su is a right of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from common import errors
from scripts.cluster import Cluster

SERVERS = ("s1", "s2", "s3")
RO = {"path": {"/v1/jobs": {"capabilities": ["list"]}, "/v1/jobs/*": {"capabilities": ["read", "list"]}}}
TEAM_A = {"path": {"/v1/jobs": {"capabilities": ["list"]},
                   "/v1/jobs/team-a-*": {"capabilities": ["create", "read", "update", "delete", "list"]}}}


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, agents=1, secure=True, conf={"security": {"secret_keys": ["env"]}}) as c:
        yield c


def http(cluster, method, path, token=None, server="s1", **kw):
    headers = {"X-Dkron-Token": token} if token else {}
    return requests.request(method, cluster.api(server) + path, headers=headers, timeout=10, **kw)


def ctl(cluster, token, *args, server="s1"):
    env = {**cluster.ctl_env(server), "PYKRON_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "common.ctl", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def job(name, **config):
    return {"name": name, "schedule": "@every 1h", "executor": "shell",
            "executor_config": {"command": "true", **config}}


def policy(cluster, name, rules):
    resp = http(cluster, "POST", f"/v1/acl/policies/{name}", cluster.management_token,
                json={"Name": name, "Rules": json.dumps(rules)})
    assert resp.status_code == 202, resp.text
    return resp.json()


def token(cluster, *policies, **extra):
    resp = http(cluster, "POST", "/v1/acl/tokens", cluster.management_token,
                json={"Policies": [{"Name": p} for p in policies], **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_bootstrap_works_once_and_its_token_was_printed(cluster):
    assert len(cluster.management_token) >= 32
    assert http(cluster, "POST", "/v1/acl/bootstrap").status_code == 409
    again = ctl(cluster, cluster.management_token, "acl", "bootstrap")
    assert again.returncode == 2 and "once" in again.stderr
    listed = ctl(cluster, cluster.management_token, "--json", "acl", "token", "list")
    assert [t["Type"] for t in json.loads(listed.stdout)] == ["management"]
    assert "SecretID" not in listed.stdout


def test_dkrons_policy_shape_round_trips(cluster):
    rules = json.dumps(RO)
    assert policy(cluster, "read-only", RO) == {"Name": "read-only", "Description": "", "Rules": rules}
    for server in SERVERS:
        got = http(cluster, "GET", "/v1/acl/policies/read-only", cluster.management_token, server=server)
        assert got.json() == {"Name": "read-only", "Description": "", "Rules": rules}
    listed = ctl(cluster, cluster.management_token, "--json", "acl", "policy", "list")
    assert {"Name": "read-only", "Description": "", "Rules": rules} in json.loads(listed.stdout)
    bad = http(cluster, "POST", "/v1/acl/policies/bad", cluster.management_token,
               json={"Rules": json.dumps({"path": {"/v1/jobs": {"capabilities": ["fly"]}}})})
    assert bad.status_code == 400 and "capabilities" in bad.text


def test_no_token_or_an_unknown_one_is_401_and_a_token_without_the_right_is_403(cluster):
    policy(cluster, "read-only", RO)
    ro = token(cluster, "read-only")["SecretID"]
    assert http(cluster, "GET", "/v1/jobs").status_code == 401
    assert http(cluster, "GET", "/v1/jobs", "x" * 40).status_code == 401
    assert http(cluster, "GET", "/health").status_code == 200
    assert http(cluster, "POST", "/v1/jobs", cluster.management_token, json=job("shared")).status_code == 201
    for server in SERVERS:
        assert http(cluster, "GET", "/v1/jobs", ro, server=server).status_code == 200
        assert http(cluster, "GET", "/v1/jobs/shared", ro, server=server).status_code == 200
        assert http(cluster, "POST", "/v1/jobs", ro, server=server, json=job("shared")).status_code == 403
        assert http(cluster, "DELETE", "/v1/jobs/shared", ro, server=server).status_code == 403
        assert http(cluster, "POST", "/v1/jobs/shared/run", ro, server=server).status_code == 403
        assert http(cluster, "GET", "/v1/acl/tokens", ro, server=server).status_code == 403
    # pykronctl with the token obeys the same policy: it lists, and is refused the writes (exit 5).
    listed = ctl(cluster, ro, "--json", "jobs")
    assert listed.returncode == 0 and "shared" in [j["name"] for j in json.loads(listed.stdout)]
    for args in (("delete", "shared"), ("run", "shared"), ("toggle", "shared"), ("acl", "token", "list"),
                 ("settings", "paused", "true")):
        refused = ctl(cluster, ro, *args)
        assert refused.returncode == 5 and "Permission denied" in refused.stderr, (args, refused.stderr)
    assert http(cluster, "GET", "/v1/jobs/shared", cluster.management_token).status_code == 200


def test_a_token_scoped_to_team_a_sees_and_touches_only_those_jobs(cluster):
    for name in ("team-a-1", "team-a-2", "team-b-1"):
        assert http(cluster, "POST", "/v1/jobs", cluster.management_token, json=job(name)).status_code == 201
    policy(cluster, "team-a", TEAM_A)
    a = token(cluster, "team-a")["SecretID"]
    for server in SERVERS:
        listed = http(cluster, "GET", "/v1/jobs", a, server=server)
        assert [j["name"] for j in listed.json()] == ["team-a-1", "team-a-2"]
        assert listed.headers["X-Total-Count"] == "2"
        paged = http(cluster, "GET", "/v1/jobs?_start=0&_end=1", a, server=server)
        assert [j["name"] for j in paged.json()] == ["team-a-1"] and paged.headers["X-Total-Count"] == "2"
        assert http(cluster, "GET", "/v1/jobs/team-b-1", a, server=server).status_code == 403
        assert http(cluster, "GET", "/v1/jobs/team-b-1/executions", a, server=server).status_code == 403
    assert http(cluster, "POST", "/v1/jobs", a, json=job("team-a-3")).status_code == 201
    assert http(cluster, "POST", "/v1/jobs", a, json=job("team-b-2")).status_code == 403
    assert http(cluster, "DELETE", "/v1/jobs/team-b-1", a).status_code == 403
    assert http(cluster, "DELETE", "/v1/jobs/team-a-3", a).status_code == 200
    # pykronctl: the same jobs, and the same refusals.
    listed = ctl(cluster, a, "--json", "jobs")
    assert [j["name"] for j in json.loads(listed.stdout)] == ["team-a-1", "team-a-2"]
    assert ctl(cluster, a, "job", "team-b-1").returncode == 5
    assert ctl(cluster, a, "delete", "team-b-1").returncode == 5
    assert ctl(cluster, a, "executions", "team-a-1").returncode == 0


def test_a_job_that_runs_as_another_user_needs_that_right(cluster):
    policy(cluster, "team-a", TEAM_A)
    a = token(cluster, "team-a")["SecretID"]
    refused = http(cluster, "POST", "/v1/jobs", a, json=job("team-a-su", su="daemon"))
    assert refused.status_code == 403 and "/v1/su/daemon" in refused.text
    path = tmp_job_file(job("team-a-su", su="daemon"))
    assert ctl(cluster, a, "apply", path).returncode == 5
    policy(cluster, "su-daemon", {"path": {**TEAM_A["path"], "/v1/su/daemon": {"capabilities": ["update"]}}})
    allowed = token(cluster, "su-daemon")["SecretID"]
    assert http(cluster, "POST", "/v1/jobs", allowed, json=job("team-a-su", su="daemon")).status_code == 201
    # A token that may edit the job but not su cannot change what runs as daemon.
    assert http(cluster, "POST", "/v1/jobs", a, json=job("team-a-su", su="daemon", command="id")).status_code == 403


def test_an_import_in_batches_is_judged_job_by_job(cluster):
    """pykronctl import with a token sends the jobs in one job.put_batch: each is judged as a
    job.put of its own (create or update on its path, su besides), and one refused refuses all."""
    policy(cluster, "team-a", TEAM_A)
    made = token(cluster, "team-a")
    a = made["SecretID"]
    mine = [job("team-a-imp-1"), job("team-a-imp-2")]
    done = ctl(cluster, a, "import", tmp_job_file(mine))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["success create team-a-imp-1", "success create team-a-imp-2"]
    for bad in (job("team-b-imp"), job("team-a-imp-3", su="daemon")):
        refused = ctl(cluster, a, "import", tmp_job_file([job("team-a-imp-4"), bad]))
        assert refused.returncode == 5, refused.stderr
        assert "Permission denied" in refused.stderr
    names = {j["name"] for j in http(cluster, "GET", "/v1/jobs", cluster.management_token).json()}
    assert {"team-a-imp-1", "team-a-imp-2"} <= names and not {"team-a-imp-3", "team-a-imp-4", "team-b-imp"} & names
    audit = http(cluster, "GET", "/v1/audit?limit=1000", cluster.management_token).json()
    batch = [e for e in audit if e["op"] == "job.put_batch" and e["who"] == made["AccessorID"]]
    assert [e["target"] for e in batch] == ["2 jobs"]  # one entry, so one row
    assert batch[0]["change"] == {"created": ["team-a-imp-1", "team-a-imp-2"], "updated": []}
    # An update of a job the token may only read is refused too, whatever is new beside it.
    policy(cluster, "read-only", RO)
    ro = token(cluster, "read-only")["SecretID"]
    assert ctl(cluster, ro, "import", tmp_job_file([job("team-a-imp-1", command="id")])).returncode == 5


def test_a_deleted_token_and_an_expired_one_fail_on_every_server_within_a_second(cluster):
    policy(cluster, "read-only", RO)
    doomed = token(cluster, "read-only")
    for server in SERVERS:
        assert http(cluster, "GET", "/v1/jobs", doomed["SecretID"], server=server).status_code == 200
        assert ctl(cluster, doomed["SecretID"], "jobs", server=server).returncode == 0
    deleted = http(cluster, "DELETE", f"/v1/acl/tokens/{doomed['AccessorID']}", cluster.management_token)
    assert deleted.status_code == 200, deleted.text
    stopped_by(cluster, doomed["SecretID"], time.monotonic() + 1)

    short = token(cluster, "read-only", ExpirationTTL="5s")
    assert ctl(cluster, short["SecretID"], "jobs", server="s3").returncode == 0
    for server in SERVERS:
        assert http(cluster, "GET", "/v1/jobs", short["SecretID"], server=server).status_code == 200
    expires_at = time.monotonic() + short["ExpirationTime"] / 1000 - time.time()
    time.sleep(max(0, expires_at - time.monotonic()))
    stopped_by(cluster, short["SecretID"], expires_at + 1)


def stopped_by(cluster, secret, deadline):
    """Every server's API answers 401 to the token, and pykronctl is refused, before the deadline."""
    left = set(SERVERS)
    while left and time.monotonic() < deadline:
        codes = {s: http(cluster, "GET", "/v1/jobs", secret, server=s).status_code for s in left}
        left = {s for s, code in codes.items() if code != 401}
    assert not left, f"the token still works on {sorted(left)}: {codes}"
    for server in SERVERS:
        done = ctl(cluster, secret, "jobs", server=server)
        assert done.returncode in (4, 5), done.stderr  # refused by the ACL, or its key cut off at the handshake


def tmp_job_file(doc):
    import tempfile
    fh = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(doc, fh)
    fh.close()
    return fh.name


def test_a_secret_in_a_jobs_config_is_used_but_never_shown_exported_or_logged(cluster):
    secret = "pw-" + os.urandom(8).hex()
    drop = tempfile.mkdtemp(prefix="pk-acl-")
    os.chmod(drop, 0o777)  # the job runs as [executor] run_as (nobody)
    got = os.path.join(drop, "got")
    # env is a secret key in this cluster ([security] secret_keys), password one by default.
    doc = {"name": "team-a-secret", "schedule": "@manually", "executor": "shell",
           "executor_config": {"command": f'printf %s "$PW" > {got}', "shell": "true", "env": f"PW={secret}", "password": secret}}
    mgmt = cluster.management_token
    created = http(cluster, "POST", "/v1/jobs", mgmt, json=doc)
    assert created.status_code == 201 and secret not in created.text
    shown = [http(cluster, "GET", "/v1/jobs/team-a-secret", mgmt, server=s).text for s in SERVERS]
    shown.append(http(cluster, "GET", "/v1/jobs", mgmt).text)
    shown.append(ctl(cluster, mgmt, "--json", "job", "team-a-secret").stdout)
    export = os.path.join(drop, "export.json")
    assert ctl(cluster, mgmt, "export", export).returncode == 0
    shown.append(open(export).read())
    for text in shown:
        assert secret not in text and "<redacted>" in text
    # A toggle (which writes back what it read) keeps the secret, and the run still uses it.
    assert http(cluster, "POST", "/v1/jobs/team-a-secret/toggle", mgmt).status_code == 200
    assert http(cluster, "POST", "/v1/jobs/team-a-secret/toggle", mgmt).status_code == 200
    ran = http(cluster, "POST", "/v1/jobs/team-a-secret/run", mgmt)
    assert ran.status_code == 202 and secret not in ran.text
    deadline = time.monotonic() + 30
    while not os.path.exists(got) and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = http(cluster, "GET", "/v1/jobs/team-a-secret/executions", mgmt).text
    assert os.path.exists(got) and open(got).read() == secret, runs
    # Management may see it on request; a scoped token may not.
    assert secret in http(cluster, "GET", "/v1/jobs/team-a-secret?secrets=true", mgmt).text
    assert secret in ctl(cluster, mgmt, "--json", "job", "team-a-secret", "--secrets").stdout
    policy(cluster, "team-a", TEAM_A)
    a = token(cluster, "team-a")["SecretID"]
    assert http(cluster, "GET", "/v1/jobs/team-a-secret?secrets=true", a).status_code == 403
    assert secret not in ctl(cluster, a, "--json", "job", "team-a-secret", "--secrets").stdout
    for name in SERVERS:
        for service in ("raft", "scheduler", "dispatcher", "executor", "api", "gossip"):
            assert secret not in cluster.log(name, service), (name, service)


def test_an_agent_serves_a_runs_output_only_to_a_token_that_may_read_its_job(cluster):
    """The executor's full output, served outside Raft by the node that ran it (an agent, which
    learns the ACL from the leader's dispatcher), is judged by the job of the execution."""
    from common import keys
    from common.client import Client
    from scripts.cluster import wait_until

    mgmt, s1 = cluster.client("s1"), cluster.nodes["s1"]
    for name in ("team-a-on-agent", "team-b-on-agent"):
        mgmt.put_job({"name": name, "schedule": "@manually", "executor": "shell", "tags": {"server": "false:1"},
                      "executor_config": {"command": f"echo out-of-{name}"}})
        mgmt.run(name)
    done = {name: wait_until(lambda name=name: [x for x in mgmt.executions(name) if x["status"] == "success"],
                             timeout=30, what=f"{name} finished") [0] for name in ("team-a-on-agent", "team-b-on-agent")}
    assert {x["node"] for x in done.values()} == {"a1"}
    # Finding the node that ran it reads the member list, a right of its own.
    policy(cluster, "team-a-output", {"path": {**TEAM_A["path"], "/v1/members": {"capabilities": ["read"]}}})
    scoped = Client(s1.server, keypair=keys.token_keypair(token(cluster, "team-a-output")["SecretID"]),
                    server_key=s1.key)
    try:
        assert b"out-of-team-a-on-agent" in scoped.output(done["team-a-on-agent"])["data"]
        with pytest.raises(errors.Forbidden):
            scoped.output(done["team-b-on-agent"])
    finally:
        scoped.close()


def test_every_write_is_in_the_audit_with_its_accessor(cluster):
    """Run last: the writes of the tests before, by HTTP and by pykronctl, each under its token."""
    policy(cluster, "team-a", TEAM_A)
    made = token(cluster, "team-a")
    a = made["SecretID"]
    assert http(cluster, "POST", "/v1/jobs", a, json=job("team-a-audited")).status_code == 201
    assert ctl(cluster, a, "delete", "team-a-audited").returncode == 0
    mgmt_accessor = json.loads(ctl(cluster, cluster.management_token, "--json", "acl", "token", "list").stdout)
    mgmt_accessor = next(t["AccessorID"] for t in mgmt_accessor if t["Type"] == "management")
    listed = http(cluster, "GET", "/v1/audit?limit=1000", cluster.management_token, server="s2")
    assert listed.status_code == 200
    entries = listed.json()
    assert int(listed.headers["X-Total-Count"]) == len(entries)
    mine = [(e["who"], e["op"], e["target"]) for e in entries if e["target"] == "team-a-audited"]
    assert mine == [(made["AccessorID"], "job.delete", "team-a-audited"), (made["AccessorID"], "job.put", "team-a-audited")]
    # The writes of the earlier tests: policies and tokens by the management token, the scoped
    # token's own job writes, the bootstrap by the launcher's node.
    by_op = {(e["op"], e["target"]): e["who"] for e in entries}
    assert by_op[("policy.put", "team-a")] == mgmt_accessor
    assert by_op[("token.put", made["AccessorID"])] == mgmt_accessor
    assert by_op[("job.put", "team-a-1")] == mgmt_accessor
    assert by_op[("acl.bootstrap", mgmt_accessor)].startswith("node:")
    assert {e["who"] for e in entries if e["op"] == "job.put" and e["target"] == "team-a-3"} != {mgmt_accessor}
    assert all(e["at"].endswith("Z") for e in entries)
    # Every policy and token this module made was made with the management token, over HTTP.
    assert {e["who"] for e in entries if e["op"] in ("policy.put", "token.put", "token.delete")} == {mgmt_accessor}
    assert all(e["who"] for e in entries)
    # pykronctl audit shows the same, and a token without the right may not read it.
    shown = json.loads(ctl(cluster, cluster.management_token, "--json", "audit", "--limit", "5").stdout)
    assert [e["seq"] for e in shown] == [e["seq"] for e in entries[:5]]
    assert ctl(cluster, a, "audit").returncode == 5
    assert http(cluster, "GET", "/v1/audit", a).status_code == 403
