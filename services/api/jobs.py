"""Dkron's job resources: list, create-or-update (POST, PATCH, PUT), show, delete, run now and
toggle. Writes go to the raft client port through the client library, which validates and
answers once the change is committed; a run answers 202 as soon as the tick is claimed."""

from __future__ import annotations

import falcon

from services.api import dkron


class Jobs:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        jobs = [dkron.job_json(j) for j in self.state.client.jobs(stale="stale" in req.params)]
        page, total = dkron.filter_jobs(req, jobs)
        resp.set_header("X-Total-Count", str(total))
        dkron.render(req, resp, page)

    def on_post(self, req, resp):
        req.context["text_errors"] = True  # Dkron's spec: job-write errors are text/plain
        doc = dkron.read_json(req)
        job = self.state.client.put_job(doc)
        if "runoncreate" in req.params:
            self.state.client.run(job["name"])
        resp.set_header("Location", f"{req.path.rstrip('/')}/{job['name']}")
        dkron.render(req, resp, dkron.job_json(job), falcon.HTTP_201)

    on_patch = on_post


class Job:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp, job_name):
        dkron.render(req, resp, dkron.job_json(self.state.client.job(job_name, stale="stale" in req.params)))

    def on_put(self, req, resp, job_name):
        Jobs(self.state).on_post(req, resp)  # Dkron: the body's name wins over the path's

    def on_delete(self, req, resp, job_name):
        dkron.render(req, resp, dkron.job_json(self.state.client.delete_job(job_name)))

    def on_post(self, req, resp, job_name):
        """Run now: answers 202 once the run is claimed; it never waits for the run to end."""
        job = self.state.client.job(job_name)
        self.state.client.run(job_name)
        resp.set_header("Location", req.path)
        dkron.render(req, resp, dkron.job_json(job), falcon.HTTP_202)


class JobRun(Job):
    pass


class Toggle:
    def __init__(self, state):
        self.state = state

    def on_post(self, req, resp, job_name):
        job = self.state.client.job(job_name)
        doc = dkron.job_json(job)
        doc["disabled"] = not job["disabled"]
        dkron.render(req, resp, dkron.job_json(self.state.client.put_job(doc)))
