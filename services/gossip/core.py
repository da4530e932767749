"""Membership as a pure core: the members this node knows, their status, tags and addresses.
In a single-node cluster it holds only this node; the SWIM protocol (probes, suspicion,
dissemination) grows here behind the same step/tick/ready API."""

from __future__ import annotations

from dataclasses import dataclass, field

VERSION = "0.1.0"
PROTOCOL = 1


def local_member(name, *, role, addr, port, user_tags, addrs, executors):
    """This node's member map: Dkron's automatic tags plus the user's, and our service addresses."""
    tags = {**user_tags, "role": "pykron", "server": "true" if role == "server" else "false",
            "rpc_addr": addrs["raft"].removeprefix("tcp://"), "port": str(port), "version": VERSION}
    return {"name": name, "addr": addr, "port": port, "role": role, "status": "alive",
            "incarnation": 0, "tags": tags, "addrs": addrs, "executors": sorted(executors),
            "protocol": PROTOCOL}


@dataclass
class Membership:
    local: dict
    members: dict = field(default_factory=dict)
    events: list = field(default_factory=list)  # (kind, member) not yet published

    def __post_init__(self):
        self.members[self.local["name"]] = self.local
        self.events.append(("join", self.local))

    def alive(self):
        return [x for x in self.members.values() if x["status"] == "alive"]

    def all(self):
        return sorted(self.members.values(), key=lambda x: x["name"])

    def take_events(self):
        events, self.events = self.events, []
        return events
