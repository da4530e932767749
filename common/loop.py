"""The service loop every pykron service runs (not the api): one thread, one zmq.Poller over
sockets and raw fds, timers instead of sleeps, signals as flags, and a ctl socket answering
ctl.status. Every TCP socket is CURVE, let in by the process's gate (common/curve.py). Handlers
get decoded Envelopes; bad input is logged and counted, never fatal."""

from __future__ import annotations

import dataclasses
import errno
import heapq
import itertools
import logging
import os
import random
import signal
import socket as pysocket
import time

import zmq
from zmq.utils import monitor as zmq_monitor

from common import config, curve, errors, keys, log as pklog, messages as m, metrics, wire
from common.flooding import FloodWatch

log = logging.getLogger(__name__)

ROUTER_QUEUE_BYTES = 256 * 1024 * 1024  # per peer of a ROUTER, at most this in its receive queue
ROUTER_RCVHWM_MIN = 64                  # frames; never fewer, however large max_message_bytes
EXIT_CRASH = 70  # sysexits EX_SOFTWARE: supervisord restarts the service from durable state
EXIT_HALT = 65  # sysexits EX_DATAERR: a store or an entry this code must not use (errors.Halt)
# supervisord counts an exit within its startsecs (1 s) as a failed start and retries it: a
# service that halts waits out this much of its life first, so that its exit 65 is final.
HALT_SETTLE_S = 1.5
STARTED = time.monotonic()
MAX_BATCH = 256  # messages read from one socket before the others get a turn
BOOK_CHECK_MS = 250  # how often the key book's file is looked at: a key rejected is cut off within a second
REBIND_TRIES, REBIND_PAUSE_MS = 40, 25  # a PUB bound again after a key book change: up to a second
REDIAL_MS, REDIAL_MAX_MS = 250, 2000  # a CURVE dial not through by then is made again (doubling)
HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
DIAL_EVENTS = HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


def now_ms():
    return time.time_ns() // 1_000_000


def mono_ms():
    return time.monotonic_ns() // 1_000_000


class Timer:
    __slots__ = ("due", "fn", "every", "cancelled")

    def __init__(self, due, fn, every):
        self.due, self.fn, self.every, self.cancelled = due, fn, every, False

    def cancel(self):
        self.cancelled = True


class Dialled:
    """A socket's one CURVE peer: where, with which key, its subscriptions (for a socket made
    again in its place), whether its handshake went through, and when to look again."""

    __slots__ = ("target", "key", "subscribe", "monitor", "ok", "backoff", "timer")

    def __init__(self, target, key, subscribe):
        self.target, self.key, self.subscribe = target, key, subscribe
        self.monitor, self.ok, self.backoff, self.timer = None, False, REDIAL_MS, None


class Peer:
    """A DEALER with request tracking: replies are matched to calls by `re`, calls time out,
    and an `ok` arrives as the reply type its request declares (common/messages.py)."""

    def __init__(self, loop, sock, on=None):
        self.loop, self.sock, self.on = loop, sock, on
        self.pending = {}

    def send(self, msg, *, term=0, re=b""):
        return self.loop.send(self.sock, msg, term=term, re=re)

    def call(self, msg, callback, *, timeout_ms=None, term=0):
        """callback(reply, error): error is an errors.Error (Timeout when no reply came; code
        internal when the reply does not fit its declared type)."""
        msg_id = self.send(msg, term=term)
        if msg_id is None:
            callback(None, errors.Unavailable("send queue full"))
            return None
        timeout_ms = timeout_ms or self.loop.conf.wire.call_timeout_ms
        timer = self.loop.after(timeout_ms, lambda: self._expire(msg_id, msg))
        self.pending[msg_id] = (callback, timer, wire.reply_type(msg))
        return msg_id

    def _expire(self, msg_id, msg):
        callback, _, _ = self.pending.pop(msg_id, (None, None, None))
        if callback:
            callback(None, errors.Timeout(f"no reply to {msg.TYPE}"))

    def dispatch(self, env):
        waiting = self.pending.pop(env.re, None) if env.re else None
        if waiting is None:
            if self.on:
                self.on(env)
            return
        callback, timer, reply_type = waiting
        timer.cancel()
        if isinstance(env.msg, m.Error):
            return callback(None, errors.Error.from_code(env.msg.code, env.msg.message, env.msg.leader))
        if not isinstance(env.msg, m.Ok):
            return callback(env.msg, None)  # a peer protocol's own reply message (gossip's sealed stream)
        if reply_type is None:
            return callback(env.msg.result, None)
        try:
            reply = wire.typed(reply_type, env.msg.result)
        except wire.WireError as exc:
            return callback(None, errors.Error(f"{env.sender} answered with a malformed reply: {exc}"))
        callback(reply, None)


def halt(service, exc):
    """Stop for good with the one line that says why (supervisord does not restart exit 65)."""
    log.error("stopping service=%s: %s", service, exc)
    time.sleep(max(0.0, STARTED + HALT_SETTLE_S - time.monotonic()))
    raise SystemExit(EXIT_HALT) from None


class Loop:
    def __init__(self, conf, service):
        self.conf, self.service, self.sender = conf, service, conf.node.name
        pklog.setup(service, conf.log.level, conf.log.format, behind=True)
        wire.set_max_frame_bytes(conf.wire.max_message_bytes)
        wire.set_protocol(wire.NEXT_PROTOCOL if conf.wire.protocol_next else wire.PROTOCOL)
        try:  # a run dir or a key this node must not use stops it with its one line, as a store does
            config.make_run_dir(conf.node.run_dir)
            os.makedirs(conf.node.data_dir, exist_ok=True)
            self.keypair = keys.node_keypair(conf.node.data_dir)
        except (errors.Halt, errors.ConfigError) as exc:
            halt(service, exc)
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.handlers = {}
        self.kinds = {}
        self.roles = {}
        self.timers = []
        self.seq = itertools.count()
        self.tickless = []
        self.urgent = []  # tickless drives also checked between one handler and the next
        self.idle = []  # run after each round of handlers: where a core's Ready is carried out
        self.metrics = metrics.Registry()  # what this service records; exported in ctl.status
        self.dropped = self.metrics.add(metrics.WIRE_DROPPED).view(service=service)  # reason → count
        self.failures = set()  # (socket role, message type, exception) whose traceback was logged
        self.status = lambda: {}
        self.ready = False
        self.on_term = None  # set by a service that drains work on the first TERM/INT
        self.on_hup = None
        self.draining = False
        self.exit_code = None
        self.signals = []
        self.gate = curve.Gate(conf.node.run_dir)
        self.floods = FloodWatch(self.gate)
        self.gated = {}  # socket → its role, for the sockets whose TCP endpoints are CURVE servers
        self.tcp_bound = {}
        self.dialled = {}   # socket → its Dialled, for the sockets that dial a CURVE peer
        self.watching = {}  # monitor socket → the socket whose handshakes it reports
        self.current = {}   # socket a service holds → the socket dialled again in its place
        self.origin = {}    # and back
        self.zap = self.ctx.socket(zmq.REP)
        self.zap.setsockopt(zmq.LINGER, 0)
        self.zap.bind(curve.ZAP_ENDPOINT)
        self.kinds[self.zap] = zmq.REP
        self.poller.register(self.zap, zmq.POLLIN)
        self.every(BOOK_CHECK_MS, self.check_book)
        self._signal_pipe()
        self.ctl_router = self.socket(zmq.ROUTER, "ctl", on=self._on_ctl, bind=[f"ipc://{conf.node.run_dir}/{service}.ctl"])

    # -- sockets -------------------------------------------------------------------------

    def socket(self, kind, role, *, on=None, bind=(), connect=(), subscribe=(), who=curve.ANY_KIND, curve_tcp=True,
               tcp_max_bytes=None):
        """The only place socket options are set (README, Developing: The wire). TCP endpoints
        are bound as CURVE servers after the ipc ones (the options apply to later binds): `who`
        are the kinds of accepted key the gate lets in. `connect` takes ipc endpoints, or one (tcp endpoint, the
        key of the node that serves it): such a socket dials one peer, and the loop may replace
        it (see _dial_again); send and close through the loop, which knows its successor.
        curve_tcp=False only for the gossip stream, which the gossip keyring authenticates (a
        joining node knows no key but the keyring's). tcp_max_bytes: the largest frame the role
        takes from another host; ZeroMQ cuts the connection of a peer that announces a larger one
        before reading or decrypting it (a flood of maximal frames then costs its receiver a
        handshake per frame, not the frame's decryption), while this host's own services keep the
        wire's limit over ipc."""
        sock = self._new_socket(kind, role)
        curve_tcp = curve_tcp and not self.conf.wire.plain_tcp
        for endpoint in sorted(bind, key=lambda e: not e.startswith("ipc://")):
            if endpoint.startswith("ipc://"):
                _unlink_stale(endpoint[len("ipc://"):])
            elif tcp_max_bytes is not None:
                # Like CURVE's, ZeroMQ copies this option into each listener as it binds.
                sock.setsockopt(zmq.MAXMSGSIZE, min(tcp_max_bytes, 2 * self.conf.wire.max_message_bytes))
            if not endpoint.startswith("ipc://") and curve_tcp and sock not in self.gated:
                name = f"{self.service}.{role}"
                curve.serve_socket(sock, name, self.keypair)
                self.gate.rule(name, who)
                self.gated[sock] = name
            if endpoint.startswith("tcp://"):
                self.tcp_bound.setdefault(sock, []).append(endpoint)
            sock.bind(endpoint)
        for prefix in subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.kinds[sock] = kind
        self.roles[sock] = role
        if on is not None:
            self.handlers[sock] = on
            self.poller.register(sock, zmq.POLLIN)
        for endpoint in connect:
            endpoint, key = (endpoint, None) if isinstance(endpoint, str) else endpoint
            if curve_tcp and endpoint.startswith("tcp://"):
                if not key:
                    raise errors.Unavailable(f"no key known for {endpoint}: not connecting to an unknown peer")
                if len(connect) != 1:
                    raise ValueError("a socket dials one CURVE peer (so that it can be dialled again alone)")
                self._dial(sock, Dialled(self.from_bind(endpoint), key, list(subscribe)))
            else:
                sock.connect(self.from_bind(endpoint))
        return sock

    def _new_socket(self, kind, role):
        w = self.conf.wire
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, w.linger_ms)
        sock.setsockopt(zmq.SNDHWM, w.hwm)
        # A ROUTER takes requests from anyone with an accepted key: what each peer may have
        # queued here is bounded in bytes (frames waiting past it stay with their sender, as TCP
        # backpressure), not only in messages: 10,000 of 8 MiB would be 80 GB.
        sock.setsockopt(zmq.RCVHWM, min(w.hwm, max(ROUTER_RCVHWM_MIN, ROUTER_QUEUE_BYTES // w.max_message_bytes))
                        if kind == zmq.ROUTER else w.hwm)
        # Twice the wire limit: ZeroMQ silently disconnects a peer past it, so frames between the
        # two limits reach wire.decode, which drops and counts them (bad input is made visible).
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * w.max_message_bytes)
        sock.setsockopt(zmq.RECONNECT_IVL, w.reconnect_ivl_ms)
        # Randomized so that many executors do not reconnect in lockstep after a leader change.
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, w.reconnect_ivl_max_ms + random.randint(0, w.reconnect_ivl_max_ms // 2))
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        return sock

    # -- CURVE dials --------------------------------------------------------------------
    # ZeroMQ never dials again after a peer refused our key at the handshake (as a server does
    # until the book accepts it), and a socket dialled again after that may connect and still
    # receive nothing: a dial that has not gone through is made again on a new socket.

    def _dial(self, sock, dialled):
        curve.dial_socket(sock, self.keypair, dialled.key)
        monitor = sock.get_monitor_socket(DIAL_EVENTS)
        self.watching[monitor] = sock
        self.poller.register(monitor, zmq.POLLIN)
        dialled.monitor, dialled.ok = monitor, False
        self.dialled[sock] = dialled
        sock.connect(dialled.target)
        self._look_again(sock, dialled, dialled.backoff)

    def _look_again(self, sock, dialled, ms):
        if dialled.timer is not None:
            dialled.timer.cancel()
        dialled.timer = self.after(ms, lambda: self._dial_again(sock))

    def _on_monitor(self, monitor):
        sock = self.watching.get(monitor)
        dialled = self.dialled.get(sock)
        while True:
            try:
                event = zmq_monitor.recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if dialled is None:
                continue
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                dialled.ok, dialled.backoff = True, REDIAL_MS
                if dialled.timer is not None:
                    dialled.timer.cancel()
                    dialled.timer = None
            elif event & HANDSHAKE_FAILED:
                self._look_again(sock, dialled, dialled.backoff)
            elif event == zmq.EVENT_DISCONNECTED and dialled.ok:
                dialled.ok = False  # ZeroMQ dials again by itself after a hang-up: look once it had its chance
                self._look_again(sock, dialled, REDIAL_MAX_MS)

    def _dial_again(self, sock):
        dialled = self.dialled.get(sock)
        if dialled is None or dialled.ok:
            return
        dialled.timer = None
        dialled.backoff = min(dialled.backoff * 2, REDIAL_MAX_MS)
        fresh = self._new_socket(self.kinds[sock], self.roles[sock])
        for prefix in dialled.subscribe:
            fresh.setsockopt(zmq.SUBSCRIBE, prefix)
        self.kinds[fresh], self.roles[fresh] = self.kinds[sock], self.roles[sock]
        handler = self.handlers.get(sock)
        origin = self.origin.pop(sock, sock)
        self.close(sock)
        self.origin[fresh], self.current[origin] = origin, fresh
        if handler is not None:
            self.handlers[fresh] = handler
            self.poller.register(fresh, zmq.POLLIN)
        self._dial(fresh, dialled)

    def now_socket(self, sock):
        """The socket that stands for `sock` now (the loop may have dialled it again)."""
        return self.current.get(sock, sock)

    def from_bind(self, endpoint):
        """Outgoing tcp leaves from the node's own address (ZeroMQ's "src;dst" form), so that a
        partition drawn between node addresses cuts it, and logs show who really connects."""
        bind = self.conf.node.bind
        if endpoint.startswith("tcp://") and ";" not in endpoint and bind and not config.is_unspecified(bind):
            return f"tcp://{bind}:0;{endpoint[len('tcp://'):]}"
        return endpoint

    def peer(self, role, connect=(), *, on=None, curve_tcp=True):
        sock = self.socket(zmq.DEALER, role, connect=connect, curve_tcp=curve_tcp)
        peer = Peer(self, sock, on)
        self.handlers[sock] = peer.dispatch
        self.poller.register(sock, zmq.POLLIN)
        return peer

    def close(self, sock):
        sock = self.now_socket(sock)
        self.current.pop(self.origin.pop(sock, sock), None)
        self.gated.pop(sock, None)
        self.tcp_bound.pop(sock, None)
        dialled = self.dialled.pop(sock, None)
        if dialled is not None:
            if dialled.timer is not None:
                dialled.timer.cancel()
            del self.watching[dialled.monitor]
            self.poller.unregister(dialled.monitor)
            sock.disable_monitor()
            dialled.monitor.close(0)
        self.handlers.pop(sock, None)
        self.kinds.pop(sock, None)
        self.roles.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except KeyError:
            pass
        sock.close(0)

    def send(self, sock, msg, *, route=(), topic=b"", re=b"", term=0):
        """Send without blocking; returns the message id, or None when the peer is gone or full."""
        sock = self.current.get(sock, sock)
        msg_id = wire.new_id()
        frames = [*route, *((topic,) if topic else ()), *wire.encode(msg, self.sender, re=re, term=term, msg_id=msg_id)]
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped["send_full"] += 1
            return None
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.dropped["send_unroutable"] += 1
            return None
        return msg_id

    def reply(self, sock, env, result=None, *, term=0):
        """`result`: the request's typed reply, or a plain map where none is declared."""
        if dataclasses.is_dataclass(result):
            result = wire.fields(result)
        try:
            return self.send(sock, m.Ok(result=result), route=env.route, re=env.msg_id, term=term)
        except (TypeError, ValueError, OverflowError) as exc:  # a value msgpack cannot carry
            log.error("reply to type=%s not encodable: %s", env.type, exc)
            return self.reply_error(sock, env, errors.Error(f"{self.service} could not encode its reply to {env.type}"))

    def reply_error(self, sock, env, err):
        self.send(sock, m.Error(code=err.code, message=str(err), leader=err.leader), route=env.route, re=env.msg_id)

    # -- fds, timers, deadlines ----------------------------------------------------------

    def add_fd(self, fd, fn):
        self.handlers[fd] = fn
        self.poller.register(fd, zmq.POLLIN)

    def remove_fd(self, fd):
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def after(self, ms, fn):
        return self._push(Timer(mono_ms() + ms, fn, None))

    def every(self, ms, fn):
        return self._push(Timer(mono_ms() + ms, fn, ms))

    def follow(self, deadline, tick, urgent=False):
        """Tickless driving of a core: call tick(now) whenever now reaches deadline() (Unix ms).
        urgent: checked after each handler too, not only once a round, so that a round busy
        with many events does not make it late (deadline() must then be cheap)."""
        self.tickless.append((deadline, tick))
        if urgent:
            self.urgent.append((deadline, tick))

    def _push(self, timer):
        heapq.heappush(self.timers, (timer.due, next(self.seq), timer))
        return timer

    now = staticmethod(now_ms)

    # -- running -------------------------------------------------------------------------

    def stop(self, code=0):
        if self.exit_code is None:
            self.exit_code = code

    def start(self, make_shell):
        """make_shell() → the service's shell, which opens its stores: one that cannot be used
        stops the process here with its one line, before the loop runs."""
        try:
            return make_shell()
        except (errors.Halt, errors.ConfigError) as exc:
            for sock in [*self.kinds, *self.watching]:
                sock.close(0)
            self.ctx.term()
            halt(self.service, exc)

    def run(self):
        try:
            while self.exit_code is None:
                self._run_once()
        except errors.Halt as exc:
            log.error("stopping service=%s: %s", self.service, exc)
            time.sleep(max(0.0, STARTED + HALT_SETTLE_S - time.monotonic()))
            self.exit_code = EXIT_HALT
        except Exception:
            log.exception("crash service=%s", self.service)
            self.exit_code = EXIT_CRASH
        finally:
            for sock in [*self.kinds, *self.watching]:
                sock.close(0)
            self.ctx.term()
        return self.exit_code

    def _run_once(self):
        self._fire_timers()
        if self.exit_code is not None:
            return
        events = self.poller.poll(self._timeout())
        for target, _ in events:
            if target is self.zap:
                self._on_zap()
                continue
            if target in self.watching:
                self._on_monitor(target)
                continue
            handler = self.handlers.get(target)
            if handler is None:
                continue
            if isinstance(target, zmq.Socket):
                self._drain_socket(target, handler)
            else:
                handler(target)
            if self.exit_code is not None:
                return
            if self.urgent:
                self._tick_due(self.urgent)
        for fn in self.idle:
            fn()

    def _timeout(self):
        wait = None
        if self.timers:
            wait = max(0, self.timers[0][0] - mono_ms())
        now = now_ms()
        for deadline, _ in self.tickless:
            due = deadline()
            if due is not None:
                wait = max(0, due - now) if wait is None else min(wait, max(0, due - now))
        return wait

    def _fire_timers(self):
        mono = mono_ms()
        while self.timers and self.timers[0][0] <= mono:
            _, _, timer = heapq.heappop(self.timers)
            if timer.cancelled:
                continue
            if timer.every is not None:
                timer.due = mono + timer.every
                self._push(timer)
            timer.fn()
        self._tick_due(self.tickless)
        for fn in self.idle:
            fn()

    @staticmethod
    def _tick_due(drives):
        now = now_ms()
        for deadline, tick in drives:
            due = deadline()
            if due is not None and due <= now:
                tick(now)

    def _drain_socket(self, sock, handler):
        kind, role = self.kinds.get(sock), self.gated.get(sock)
        for _ in range(MAX_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=role is None)
            except zmq.Again:
                return
            peer = ""
            if role is not None:
                # Checked on every message, not only at the handshake: a key rejected since
                # its connection was made is cut off as soon as the book says so.
                key = _user_id(frames[-1])
                # Frames stay zero-copy: one over its type's bound is refused without a copy.
                if key:
                    peer = self.gate.who(role, key)
                    if peer is None:
                        self._drop(sock, kind, frames, wire.WireError("key", f"key {key[:8]} is no longer accepted"))
                        self.floods.benched_frame(_source_fd(frames[-1]), key)
                        continue
            try:
                env = wire.decode(frames, topic=kind == zmq.SUB, peer=peer)
            except wire.WireError as exc:
                self._drop(sock, kind, frames, exc)
                if role is not None and key:
                    self.floods.refused_frame(_source_fd(frames[-1]), key, sum(len(f) for f in frames), now_ms())
                continue
            except Exception as exc:  # wire.decode promises WireError only: a bug, but one message's
                self._failed(sock, kind, None, exc)
                continue
            try:
                handler(env)
            except errors.Halt:
                raise
            except errors.Error as err:
                if kind == zmq.ROUTER:
                    log.warning("refused type=%s from=%s code=%s: %s", env.type, env.sender, err.code, err)
                    self.reply_error(sock, env, err)
                else:
                    log.warning("refused type=%s from=%s socket=%s code=%s: %s",
                                env.type, env.sender, self.roles.get(sock), err.code, err)
            except Exception as exc:
                self._failed(sock, kind, env, exc)
            if sock not in self.kinds:
                return
            if self.urgent:
                self._tick_due(self.urgent)

    def _failed(self, sock, kind, env, exc):
        """A message its handler failed on: one message never stops a service. Its own state is
        persisted, applied and sent outside handlers (idle work and timers), where an exception
        still stops the process for supervisord to restart it. The first failure of each kind is
        logged with its traceback, later ones in a line each, and all are counted."""
        what = (self.roles.get(sock), env.type if env else "-", type(exc).__name__)
        self.dropped["internal"] += 1
        if what in self.failures:
            log.error("handler failed socket=%s type=%s error=%s (traceback logged before): %s", *what, exc)
        else:
            self.failures.add(what)
            log.error("handler failed socket=%s type=%s error=%s", *what, exc_info=exc)
        if kind == zmq.ROUTER and env is not None:
            self.reply_error(sock, env, errors.Error(f"{self.service} failed on {env.type} ({type(exc).__name__}); "
                                                     "the request was not carried out"))

    def _drop(self, sock, kind, frames, exc):
        self.dropped[exc.code] += 1
        peer = bytes(frames[0]).hex() if kind == zmq.ROUTER and len(frames) > 1 else "-"
        log.warning("dropped malformed message socket=%s peer=%s code=%s detail=%s",
                    self.roles.get(sock), peer, exc.code, exc.detail)
        if kind == zmq.ROUTER and len(frames) > 2 and exc.code != "key":
            # With the request's id when its header was sound, so the caller need not wait out its
            # timeout; a key no longer accepted is answered nothing (it is cut off, not served errors).
            reply = (m.Error(code="unavailable", message=f"cluster not yet upgraded: {self.sender} refused {exc.detail}")
                     if exc.code == "version" else m.Error(code="bad_request", message=f"malformed message: {exc}"))
            self.send(sock, reply, route=(bytes(frames[0]),), re=exc.msg_id)

    # -- keys ------------------------------------------------------------------------------

    def _on_zap(self):
        while True:
            try:
                frames = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.zap.send_multipart(self.gate.answer(frames))

    def check_book(self):
        if not self.gate.reload_if_changed():
            return
        for sock, role in list(self.gated.items()):
            if self.kinds.get(sock) == zmq.PUB:
                # A PUB cannot refuse a subscriber already connected: every connection is made
                # again (the others within a reconnect interval), and a rejected key no longer passes.
                for endpoint in self.tcp_bound.get(sock, ()):
                    sock.unbind(endpoint)
                    self._bind_again(sock, endpoint)

    def _bind_again(self, sock, endpoint, tries=REBIND_TRIES):
        """Bind an endpoint just unbound: ZeroMQ closes the listener in its I/O thread, so the
        address may still be in use for a moment; try again shortly rather than stop the service."""
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRINUSE or tries <= 1:
                raise
            self.after(REBIND_PAUSE_MS, lambda: self._bind_again(sock, endpoint, tries - 1))

    # -- control and signals -------------------------------------------------------------

    def _on_ctl(self, env):
        if not isinstance(env.msg, m.CtlStatus):
            raise errors.BadRequest(f"ctl socket does not answer {env.type}")
        body = {"service": self.service, "pid": os.getpid(), "ready": self.ready, "role": "",
                "leader": "", "term": 0, "dropped": dict(self.dropped), "keys_refused": self.gate.refused,
                "floods_cut": self.floods.cut}
        body.update(self.status())
        body["metrics"] = self.metrics.snapshot()
        self.reply(self.ctl_router, env, body)

    def _signal_pipe(self):
        rfd, wfd = pysocket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        self._wake = (rfd, wfd)
        signal.set_wakeup_fd(wfd.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: self.signals.append(signum))
        self.add_fd(rfd.fileno(), self._on_signal)

    def _on_signal(self, fd):
        try:
            while self._wake[0].recv(512):
                pass
        except BlockingIOError:
            pass
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                if self.on_hup:
                    self.on_hup()
                continue
            if self.on_term is None or self.draining:
                log.info("stopping signal=%d", signum)
                self.stop(0)
                return
            log.info("draining signal=%d (send again to exit now)", signum)
            self.draining = True
            self.on_term()


def _source_fd(frame):
    """The descriptor of the connection a frame came by (ZeroMQ's ZMQ_SRCFD), or None."""
    try:
        return frame.get(zmq.SRCFD)
    except (zmq.ZMQError, AttributeError):
        return None


def _user_id(frame):
    """The key a CURVE connection authenticated with ("" over ipc, where there is none)."""
    try:
        return frame.get("User-Id") or ""
    except zmq.ZMQError:
        return ""


def _unlink_stale(path):
    """A crashed process leaves its ipc file; binding over it would fail or go unseen."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
