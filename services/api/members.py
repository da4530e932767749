"""Dkron's cluster resources: the members in Serf's shape (from this node's gossip service),
the leader's member (from Raft's view of who leads), and isleader for this node."""

from __future__ import annotations

import falcon

from common import errors
from services.api import dkron


class Members:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        docs = [dkron.member_json(x) for x in self.node.client.members()]
        resp.set_header("X-Total-Count", str(len(docs)))
        dkron.render(req, resp, docs)


class Leader:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        # No leader: Raft answers not_leader, which hooks turns into 503 (Dkron answers 500).
        leader = self.node.client.leader()
        member = next((x for x in self.node.client.members() if x["name"] == leader["node"]), None)
        if member is None:
            raise errors.Unavailable(f"leader {leader['node']} is not among the members yet")
        doc = dkron.member_json(member)
        del doc["id"], doc["statusText"]  # Dkron's leader is the bare Serf member
        dkron.render(req, resp, doc)


class IsLeader:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        info = self.node.client.node_info(refresh=True)
        leads = bool(info.get("leader")) and info["leader"]["node"] == info["node"]
        dkron.render(req, resp, "I am a leader" if leads else "I am a follower",
                     falcon.HTTP_200 if leads else falcon.HTTP_404)


class Leave:
    """Dkron's POST /v1/leave: this node leaves the cluster gracefully; answers the members."""

    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        dkron.render(req, resp, [dkron.member_json(x) for x in self.node.client.leave()])
