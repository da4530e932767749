"""The fake of common.client.Client for the api's unit tests: jobs, executions and members in
memory, every call recorded, and whatever error a test asks of one verb (the only place in the
suite where a fake stands in for the ZeroMQ client)."""

from __future__ import annotations

import dataclasses

from common import acl, config, errors, messages as m, models
from common.client import Client

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SHELL = {"executor": "shell", "executor_config": {"command": "true"}}


def member(name, *, role="server", status="alive", tags=None):
    return {"name": name, "addr": "10.0.0.1", "port": 8946, "status": status, "role": role,
            "tags": {"role": "pykron", "server": str(role == "server").lower(), **(tags or {})},
            "addrs": {"raft": f"tcp://{name}:8191"}, "executors": ["shell"], "protocol": [1, 1]}


def execution(job, started_at, *, node="s1", status="success", output="ok\n", truncated=False, attempt=1):
    """A finished (or, with started_at None, claimed) execution record as Raft stores it."""
    group = (started_at or NOW) * 1_000_000
    ex = models.new_execution(job, node, group=group, scheduled_at=started_at or NOW, attempt=attempt)
    finished = started_at is not None and status not in models.RUNNING
    return {**ex, "status": status, "started_at": started_at, "output": output, "output_truncated": truncated,
            "finished_at": started_at + 500 if finished else None, "success": status == "success",
            "exit_code": 0 if finished else None}


class FakeClient:
    """The client library's verbs over plain dicts. `fail[verb] = err` makes that verb raise."""

    def __init__(self):
        self.stored = {}
        self.records = {}  # job name → execution records, newest first, as Raft lists them
        self.outputs = {}  # execution id → full output bytes, as the executing node keeps them
        self.running = []
        self.member_list = [member("s1"), member("s2"), member("a1", role="agent")]
        self.info = {"node": "s1", "role": "server", "addrs": {},
                     "leader": {"node": "s1", "term": 3, "addrs": {}, "ready": True}}
        self.settings_map = {"untagged_jobs": "one", "default_timezone": "", "paused": "false"}
        self.services = {}  # service → ctl.status reply; a service not here does not answer
        self.calls = []
        self.fail = {}
        self.view = acl.View()  # the ACL off, until a test bootstraps one

    def _enter(self, verb, *args):
        self.calls.append((verb, *args))
        if verb in self.fail:
            raise self.fail[verb]

    def add(self, doc, **state):
        """Store a job as if it had been put earlier, with counters and status as given."""
        job = {**models.validate_job({**SHELL, **doc}, now=NOW), **models.JOB_STATE, **state}
        self.stored[job["name"]] = job
        return job

    def jobs(self, stale=False):
        self._enter("jobs", stale)
        return [j for j in self.stored.values() if self._readable(j["name"])]

    def job_page(self, offset, limit, stale=False):
        self._enter("job_page", offset, limit, stale)
        ordered = sorted((j for j in self.stored.values() if self._readable(j["name"])), key=lambda j: j["name"])
        return ordered[offset:offset + limit], len(ordered)

    def _readable(self, name):
        """As the raft service answers a node's api acting for a token: only what it may read."""
        by = getattr(self, "acting", "")
        if by not in self.view.tokens and by != "anonymous":
            return True
        caller = acl.Caller("token", by) if by in self.view.tokens else acl.Caller("anonymous")
        return acl.unrestricted(self.view, caller) or acl.can_read(self.view, caller, f"/v1/jobs/{name}", 0)

    def job(self, name, stale=False):
        self._enter("job", name)
        if name not in self.stored:
            raise errors.NotFound(f"job {name!r} not found")
        return self.stored[name]

    def put_job(self, doc):
        self._enter("put_job", doc)
        job = models.validate_job(doc, now=NOW)
        if job["parent_job"] and job["parent_job"] not in self.stored:
            raise errors.NotFound("specified parent job not found")
        kept = {k: self.stored.get(job["name"], {}).get(k, v) for k, v in models.JOB_STATE.items()}
        self.stored[job["name"]] = {**job, **kept}
        return self.stored[job["name"]]

    def delete_job(self, name):
        self._enter("delete_job", name)
        if name not in self.stored:
            raise errors.NotFound(f"job {name!r} not found")
        return self.stored.pop(name)

    def executions(self, name, limit=100, stale=False):
        self._enter("executions", name)
        if name not in self.stored:
            raise errors.NotFound(f"job {name!r} not found")
        return self.records.get(name, [])[:limit]

    def execution(self, name, execution_id, stale=False):
        self._enter("execution", name, execution_id)
        found = [x for x in self.records.get(name, []) if x["id"] == execution_id]
        if not found:
            raise errors.NotFound(f"execution {execution_id!r} not found")
        return found[0]

    def output(self, execution, offset=0):
        self._enter("output", execution["id"])
        data = self.outputs[execution["id"]]
        return {"data": data[offset:], "size": len(data), "finished": True}

    def leader(self):
        self._enter("leader")
        if not self.info["leader"]:
            raise errors.NotLeader("the cluster has no leader")
        return self.info["leader"]

    def members(self):
        self._enter("members")
        return self.member_list

    def node_info(self, refresh=False):
        self._enter("node_info")
        return self.info

    def run(self, name):
        self._enter("run", name)
        if name not in self.stored:
            raise errors.NotFound(f"job {name!r} not found")
        return m.RunStarted(executions=[execution(name, None, status="claimed")], job=self.stored[name])

    def busy(self):
        self._enter("busy")
        return self.running

    def kill(self, job, execution_id=None):
        self._enter("kill", job, execution_id)
        if job not in self.stored:
            raise errors.NotFound(f"job {job!r} not found")
        running = [x for x in self.running if x["job"] == job and execution_id in (None, x["id"])]
        if execution_id is not None and not running:
            raise errors.Conflict(f"execution {execution_id!r} is not running")
        return {"killed": [x["id"] for x in running]}

    def delete_executions(self, job):
        self._enter("delete_executions", job)
        if job not in self.stored:
            raise errors.NotFound(f"job {job!r} not found")
        self.records.pop(job, None)
        self.stored[job] = {**self.stored[job], **models.JOB_STATE}
        return self.stored[job]

    def settings(self, stale=False):
        self._enter("settings")
        return dict(self.settings_map)

    def put_setting(self, key, value):
        self._enter("put_setting", key, value)
        if key not in self.settings_map:
            raise errors.BadRequest(f"unknown setting {key!r}")
        self.settings_map[key] = value
        return dict(self.settings_map)

    def leave(self):
        self._enter("leave")
        return self.member_list

    restore = Client.restore  # the real ordering and checks, over this fake's put_job and jobs
    _put_each = Client._put_each  # the fake's node_info names no protocol: one job to an entry

    def act_for(self, accessor):
        self.acting = accessor

    def acl_view(self):
        return self.view

    def call_once(self, endpoint, msg, *, timeout_ms=None):
        self._enter("call_once", endpoint, msg.TYPE)
        service = endpoint.rsplit("/", 1)[-1].split(".")[0]
        if service not in self.services:
            raise errors.Unavailable(f"no reply from {endpoint}")
        return self.services[service]


def make_conf(name="s1", token="", cors_origins=()):
    conf = config.load(None, env={})
    return dataclasses.replace(conf, node=dataclasses.replace(conf.node, name=name),
                               security=dataclasses.replace(conf.security, token=token),
                               api=dataclasses.replace(conf.api, cors_origins=list(cors_origins)))
