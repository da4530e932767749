"""The gossip service's shell: drives the SWIM core over UDP datagrams (wire's single-frame
form, sealed with the keyring when one is set) and a ZeroMQ stream on the same port number for
push-pull, joins and keyring verbs; answers member queries and publishes member events locally."""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import sys

import zmq

from common import aclview, config, errors, keys, messages as m, metrics, wire
from common.loop import Loop
from services.gossip import keyring as kr
from services.gossip.core import Config, Gossip, local_meta
from services.gossip.fanout import KeyringFanout
from services.gossip.replay import MessageIds, ReplayWindow

log = logging.getLogger(__name__)

RECV_BYTES = 65536    # larger than any IPv4 datagram: what is over packet_bytes is counted, not cut
MAX_BATCH = 256       # datagrams read before the other sockets get a turn
DATAGRAMS = (m.GossipPing, m.GossipPingReq, m.GossipAck, m.GossipNack, m.GossipBroadcast)
KEYRING_VERBS = (m.KeyringList, m.KeyringInstall, m.KeyringUse, m.KeyringRemove)


class GossipShell:
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        try:
            config.check_gossip_key(conf)
            self.keyring = kr.Keyring.load(os.path.join(conf.node.data_dir, "gossip.keyring"), conf.security.gossip_key)
            meta = self.meta(conf)
            join, retry = parse_addrs(conf.gossip.join), parse_addrs(conf.gossip.retry_join)
        except (errors.BadRequest, ValueError) as exc:
            raise errors.ConfigError(f"gossip: {exc}") from None
        self.ids = MessageIds(boot_number(os.path.join(conf.node.data_dir, "gossip.boot"), loop.now()))
        self.replay = ReplayWindow()
        cfg = Config.from_conf(conf.gossip, overhead=kr.OVERHEAD if self.keyring.enabled else 0)
        self.core = Gossip(cfg, name=self.name, addr=conf.node.advertise, port=conf.gossip.port, meta=meta,
                           rng=random.Random(), now=loop.now(), retry_join=retry)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.udp.bind((conf.node.bind, conf.gossip.port))
        loop.add_fd(self.udp.fileno(), self.on_datagram)
        self.stream = loop.socket(zmq.ROUTER, "stream", on=self.on_stream,
                                  bind=[f"tcp://{conf.node.bind}:{conf.gossip.port}"], curve_tcp=False)
        self.query_router = loop.socket(zmq.ROUTER, "query", on=self.on_query,
                                        bind=config.endpoints(conf, "gossip", "query", conf.gossip.query_port))
        self.events_pub = loop.socket(zmq.PUB, "events", bind=[config.ipc(conf, "gossip", "events")])
        self.user_pub = loop.socket(zmq.PUB, "user", bind=[config.ipc(conf, "gossip", "user")])
        self.fanout = KeyringFanout(self)
        self.calls = aclview.CallCheck(loop)
        # Re-published so that a subscriber that connected late still learns every member.
        loop.every(conf.gossip.refresh_ms, self.republish)
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.on_hup = self.reload
        if conf.gossip.leave_on_terminate:
            loop.on_term = self.leave_then_stop
        loop.metrics.add(metrics.GOSSIP_MEMBERS)
        loop.status = self.status
        self.core.join(join + retry, loop.now())
        loop.ready = True
        log.info("gossip up name=%s addr=%s:%d encrypted=%s join=%s", self.name, conf.node.advertise,
                 conf.gossip.port, self.keyring.enabled, conf.gossip.join + conf.gossip.retry_join)

    @staticmethod
    def meta(conf):
        return local_meta(conf.node.role, config.addrs(conf), conf.node.tags, conf.executor.executors,
                          wire.protocol(), keys.node_keypair(conf.node.data_dir).public.decode())

    # -- datagrams -------------------------------------------------------------------------

    def on_datagram(self, fd):
        for _ in range(MAX_BATCH):
            try:
                data, peer = self.udp.recvfrom(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("udp receive failed: %s", exc)
                return
            if len(data) > self.core.cfg.packet_bytes:
                self.drop("size", peer, f"datagram of {len(data)} bytes over packet_bytes")
                continue
            env = self.open(data, peer)
            if env is None:
                continue
            if not isinstance(env.msg, DATAGRAMS):
                self.drop("type", peer, f"{env.type} is not a gossip datagram")
                continue
            try:
                self.core.step(env, self.loop.now())
            except wire.WireError as exc:
                self.drop(exc.code, peer, exc.detail)

    def open(self, data, peer):
        """Bytes → Envelope: opened with the keyring when one is set (plaintext is refused then),
        decoded, and checked against replay; None when dropped (and counted)."""
        if self.keyring.enabled:
            data = self.keyring.open(data)
            if data is None:
                return self.drop("decrypt", peer, "no key of ours opens it")
        try:
            env = wire.decode_datagram(data)
        except wire.WireError as exc:
            return self.drop(exc.code, peer, exc.detail)
        if not self.replay.accept(env.sender, env.msg_id):
            return self.drop("replay", peer, f"{env.type} from {env.sender} seen before")
        return env

    def seal(self, msg):
        data = wire.encode_datagram(msg, self.name, msg_id=self.ids.next())
        return self.keyring.seal(data) if self.keyring.enabled else data

    def drop(self, code, peer, detail):
        self.loop.dropped[code] += 1
        log.warning("dropped gossip peer=%s code=%s detail=%s", peer, code, detail)
        return None

    # -- the stream: push-pull, joins, keyring verbs ---------------------------------------

    def sealed(self, msg):
        """A stream message as sent: wrapped in gossip.sealed when encryption is on."""
        return m.GossipSealed(data=self.seal(msg)) if self.keyring.enabled else msg

    def unsealed(self, msg, peer):
        """A stream message as received → Envelope, or None (dropped and counted)."""
        if isinstance(msg, m.GossipSealed):
            if not self.keyring.enabled:
                return self.drop("decrypt", peer, "sealed, and we have no keyring")
            return self.open(msg.data, peer)
        if self.keyring.enabled:
            return self.drop("decrypt", peer, f"{msg.TYPE} in plaintext while encryption is on")
        return wire.Envelope(msg.TYPE, "", b"", b"", 0, msg)

    def on_stream(self, env):
        inner = self.unsealed(env.msg, f"stream:{env.sender}")
        if inner is None:
            return
        msg = inner.msg
        if isinstance(msg, m.GossipSync):
            reply = self.core.on_sync(inner, self.loop.now())
        elif isinstance(msg, KEYRING_VERBS) and msg.local and self.keyring.enabled:
            reply = self.fanout.apply_here(msg)
        else:
            return self.drop("type", f"stream:{env.sender}", f"{inner.type} is not taken on the gossip stream")
        self.loop.send(self.stream, self.sealed(reply), route=env.route, re=env.msg_id)

    def exchange(self, token, addr, port, msg):
        peer = self.loop.peer("sync", [f"tcp://{addr}:{port}"], curve_tcp=False)  # the keyring seals it

        def done(result, err):
            self.loop.close(peer.sock)
            env = None if err is not None else self.unsealed(result, f"{addr}:{port}")
            if err is not None:
                log.debug("sync with %s:%d failed: %s", addr, port, err)
            self.core.synced(token, env, self.loop.now())

        peer.call(self.sealed(msg), done, timeout_ms=self.conf.gossip.stream_timeout_ms)

    # -- carrying out what the core decided ------------------------------------------------

    def process(self):
        core = self.core
        if not core.has_ready():
            return
        rd = core.ready()
        for addr, port, msg in rd.datagrams:
            try:
                self.udp.sendto(self.seal(msg), (addr, port))
            except OSError as exc:  # a partition (EPERM) or an unreachable host: UDP is lossy anyway
                self.loop.dropped["udp_send"] += 1
                log.debug("udp send to %s:%d failed: %s", addr, port, exc)
        for token, addr, port, msg in rd.syncs:
            self.exchange(token, addr, port, msg)
        for kind, member in rd.events:
            log.info("member %s name=%s status=%s incarnation=%d", kind, member["name"], member["status"],
                     member["incarnation"])
            self.loop.send(self.events_pub, m.MemberEvent(kind=kind, member=member), topic=wire.topic("member"))
        for event in rd.user_events:
            self.loop.send(self.user_pub, m.EventReceived(**event), topic=wire.topic("event", event["name"]))
        core.advance(rd)

    def republish(self):
        members = self.core.members()
        for member in members:
            self.loop.send(self.events_pub, m.MemberEvent(kind="update", member=member), topic=wire.topic("member"))
        gauge = self.loop.metrics.add(metrics.GOSSIP_MEMBERS)
        gauge.clear()
        for status, count in collections.Counter(x["status"] for x in members).items():
            gauge.set(count, status=status)

    # -- local requests --------------------------------------------------------------------

    def on_query(self, env):
        msg, now = env.msg, self.loop.now()
        self.calls.require(env)  # a client's verbs (members, leave, events, keyring), judged by the ACL
        if isinstance(msg, m.MemberList):
            return self.loop.reply(self.query_router, env, m.Members(members=self.core.members()))
        if isinstance(msg, m.MemberLeave):
            log.info("leaving the cluster")
            self.core.leave(now)
            return self.loop.reply(self.query_router, env, m.Members(members=self.core.members()))
        if isinstance(msg, m.EventFire):
            try:
                ltime = self.core.fire_event(msg.name, msg.payload, now)
            except ValueError as exc:
                raise errors.BadRequest(str(exc)) from None
            return self.loop.reply(self.query_router, env, m.EventFired(ltime=ltime))
        if isinstance(msg, KEYRING_VERBS):
            return self.fanout.start(env)
        raise errors.BadRequest(f"the gossip query port does not answer {env.type}")

    def reload(self):
        """SIGHUP: tags (and executors) are read again from the node's file and spread."""
        try:
            meta = self.meta(config.load(self.conf.source or None))
        except (errors.ConfigError, ValueError) as exc:
            log.error("reload refused, tags unchanged: %s", exc)
            return
        log.info("reloaded tags=%s", meta["tags"])
        self.core.update_meta(meta, self.loop.now())

    def leave_then_stop(self):
        self.core.leave(self.loop.now())
        self.loop.after(self.conf.gossip.leave_propagate_ms, lambda: self.loop.stop(0))

    def status(self):
        roster = self.core.roster
        return {"members": len(roster.members), "alive": sum(x.state == "a" for x in roster.members.values()),
                "incarnation": roster.local.inc, "health": self.core.awareness.score,
                "encrypted": self.keyring.enabled, "status": roster.status(roster.local)}


def parse_addrs(entries):
    """"host:port" → (address, port), resolved once now, so that sending never waits on DNS."""
    found = []
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"join address {entry!r} is not host:port")
        try:
            host = socket.gethostbyname(host)
        except OSError:
            log.warning("join address %s does not resolve now; kept as given", host)
        found.append((host, int(port)))
    return found


def boot_number(path, now):
    """Greater at every start, even if the clock went back: the first half of message ids."""
    try:
        with open(path) as fh:
            last = int(fh.read().strip() or 0)
    except (OSError, ValueError):
        last = 0
    boot = max(now, last + 1)
    with open(path, "w") as fh:
        fh.write(str(boot))
    return boot


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-gossip")
    loop = Loop(conf, service="gossip")
    loop.start(lambda: GossipShell(conf, loop))
    sys.exit(loop.run())
