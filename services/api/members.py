"""Dkron's cluster resources: members in Serf's shape, the leader's member, isleader, and the
node's status document (GET /v1/)."""

from __future__ import annotations

import falcon

from common import errors
from services.api import dkron

VERSION = "0.1.0"


class Members:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        docs = [dkron.member_json(x) for x in self.state.client.members()]
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, docs)


class Leader:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        leader = self.state.client.leader()
        member = next((x for x in self.state.client.members() if x["name"] == leader["node"]), None)
        if member is None:
            raise errors.Unavailable(f"leader {leader['node']} is not among the members yet")
        doc = dkron.member_json(member)
        doc.pop("id"), doc.pop("statusText")  # Dkron's leader has the bare member fields
        dkron.render(req, resp, doc)


class IsLeader:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        info = self.state.client.node_info(refresh=True)
        leads = bool(info.get("leader")) and info["leader"]["node"] == info["node"]
        dkron.render(req, resp, "I am a leader" if leads else "I am a follower",
                     falcon.HTTP_200 if leads else falcon.HTTP_404)


class Status:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        info = self.state.client.node_info(refresh=True)
        members = self.state.client.members()
        me = next((x for x in members if x["name"] == info["node"]), {"tags": {}})
        leader = info.get("leader") or {}
        dkron.render(req, resp, {
            "agent": {"name": info["node"], "version": VERSION, "role": info["role"]},
            "serf": {"members": str(len(members)), "alive": str(sum(x["status"] == "alive" for x in members)),
                     "leader": leader.get("node", ""), "term": str(leader.get("term", 0))},
            "tags": me["tags"],
        })


class Health:
    def __init__(self, state):
        self.state = state

    def on_get(self, req, resp):
        try:
            self.state.client.node_info(refresh=True)
        except errors.Error as err:
            return dkron.render(req, resp, {"status": "unhealthy", "error": str(err)}, falcon.HTTP_503)
        dkron.render(req, resp, {"status": "healthy"})
