"""Dkron's job resources: list, create-or-update (POST, PATCH, PUT), show, delete, run now and
toggle. Writes go to the node's raft client port through the client library; the server
validates the job and answers once the change is committed."""

from __future__ import annotations

import logging

import falcon

from common.errors import Error
from common.loop import now_ms
from services.api import dkron, hooks

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        now = now_ms()
        docs = [dkron.job_json(j, now) for j in self.node.client.jobs(stale="stale" in req.params)]
        page, total = dkron.filter_jobs(req, docs)
        resp.set_header("X-Total-Count", str(total))
        dkron.render(req, resp, page)

    def on_post(self, req, resp):
        """Create or replace (Dkron's upsert by name). Answers with the job as stored, so
        `next`, counters and `status` are real values rather than echoes of the request."""
        hooks.text_errors(req)
        job = self.node.client.put_job(dkron.read_json(req))
        if "runoncreate" in req.params:
            try:
                self.node.client.run(job["name"])
            except Error as err:
                # The job is stored either way, and Dkron runs it in the background, ignoring
                # failures: a failed run must not turn a successful write into an error.
                log.warning("runoncreate failed job=%s: %s", job["name"], err)
        resp.set_header("Location", f"/v1/jobs/{job['name']}")
        dkron.render(req, resp, dkron.job_json(job, now_ms()), falcon.HTTP_201)

    on_patch = on_post  # Dkron: the same handler, a full replace rather than a merge


class Job:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, job_name):
        job = self.node.client.job(job_name, stale="stale" in req.params)
        dkron.render(req, resp, dkron.job_json(job, now_ms()))

    def on_put(self, req, resp, job_name):
        Jobs(self.node).on_post(req, resp)  # Dkron's UI edits this way; the body's name wins

    def on_delete(self, req, resp, job_name):
        dkron.render(req, resp, dkron.job_json(self.node.client.delete_job(job_name), now_ms()))

    def on_post(self, req, resp, job_name):
        """Run now. Answers 202 once the run is claimed in the Raft log, never waiting for it
        to finish (Dkron waits, which ties an HTTP request to a job's run time)."""
        job = self.node.client.job(job_name)
        self.node.client.run(job_name)
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
