"""The api's Falcon application: `create_app()` is what gunicorn loads (the Procfile's factory
form). Each worker makes its own client after the fork, since a ZeroMQ context must not cross one."""

from __future__ import annotations

import os
import threading

import falcon

from common import config, keys, log, messages as m, wire
from common.client import Client
from services.api import access, acl, executions, hooks, jobs, members, metrics, output, preview, settings, status, ui


class Node:
    """The node this api fronts: its config, and one client to its raft client port per process.

    gunicorn imports the app in the master and forks workers; the client (and its ZeroMQ
    context) is made on first use in the process that uses it, and again if that process
    turns out to be a fork of the one that made it."""

    def __init__(self, conf, client=None):
        self.conf = conf
        self.injected = client
        self._client, self._pid = None, None
        self._lock = threading.Lock()

    @property
    def client(self):
        if self.injected is not None:
            return self.injected
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    # The node's own key: the api is a service of the node, on its host.
                    self._client = Client(config.ipc(self.conf, "raft", "client"),
                                          timeout_ms=self.conf.wire.call_timeout_ms,
                                          sender=f"api:{self.conf.node.name}",
                                          keypair=keys.node_keypair(self.conf.node.data_dir),
                                          plain=self.conf.wire.plain_tcp)
                    self._pid = os.getpid()
        return self._client

    def ctl(self, service, timeout_ms):
        """ctl.status of one of this node's services, over its ipc control socket."""
        return self.client.call_once(config.ipc(self.conf, service, "ctl"), m.CtlStatus(), timeout_ms=timeout_ms)


def create_app(conf=None, client=None):
    """The WSGI app. conf defaults to the file named by PYKRON_CONF (unset: node.toml's
    defaults), and then logging is set up too; client is for unit tests, which pass a fake
    in place of the ZeroMQ one."""
    if conf is None:
        conf = config.load(os.environ.get("PYKRON_CONF") or None)
        log.setup("api", conf.log.level, conf.log.format)  # under gunicorn: our lines as every service's
    wire.set_max_frame_bytes(conf.wire.max_message_bytes)
    wire.set_protocol(wire.NEXT_PROTOCOL if conf.wire.protocol_next else wire.PROTOCOL)
    node = Node(conf, client)
    app = falcon.App(middleware=[hooks.Meta(conf.node.name, conf.api.cors_origins), access.Guard(node, conf.security.token)])
    app.req_options.strip_url_path_trailing_slash = True  # /v1/ is /v1, as Dkron routes both
    # A restore's file is one part: as large as jobs.RESTORE_MAX_BYTES, where falcon stops at 1 MiB.
    app.req_options.media_handlers[falcon.MEDIA_MULTIPART].parse_options.max_body_part_buffer_size = \
        jobs.RESTORE_MAX_BYTES
    hooks.install(app)
    app.add_route("/", ui.Root())
    app.add_route("/ui", ui.Files())
    app.add_route("/ui/{name}", ui.Files())
    app.add_route("/health", status.Health(node))
    app.add_route("/metrics", metrics.Metrics(node))
    app.add_route("/v1/openapi.yaml", ui.Spec())
    app.add_route("/v1", status.Status(node))
    app.add_route("/v1/members", members.Members(node))
    app.add_route("/v1/leader", members.Leader(node))
    app.add_route("/v1/isleader", members.IsLeader(node))
    app.add_route("/v1/leave", members.Leave(node))
    app.add_route("/v1/busy", executions.Busy(node))
    app.add_route("/v1/pause", settings.Pause(node))
    app.add_route("/v1/unpause", settings.Unpause(node))
    app.add_route("/v1/settings", settings.Settings(node))
    app.add_route("/v1/schedule", preview.SchedulePreview(node))
    app.add_route("/v1/restore", jobs.Restore(node))
    app.add_route("/v1/jobs", jobs.Jobs(node))
    app.add_route("/v1/jobs/{job_name}", jobs.Job(node))
    app.add_route("/v1/jobs/{job_name}/run", jobs.Run(node))
    app.add_route("/v1/jobs/{job_name}/toggle", jobs.Toggle(node))
    app.add_route("/v1/jobs/{job_name}/kill", executions.Kill(node))
    app.add_route("/v1/jobs/{job_name}/executions", executions.Executions(node))
    app.add_route("/v1/jobs/{job_name}/executions/{execution}", executions.Execution(node))
    app.add_route("/v1/jobs/{job_name}/executions/{execution}/kill", executions.Kill(node))
    app.add_route("/v1/jobs/{job_name}/executions/{execution}/output", output.Output(node))
    app.add_route("/v1/acl/bootstrap", acl.Bootstrap(node))
    app.add_route("/v1/acl/policies", acl.Policies(node))
    app.add_route("/v1/acl/policies/{name}", acl.Policy(node))
    app.add_route("/v1/acl/tokens", acl.Tokens(node))
    app.add_route("/v1/acl/tokens/{accessor}", acl.Token(node))
    app.add_route("/v1/acl/token/self", acl.TokenSelf(node))
    app.add_route("/v1/audit", acl.Audit(node))
    return app
