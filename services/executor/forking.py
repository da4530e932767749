"""Children forked ahead, on a thread of the executor's own. Under a busy CPU a fork waits for
its child to exec; on the service loop's thread that wait would delay the runs starting
meanwhile. The thread only forks; what it forked comes back through a pipe the loop polls."""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time

from services.executor.child import ChildProcess

log = logging.getLogger(__name__)


class ForkAhead:
    def __init__(self, loop, on_forked):
        self.on_forked = on_forked  # (key, plan, ChildProcess or None, fork ms), on the loop's thread
        self.requests = queue.SimpleQueue()
        self.forked = collections.deque()
        self.in_flight = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        loop.add_fd(self.wake_r, self._collect)
        threading.Thread(target=self._fork_each, name="fork-ahead", daemon=True).start()

    def fork(self, key, plan):
        self.in_flight.add(key)
        self.requests.put((key, plan))

    def __contains__(self, key):
        return key in self.in_flight

    def __len__(self):
        return len(self.in_flight)

    def _fork_each(self):
        while True:
            key, plan = self.requests.get()
            begun = time.monotonic()
            try:
                process = ChildProcess(plan, held=True)
            except Exception as exc:  # noqa: BLE001 - the thread must live on; the run forks at its start
                log.warning("forking ahead failed key=%s: %s", key, exc)
                process = None
            self.forked.append((key, plan, process, round((time.monotonic() - begun) * 1000)))
            try:
                os.write(self.wake_w, b"\0")
            except BlockingIOError:
                pass  # the loop has wake-ups unread: it collects everything at once

    def _collect(self, fd):
        try:
            os.read(fd, 4096)
        except BlockingIOError:
            pass
        while self.forked:
            key, plan, process, fork_ms = self.forked.popleft()
            self.in_flight.discard(key)
            self.on_forked(key, plan, process, fork_ms)
