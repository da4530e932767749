"""The gossip service's shell: binds the membership UDP port (datagrams through the wire
module's single-frame form), answers member queries on its ROUTER and publishes member events
on a local PUB, where the raft, dispatcher and executor services of this node listen."""

from __future__ import annotations

import logging
import socket
import sys

import zmq

from common import config, errors, messages as m, wire
from common.loop import Loop
from services.gossip.core import Membership, local_member

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65507


class GossipShell:
    def __init__(self, conf, loop):
        self.conf, self.loop = conf, loop
        self.membership = Membership(local_member(
            conf.node.name, role=conf.node.role, addr=conf.node.advertise, port=conf.gossip.port,
            user_tags=conf.node.tags, addrs=config.addrs(conf), executors=conf.executor.executors))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.udp.bind((conf.node.bind, conf.gossip.port))
        loop.add_fd(self.udp.fileno(), self.on_datagram)
        self.query_router = loop.socket(zmq.ROUTER, "query", on=self.on_query,
                                        bind=config.endpoints(conf, "gossip", "query", conf.gossip.query_port))
        self.events_pub = loop.socket(zmq.PUB, "events", bind=[config.ipc(conf, "gossip", "events")])
        # Re-published so that a subscriber that connected late still learns every member.
        loop.every(conf.gossip.refresh_ms, self.republish)
        loop.idle.append(self.publish_events)
        loop.status = lambda: {"members": len(self.membership.members), "alive": len(self.membership.alive())}
        loop.ready = True

    def on_query(self, env):
        if isinstance(env.msg, m.MemberList):
            return self.loop.reply(self.query_router, env, {"members": self.membership.all()})
        raise errors.BadRequest(f"the gossip query port does not answer {env.type}")

    def on_datagram(self, fd):
        for _ in range(64):
            try:
                data, peer = self.udp.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            try:
                env = wire.decode_datagram(data)
            except wire.WireError as exc:
                self.loop.dropped[exc.code] += 1
                log.warning("dropped datagram peer=%s:%d code=%s detail=%s", *peer, exc.code, exc.detail)
                continue
            if isinstance(env.msg, m.GossipPing):
                reply = wire.encode_datagram(m.Ok(result={"seq": env.msg.seq}), self.conf.node.name, re=env.msg_id)
                self.udp.sendto(reply, peer)

    def publish_events(self):
        for kind, member in self.membership.take_events():
            self.loop.send(self.events_pub, m.MemberEvent(kind=kind, member=member), topic=wire.topic("member"))

    def republish(self):
        for member in self.membership.all():
            self.loop.send(self.events_pub, m.MemberEvent(kind="update", member=member), topic=wire.topic("member"))


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-gossip")
    loop = Loop(conf, service="gossip")
    GossipShell(conf, loop)
    sys.exit(loop.run())
