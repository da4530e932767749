"""This node's own state: GET /v1 (Dkron's agent, serf and tags document) and GET /health,
healthy only while the node's raft service answers and knows a leader, so a load balancer
sends requests only to a node that can serve them."""

from __future__ import annotations

import importlib.metadata

import falcon

from common import errors, wire
from services.api import dkron


def version():
    try:
        return importlib.metadata.version("pykron")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # run from a checkout that was never installed


class Status:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        info = self.node.client.node_info(refresh=True)
        try:
            members = self.node.client.members()
        except errors.Error:
            members = []  # gossip restarting: the status of Raft still says something useful
        me = next((x for x in members if x["name"] == info["node"]), None)
        leader = info.get("leader") or {}
        counts = {s: sum(x["status"] == s for x in members) for s in ("alive", "failed", "left")}
        dkron.render(req, resp, {
            "agent": {"name": info["node"], "version": version(), "role": info["role"]},
            # Serf's stats are strings; these are the ones pykron's gossip and Raft can say.
            "serf": {"members": str(len(members)), "alive": str(counts["alive"]), "failed": str(counts["failed"]),
                     "left": str(counts["left"]), "leader": leader.get("node", ""),
                     "term": str(leader.get("term", 0))},
            "tags": me["tags"] if me else dict(self.node.conf.node.tags),
        })


class Health:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        try:
            info = self.node.client.node_info(refresh=True)
        except (errors.Error, wire.WireError) as err:
            dkron.render(req, resp, {"status": "unhealthy", "error": str(err)}, falcon.HTTP_503)
            return
        if not info.get("leader"):
            dkron.render(req, resp, {"status": "unhealthy", "error": "no leader known"}, falcon.HTTP_503)
            return
        dkron.render(req, resp, {"status": "healthy", "leader": info["leader"]["node"]})
