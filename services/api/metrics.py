"""GET /metrics: the figures of every service of this node, asked for over their ipc ctl
sockets at each scrape, merged and rendered as Prometheus text; `pykron_service_up` says which
services answered. The api keeps none of its own: its gunicorn workers are several processes."""

from __future__ import annotations

import logging

from common import errors, metrics, wire
from common.launch import services_for

log = logging.getLogger(__name__)

CTL_TIMEOUT_MS = 1000  # a service that cannot answer its ctl socket in this time is reported down
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        own = metrics.Registry()
        up = own.add(metrics.SERVICE_UP)
        snapshots = []
        for service in services_for(self.node.conf):
            if service.name == "api":
                up.set(1, service="api")  # answering this request
                continue
            try:
                status = self.node.ctl(service.name, CTL_TIMEOUT_MS)
            except (errors.Error, wire.WireError) as err:
                log.info("no metrics from service=%s: %s", service.name, err)
                up.set(0, service=service.name)
                continue
            up.set(1, service=service.name)
            snapshots.append(status.get("metrics") or [])
        resp.content_type = CONTENT_TYPE
        resp.text = metrics.render(metrics.merge([own.snapshot(), *snapshots]))
