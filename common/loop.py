"""The service loop every pykron service runs (not the api): one thread, one zmq.Poller over
sockets and raw fds, timers instead of sleeps, signals as flags, and a ctl socket answering
ctl.status. Handlers get decoded Envelopes; bad input is logged and counted, never fatal."""

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

from common import config, errors, log as pklog, messages as m, metrics, wire

log = logging.getLogger(__name__)

EXIT_CRASH = 70  # sysexits EX_SOFTWARE: supervisord restarts the service from durable state
EXIT_HALT = 65  # sysexits EX_DATAERR: a store or an entry this code must not use (errors.Halt)
MAX_BATCH = 256  # messages read from one socket before the others get a turn


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


class Loop:
    def __init__(self, conf, service):
        self.conf, self.service, self.sender = conf, service, conf.node.name
        pklog.setup(service, conf.log.level, conf.log.format, behind=True)
        wire.set_max_frame_bytes(conf.wire.max_message_bytes)
        wire.set_protocol(wire.NEXT_PROTOCOL if conf.wire.protocol_next else wire.PROTOCOL)
        config.make_run_dir(conf.node.run_dir)
        os.makedirs(conf.node.data_dir, exist_ok=True)
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
        self.status = lambda: {}
        self.ready = False
        self.on_term = None  # set by a service that drains work on the first TERM/INT
        self.on_hup = None
        self.draining = False
        self.exit_code = None
        self.signals = []
        self._signal_pipe()
        self.ctl_router = self.socket(zmq.ROUTER, "ctl", on=self._on_ctl, bind=[f"ipc://{conf.node.run_dir}/{service}.ctl"])

    # -- sockets -------------------------------------------------------------------------

    def socket(self, kind, role, *, on=None, bind=(), connect=(), subscribe=()):
        """The only place socket options are set (STYLE §3)."""
        w = self.conf.wire
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, w.linger_ms)
        sock.setsockopt(zmq.SNDHWM, w.hwm)
        sock.setsockopt(zmq.RCVHWM, w.hwm)
        # Twice the wire limit: ZeroMQ silently disconnects a peer past it, so frames between the
        # two limits reach wire.decode, which drops and counts them (bad input is made visible).
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * w.max_message_bytes)
        sock.setsockopt(zmq.RECONNECT_IVL, w.reconnect_ivl_ms)
        # Randomized so that many executors do not reconnect in lockstep after a leader change.
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, w.reconnect_ivl_max_ms + random.randint(0, w.reconnect_ivl_max_ms // 2))
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for endpoint in bind:
            if endpoint.startswith("ipc://"):
                _unlink_stale(endpoint[len("ipc://"):])
            sock.bind(endpoint)
        for endpoint in connect:
            sock.connect(self.from_bind(endpoint))
        for prefix in subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.kinds[sock] = kind
        self.roles[sock] = role
        if on is not None:
            self.handlers[sock] = on
            self.poller.register(sock, zmq.POLLIN)
        return sock

    def from_bind(self, endpoint):
        """Outgoing tcp leaves from the node's own address (ZeroMQ's "src;dst" form), so that a
        partition drawn between node addresses cuts it, and logs show who really connects."""
        bind = self.conf.node.bind
        if endpoint.startswith("tcp://") and ";" not in endpoint and bind not in ("0.0.0.0", "::", ""):
            return f"tcp://{bind}:0;{endpoint[len('tcp://'):]}"
        return endpoint

    def peer(self, role, connect=(), *, on=None):
        sock = self.socket(zmq.DEALER, role, connect=connect)
        peer = Peer(self, sock, on)
        self.handlers[sock] = peer.dispatch
        self.poller.register(sock, zmq.POLLIN)
        return peer

    def close(self, sock):
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
        self.send(sock, m.Ok(result=result), route=env.route, re=env.msg_id, term=term)

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
        except errors.Halt as exc:
            log.error("stopping service=%s: %s", self.service, exc)
            for sock in list(self.kinds):
                sock.close(0)
            self.ctx.term()
            raise SystemExit(EXIT_HALT) from None

    def run(self):
        try:
            while self.exit_code is None:
                self._run_once()
        except errors.Halt as exc:
            log.error("stopping service=%s: %s", self.service, exc)
            self.exit_code = EXIT_HALT
        except Exception:
            log.exception("crash service=%s", self.service)
            self.exit_code = EXIT_CRASH
        finally:
            for sock in list(self.kinds):
                sock.close(0)
            self.ctx.term()
        return self.exit_code

    def _run_once(self):
        self._fire_timers()
        if self.exit_code is not None:
            return
        events = self.poller.poll(self._timeout())
        for target, _ in events:
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
        kind = self.kinds.get(sock)
        for _ in range(MAX_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            try:
                env = wire.decode(frames, topic=kind == zmq.SUB)
            except wire.WireError as exc:
                self._drop(sock, kind, frames, exc)
                continue
            try:
                handler(env)
            except errors.Error as err:
                if kind != zmq.ROUTER:
                    raise
                log.warning("refused type=%s from=%s code=%s: %s", env.type, env.sender, err.code, err)
                self.reply_error(sock, env, err)
            if sock not in self.kinds:
                return
            if self.urgent:
                self._tick_due(self.urgent)

    def _drop(self, sock, kind, frames, exc):
        self.dropped[exc.code] += 1
        peer = frames[0].hex() if kind == zmq.ROUTER and len(frames) > 1 else "-"
        log.warning("dropped malformed message socket=%s peer=%s code=%s detail=%s",
                    self.roles.get(sock), peer, exc.code, exc.detail)
        if kind == zmq.ROUTER and len(frames) > 2:
            # With the request's id when its header was sound, so the caller need not wait out its timeout.
            reply = (m.Error(code="unavailable", message=f"cluster not yet upgraded: {self.sender} refused {exc.detail}")
                     if exc.code == "version" else m.Error(code="bad_request", message=f"malformed message: {exc}"))
            self.send(sock, reply, route=(frames[0],), re=exc.msg_id)

    # -- control and signals -------------------------------------------------------------

    def _on_ctl(self, env):
        if not isinstance(env.msg, m.CtlStatus):
            raise errors.BadRequest(f"ctl socket does not answer {env.type}")
        body = {"service": self.service, "pid": os.getpid(), "ready": self.ready, "role": "",
                "leader": "", "term": 0, "dropped": dict(self.dropped)}
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


def _unlink_stale(path):
    """A crashed process leaves its ipc file; binding over it would fail or go unseen."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
