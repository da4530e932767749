"""Dkron's execution resources: a job's executions (newest first, X-Total-Count,
`output_size_limit` keeping the tail) and one execution with its full output, fetched from the
node that ran it when the replicated record holds only the tail."""

from __future__ import annotations

from common import errors, models
from services.api import dkron


class Executions:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp, job_name):
        records = self.state.client.executions(job_name, stale="stale" in req.params)
        limit = req.get_param("output_size_limit")
        if limit is not None and not limit.isdigit():
            raise errors.BadRequest(f"output_size_limit: expected a whole number, got {limit!r}")
        docs = []
        for record in records:
            doc = models.execution_to_dkron(record)
            if limit is not None:
                doc["output"], cut = models.tail(doc["output"], int(limit))
                doc["output_truncated"] = doc["output_truncated"] or cut
            docs.append(doc)
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, docs)


class Execution:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp, job_name, execution):
        record = self.state.client.execution(job_name, execution)
        doc = models.execution_to_dkron(record)
        if record["output_truncated"]:
            try:
                full = self.state.client.output(record)
                doc["output"], doc["output_truncated"] = full["data"].decode(errors="replace"), full["size"] > len(full["data"])
            except errors.Error:
                pass  # the node that ran it is gone: the tail is what there is
        dkron.render(req, resp, doc)


class Busy:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        docs = [models.execution_to_dkron(x) for x in self.state.client.busy()]
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, docs)
