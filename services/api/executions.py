"""Dkron's execution resources: a job's executions (list with X-Total-Count and
`output_size_limit`; delete), one execution with its full output (from the node that ran it),
the running ones (busy), and pykron's kill of one running execution or all of a job's."""

from __future__ import annotations

import logging

import falcon

from common import errors, models
from common.loop import now_ms
from services.api import dkron

log = logging.getLogger(__name__)


class Executions:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, job_name):
        limit = dkron.output_limit(req)
        records = self.node.client.executions(job_name, stale="stale" in req.params)
        docs = []
        for record in records:
            doc = models.execution_to_dkron(record)
            if limit is not None:
                doc["output"], cut = models.tail(doc["output"], limit)
                doc["output_truncated"] = doc["output_truncated"] or cut
            docs.append(doc)
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, dkron.sort_executions(req, docs, records))

    def on_delete(self, req, resp, job_name):
        """Dkron's DELETE: every execution of the job goes, its counters reset; → the job."""
        job = self.node.client.delete_executions(job_name)
        dkron.render(req, resp, dkron.job_json(job, now_ms()))


class Execution:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, job_name, execution):
        record = self.node.client.execution(job_name, execution, stale="stale" in req.params)
        doc = models.execution_to_dkron(record)
        if record["output_truncated"]:
            try:
                full = self.node.client.output(record)
            except errors.Error as err:
                # The node that ran it is gone or busy: the replicated tail is what there is.
                log.info("full output unavailable id=%s node=%s: %s", record["id"], record["node"], err)
            else:
                doc["output"] = full["data"].decode(errors="replace")
                doc["output_truncated"] = full["size"] > len(full["data"])
        dkron.render(req, resp, doc)


class Kill:
    """POST /v1/jobs/{job}/executions/{id}/kill (one run) and POST /v1/jobs/{job}/kill (every
    running one): the executor kills the process group and the run is recorded as killed.
    202 at once with {"killed": [ids]}; each record turns to killed when the kill lands."""

    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp, job_name, execution=None):
        self.node.client.job(job_name)  # an unknown job is a 404, not an empty kill
        done = self.node.client.kill(job_name, execution)
        dkron.render(req, resp, {"killed": list(done.get("killed", []))}, falcon.HTTP_202)


class Busy:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        grants = req.context.grants
        records = sorted((x for x in self.node.client.busy() if grants.readable(x["job"])),
                         key=lambda x: x["group"])  # Dkron: oldest first
        docs = [models.execution_to_dkron(x) for x in records]
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, docs)
