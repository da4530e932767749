"""Dkron's job resources: list, create-or-update (POST, PATCH, PUT), show, delete, run now,
toggle and restore. Writes go to the node's raft client port through the client library; the
server validates the job and answers once the change is committed."""

from __future__ import annotations

import logging

import falcon

from common import acl, errors, needs, shell_syntax
from common.errors import Error
from common.loop import now_ms
from services.api import dkron, hooks, settings

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        # The node's raft lists only what the request's token may read (the client acts for it).
        page, total = dkron.list_jobs(req, self.node.client, now_ms())
        resp.set_header("X-Total-Count", str(total))
        dkron.render(req, resp, page)

    def on_post(self, req, resp):
        """Create or replace (Dkron's upsert by name). Answers with the job as stored, so
        `next`, counters and `status` are real values rather than echoes of the request."""
        hooks.text_errors(req)
        doc = dkron.read_json(req)
        if not isinstance(doc, dict):  # the wire carries a job as a map: say so here, not as a timeout
            raise errors.BadRequest("Unable to parse payload: a job must be a JSON object.")
        may_write(req, self.node, doc)
        settings.refuse_when_paused(self.node)
        job = self.node.client.put_job(doc)
        if "runoncreate" in req.params:
            try:
                self.node.client.run(job["name"])
            except Error as err:
                # The job is stored either way, and Dkron runs it in the background, ignoring
                # failures: a failed run must not turn a successful write into an error.
                log.warning("runoncreate failed job=%s: %s", job["name"], err)
        resp.set_header("Location", f"/v1/jobs/{job['name']}")
        text = shell_syntax.warning(doc)
        if text:  # stored as Dkron would; the caller is told its runs would not do what it reads as
            resp.set_header("Warning", http_warning(text))
        dkron.render(req, resp, dkron.job_json(job, now_ms()), falcon.HTTP_201)

    on_patch = on_post  # Dkron: the same handler, a full replace rather than a merge


class Job:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, job_name):
        """?secrets=true shows executor_config's secret values, to a management token only."""
        reveal = req.get_param_as_bool("secrets") or False
        if reveal and not req.context.grants.everything:
            raise errors.Forbidden("only a management token sees a job's secret values")
        job = self.node.client.job(job_name, stale="stale" in req.params, **({"secrets": True} if reveal else {}))
        dkron.render(req, resp, dkron.job_json(job, now_ms()))

    def on_put(self, req, resp, job_name):
        Jobs(self.node).on_post(req, resp)  # Dkron's UI edits this way; the body's name wins

    def on_delete(self, req, resp, job_name):
        dkron.render(req, resp, dkron.job_json(self.node.client.delete_job(job_name), now_ms()))

    def on_post(self, req, resp, job_name):
        """Run now. Answers 202 once the run is claimed in the Raft log, never waiting for it
        to finish (Dkron waits, which ties an HTTP request to a job's run time)."""
        job = self.node.client.run(job_name).job  # read once, by the dispatcher, for the claim
        resp.set_header("Location", f"/v1/jobs/{job_name}")
        dkron.render(req, resp, dkron.job_json(job, now_ms()), falcon.HTTP_202)


class Run:
    """POST /v1/jobs/{job}/run: the same run-now as POST /v1/jobs/{job}, and nothing else."""

    def __init__(self, node):
        self.node = node

    on_post = Job.on_post


class Toggle:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp, job_name):
        now = now_ms()
        doc = dkron.job_json(self.node.client.job(job_name), now)
        doc["disabled"] = not doc["disabled"]
        dkron.render(req, resp, dkron.job_json(self.node.client.put_job(doc), now))


# A restore's bounds: room for 100,000 jobs of 1 KiB with some to spare (each job is bounded on
# its own by [api] max_job_bytes, as any other write).
RESTORE_MAX_BYTES = 256 * 1024 * 1024
RESTORE_MAX_JOBS = 200_000


class Restore:
    """Dkron's POST /v1/restore: multipart field `file`, a JSON array of jobs, created or
    replaced parents first. The whole file is checked before anything is stored (400); the
    answer lists "success create NAME" or "fail create NAME: why" per job, as a JSON array
    (Dkron sends that array encoded once more, as a JSON string; the spec shows the array)."""

    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        docs = _restore_file(req)
        for doc in docs:  # every job of the file, before any is stored
            may_write(req, self.node, doc)
        results = self.node.client.restore(docs)
        dkron.render(req, resp, [f"success create {name}" if error is None else f"fail create {name}: {error}"
                                 for name, error in results])


def http_warning(text):
    """RFC 7234's Warning: code 299 (a persistent warning), no agent, the text a quoted string."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def may_write(req, node, doc):
    """The ACL's check of a job write, whose name is in the body: create when the job is new,
    update when it exists (a job the token may not read is "new" to it only by this lookup)."""
    grants = req.context.grants
    if grants.everything:
        return
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise errors.BadRequest("Job validation failed: name is required.")
    try:
        exists = node.client.job(name, stale=True) is not None
    except errors.NotFound:
        exists = False
    grants.require(needs.job_path(name), acl.WRITE, exists=exists)
    su = needs.run_as(doc)
    if su is not None:  # who it runs as is a right of its own
        grants.require(su.path, su.capability)


def _restore_file(req):
    if not (req.content_type or "").startswith("multipart/form-data"):
        raise errors.BadRequest("expected multipart/form-data with the jobs in a field named file")
    if req.content_length and req.content_length > RESTORE_MAX_BYTES + 64 * 1024:
        raise errors.BadRequest(f"file over {RESTORE_MAX_BYTES} bytes")
    try:
        data = next((part.get_data() for part in req.get_media() if part.name == "file"), None)
    except falcon.MediaMalformedError as exc:
        raise errors.BadRequest(f"unreadable multipart body: {exc.description or exc.title}") from None
    if data is None:
        raise errors.NotFound("no field named file in the form (Dkron answers 404 too)")
    if len(data) > RESTORE_MAX_BYTES:
        raise errors.BadRequest(f"file over {RESTORE_MAX_BYTES} bytes")
    docs = dkron.parse_json(data, "file is not JSON")
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise errors.BadRequest("file must hold a JSON array of job objects")
    if len(docs) > RESTORE_MAX_JOBS:
        raise errors.BadRequest(f"file holds {len(docs)} jobs, over the maximum of {RESTORE_MAX_JOBS}")
    return docs
