"""Errands: short-lived child processes a service sends off with a payload and never waits
for (a notification, a log forwarder). Started in their own process group, fed through an
unlinked temporary file, killed past their deadline and reaped by a loop timer."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time

log = logging.getLogger(__name__)

REAP_MS = 100  # how often finished errands are collected


class Errands:
    def __init__(self, after, *, limit, timeout_ms, kind):
        self.after, self.limit, self.timeout_ms, self.kind = after, limit, timeout_ms, kind
        self.running = []  # [Popen, kill deadline (monotonic s) or None once killed, what]
        self.reaping = False

    def send(self, argv, data, what, done=None):
        """Start a child with data on its stdin. Through a file, not a pipe: a pipe holds 64 KiB,
        and writing more would wait for the child. OSError when it cannot start (or too many
        are still running: a stuck receiver must not turn into unbounded processes). `done` is
        called with the child's exit code once it is reaped (negative: killed by that signal)."""
        if len(self.running) >= self.limit:
            raise OSError(f"{len(self.running)} {self.kind} errands still running; this one is dropped")
        with tempfile.TemporaryFile() as stdin:
            stdin.write(data)
            stdin.seek(0)
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, start_new_session=True)
        self.running.append([proc, time.monotonic() + self.timeout_ms / 1000, what, done])
        log.info("%s started %s pid=%d", self.kind, what, proc.pid)
        if not self.reaping:
            self.reaping = True
            self.after(REAP_MS, self.reap)
        return proc

    def reap(self):
        now, left = time.monotonic(), []
        for errand in self.running:
            proc, deadline, what, done = errand
            code = proc.poll()
            if code is None:
                if deadline is not None and now > deadline:
                    log.warning("%s timed out, killing pid=%d: %s", self.kind, proc.pid, what)
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    errand[1] = None
                left.append(errand)
                continue
            if code == 0:
                log.info("%s done exit=0 %s", self.kind, what)
            else:
                log.warning("%s failed exit=%d %s", self.kind, code, what)
            if done is not None:
                done(code)
        self.running = left
        self.reaping = bool(left)
        if left:
            self.after(REAP_MS, self.reap)
