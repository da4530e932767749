"""What every request needs under the ACL (common/acl.py): one table for the message types of
the wire, one for the api's HTTP routes, each mapping to a (path, capability) in Dkron's path
space, so that a pykronctl verb and its HTTP twin need the same right. A type or route missing
from its table is refused, and a test walks both against the wire and the app."""

from __future__ import annotations

from common import errors
from common.acl import ANY, NODE, OPEN, REPLY, WRITE, Need

JOBS = "/v1/jobs"
JOB = "/v1/jobs/{name}"
EXECUTIONS = "/v1/jobs/{job}/executions"

# type → Need, or (path template, capability) filled from the message's fields (and, for
# output.get, the job its executor looks up). Lists answer only what the caller may read.
MESSAGES = {
    "ok": REPLY, "error": REPLY, "ctl.status": NODE,
    "node.info": ANY, "leader.get": ANY,
    "job.put": ("/v1/jobs/{job[name]}", WRITE), "job.put_batch": NODE,  # each job judged as a job.put (EACH)
    "job.delete": (JOB, "delete"), "job.get": (JOB, "read"),
    "job.list": (JOBS, "list"),
    "exec.list": (EXECUTIONS, "list"), "exec.get": (EXECUTIONS + "/{id}", "read"),
    "exec.delete_all": (EXECUTIONS, "delete"),
    "settings.get": ("/v1/settings", "read"), "settings.put": ("/v1/settings/{key}", "update"),
    "note.put": ("/v1/settings/note", "update"),
    "keys.list": ("/v1/keys", "list"), "key.accept": ("/v1/keys/{name}", "update"),
    "key.reject": ("/v1/keys/{name}", "update"),
    "snapshot.save": ("/v1/snapshot", "read"),  # the whole state, token hashes included: grant it with care
    "snapshot.restore": ("/v1/snapshot", "update"),  # replaces the state: tokens and policies included
    "raft.peers": ("/v1/raft", "read"), "raft.add_peer": ("/v1/raft", "update"),
    "raft.remove_peer": ("/v1/raft", "update"), "raft.transfer": ("/v1/raft", "update"),
    # The dispatcher's verbs, served outside Raft, and the executor's full output.
    "job.run": (JOB, "update"), "exec.kill": ("/v1/jobs/{job}", "update"), "busy.list": ("/v1/busy", "list"),
    "output.get": (EXECUTIONS + "/{id}", "read"),
    # Gossip's verbs on the query port.
    "member.list": ("/v1/members", "read"), "member.leave": ("/v1/members", "update"),
    "event.fire": ("/v1/events", "create"),
    "keyring.list": ("/v1/keyring", "list"), "keyring.install": ("/v1/keyring", "update"),
    "keyring.use": ("/v1/keyring", "update"), "keyring.remove": ("/v1/keyring", "update"),
    # The ACL itself. Bootstrap is open, as Consul's: it works once, for whoever comes first.
    "acl.bootstrap": OPEN, "acl.view": NODE, "audit.list": ("/v1/audit", "read"),
    "token.create": ("/v1/acl/tokens", "create"), "token.list": ("/v1/acl/tokens", "list"),
    "token.get": ("/v1/acl/tokens/{accessor}", "read"), "token.delete": ("/v1/acl/tokens/{accessor}", "delete"),
    "policy.put": ("/v1/acl/policies/{name}", WRITE), "policy.list": ("/v1/acl/policies", "list"),
    "policy.get": ("/v1/acl/policies/{name}", "read"), "policy.delete": ("/v1/acl/policies/{name}", "delete"),
    # Between the services and nodes of the cluster only.
    **dict.fromkeys(("run.claim", "run.record", "run.skip", "tick.skip", "tick.fire", "server.register",
                     "exec.unfinished", "raft.leader", "job.changed", "dispatcher.heartbeat", "keys.book",
                     "run.start", "run.kill", "run.ack", "exec.output", "exec.result", "exec.heartbeat",
                     "member.event", "event.received", "gossip.ping", "gossip.ping_req", "gossip.ack",
                     "gossip.nack", "gossip.broadcast", "gossip.sync", "gossip.sealed", "raft.vote",
                     "raft.vote_resp", "raft.append", "raft.append_resp", "raft.prop", "raft.snapshot",
                     "raft.snap_chunk", "raft.timeout_now", "raft.join", "raft.join_resp", "raft.read_index",
                     "raft.read_index_resp"), NODE),
}

# A batch needs, for each item of its list, what the single message of that item needs.
EACH = {"job.put_batch": ("jobs", "job", "job.put")}

# (method, Falcon route template) → Need or (path template, capability) filled from the
# route's parameters. BODY: the resource judges each job of the body itself (its name is there).
BODY = Need("", "body")
ROUTES = {
    ("GET", "/"): OPEN, ("GET", "/ui"): OPEN, ("GET", "/ui/{name}"): OPEN, ("GET", "/health"): OPEN,
    ("GET", "/v1/openapi.yaml"): OPEN,
    ("GET", "/metrics"): ("/v1/metrics", "read"),
    ("GET", "/v1"): ANY, ("GET", "/v1/leader"): ANY, ("GET", "/v1/isleader"): ANY, ("GET", "/v1/schedule"): ANY,
    ("GET", "/v1/members"): ("/v1/members", "read"), ("POST", "/v1/leave"): ("/v1/members", "update"),
    ("GET", "/v1/busy"): ("/v1/busy", "list"),
    ("GET", "/v1/pause"): ("/v1/settings", "read"), ("POST", "/v1/pause"): ("/v1/settings/paused", "update"),
    ("POST", "/v1/unpause"): ("/v1/settings/paused", "update"),
    ("GET", "/v1/settings"): ("/v1/settings", "read"), ("PUT", "/v1/settings"): BODY,
    ("POST", "/v1/restore"): BODY,
    ("GET", "/v1/jobs"): (JOBS, "list"), ("POST", "/v1/jobs"): BODY, ("PATCH", "/v1/jobs"): BODY,
    ("GET", "/v1/jobs/{job_name}"): ("/v1/jobs/{job_name}", "read"),
    ("PUT", "/v1/jobs/{job_name}"): BODY,
    ("DELETE", "/v1/jobs/{job_name}"): ("/v1/jobs/{job_name}", "delete"),
    ("POST", "/v1/jobs/{job_name}"): ("/v1/jobs/{job_name}", "update"),
    ("POST", "/v1/jobs/{job_name}/run"): ("/v1/jobs/{job_name}", "update"),
    ("POST", "/v1/jobs/{job_name}/toggle"): ("/v1/jobs/{job_name}", "update"),
    ("POST", "/v1/jobs/{job_name}/kill"): ("/v1/jobs/{job_name}", "update"),
    ("GET", "/v1/jobs/{job_name}/executions"): ("/v1/jobs/{job_name}/executions", "list"),
    ("DELETE", "/v1/jobs/{job_name}/executions"): ("/v1/jobs/{job_name}/executions", "delete"),
    ("GET", "/v1/jobs/{job_name}/executions/{execution}"): ("/v1/jobs/{job_name}/executions/{execution}", "read"),
    ("POST", "/v1/jobs/{job_name}/executions/{execution}/kill"): ("/v1/jobs/{job_name}", "update"),
    ("GET", "/v1/jobs/{job_name}/executions/{execution}/output"):
        ("/v1/jobs/{job_name}/executions/{execution}", "read"),
    ("POST", "/v1/acl/bootstrap"): OPEN,
    ("GET", "/v1/acl/policies"): ("/v1/acl/policies", "list"),
    ("GET", "/v1/acl/policies/{name}"): ("/v1/acl/policies/{name}", "read"),
    ("POST", "/v1/acl/policies/{name}"): ("/v1/acl/policies/{name}", WRITE),
    ("PUT", "/v1/acl/policies/{name}"): ("/v1/acl/policies/{name}", WRITE),
    ("DELETE", "/v1/acl/policies/{name}"): ("/v1/acl/policies/{name}", "delete"),
    ("GET", "/v1/acl/tokens"): ("/v1/acl/tokens", "list"), ("POST", "/v1/acl/tokens"): ("/v1/acl/tokens", "create"),
    ("GET", "/v1/acl/tokens/{accessor}"): ("/v1/acl/tokens/{accessor}", "read"),
    ("DELETE", "/v1/acl/tokens/{accessor}"): ("/v1/acl/tokens/{accessor}", "delete"),
    ("GET", "/v1/acl/token/self"): ANY,
    ("GET", "/v1/audit"): ("/v1/audit", "read"),
}


def for_message(type_name, fields):
    """The Need of a message of `type_name` with these fields; unmapped types are NODE's. A
    batch of EACH is judged by the items judged() gives; its own entry says who else may send it."""
    return _fill(MESSAGES.get(type_name, NODE), fields)


def judged(type_name, fields):
    """The (type, fields) pairs a message is judged as: itself, or each item of a batch as the
    single message it stands for (a restore's jobs, each a job.put of its own)."""
    if type_name not in EACH:
        return [(type_name, fields)]
    listed, field, single = EACH[type_name]
    items = fields.get(listed)
    if not isinstance(items, list):
        raise errors.BadRequest(f"{type_name}: {listed} must be a list")
    return [(single, {**fields, field: item}) for item in items]


def for_route(method, template, params):
    """The Need of an HTTP request; an unmapped route needs a node (so nobody from outside)."""
    return _fill(ROUTES.get((method, template), NODE), params)


def run_as(job):
    """What a job that names a user to run as (its executor_config's su) needs besides its own
    write: update on /v1/su/<user>. None when it names none: it runs as [executor] run_as."""
    config = job.get("executor_config") if isinstance(job, dict) else None
    su = config.get("su") if isinstance(config, dict) else None
    if not su:
        return None
    return Need(f"/v1/su/{str(su).partition(':')[0]}", "update")


def job_path(name, under=""):
    return f"/v1/jobs/{name}{under}"


def _fill(entry, fields):
    if isinstance(entry, Need):
        return entry
    template, capability = entry
    try:
        return Need(template.format_map(fields), capability)
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        raise errors.BadRequest(f"cannot tell what {template} this request is for") from None
