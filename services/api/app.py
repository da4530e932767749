"""The api's Falcon application: `create_app()` is what gunicorn loads (the Procfile's factory
form). Each worker makes its own client after the fork, since a ZeroMQ context must not cross one."""

from __future__ import annotations

import os
import threading

import falcon

from common import config, wire
from common.client import Client
from services.api import executions, hooks, jobs, members


class ApiState:
    """What every resource shares: the node config and a client made lazily in this process."""

    def __init__(self, conf, client=None):
        self.conf = conf
        self._client, self._pid = client, os.getpid() if client else None
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = Client(config.ipc(self.conf, "raft", "client"),
                                          timeout_ms=self.conf.wire.call_timeout_ms,
                                          sender=f"api:{self.conf.node.name}")
                    self._pid = os.getpid()
        return self._client


def create_app(conf=None, client=None):
    conf = conf or config.load(os.environ.get("PYKRON_CONF") or None)
    wire.set_max_frame_bytes(conf.wire.max_message_bytes)
    state = ApiState(conf, client)
    app = falcon.App(middleware=[hooks.Meta(conf.node.name), hooks.Token(conf.security.token)])
    app.req_options.strip_url_path_trailing_slash = True
    hooks.install(app)
    app.add_route("/health", members.Health(state))
    app.add_route("/v1", members.Status(state))
    app.add_route("/v1/members", members.Members(state))
    app.add_route("/v1/leader", members.Leader(state))
    app.add_route("/v1/isleader", members.IsLeader(state))
    app.add_route("/v1/busy", executions.Busy(state))
    app.add_route("/v1/jobs", jobs.Jobs(state))
    app.add_route("/v1/jobs/{job_name}", jobs.Job(state))
    app.add_route("/v1/jobs/{job_name}/run", jobs.JobRun(state))
    app.add_route("/v1/jobs/{job_name}/toggle", jobs.Toggle(state))
    app.add_route("/v1/jobs/{job_name}/executions", executions.Executions(state))
    app.add_route("/v1/jobs/{job_name}/executions/{execution}", executions.Execution(state))
    return app
