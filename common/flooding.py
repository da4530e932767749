"""A key that floods a TCP socket with frames the wire refuses, cut off cheaply (the service
loop, common/loop.py, reports each refusal here): past a budget its connection is shut down and
its key kept out for a while (curve.Gate.bench), a refused handshake per redial, not a decryption."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

# What a key may send that is refused, over all its connections (each frame counted at
# REFUSED_FRAME_MIN_BYTES at least, so that a flood of small garbage counts too), within WINDOW_MS
# before it is cut off: a buggy client sending a few bad requests is answered each time; 16 MiB of
# refusals is a flood, however many connections it is spread over.
REFUSED_BYTES = 16 * 1024 * 1024
REFUSED_FRAME_MIN_BYTES = 16 * 1024
WINDOW_MS = 10_000
BENCH_MS = 5_000  # how long a key that flooded is refused at the handshake and per message


class FloodWatch:
    def __init__(self, gate):
        self.gate = gate
        self.refused = {}  # key → [window start ms, bytes refused in it]
        self.cut = 0

    def refused_frame(self, fd, key, nbytes, now):
        """Count a frame the wire refused from `key` on connection `fd`; once the key's
        refusals pass the budget, bench the key and shut this connection down. → True when cut."""
        if fd is None or fd < 0 or not key:
            return False
        seen = self.refused.get(key)
        if seen is None or now - seen[0] > WINDOW_MS:
            seen = self.refused[key] = [now, 0]
        seen[1] += max(nbytes, REFUSED_FRAME_MIN_BYTES)
        if seen[1] <= REFUSED_BYTES:
            return False
        del self.refused[key]
        self.gate.bench(key, now + BENCH_MS)
        self.cut += 1
        log.warning("cut off key=%s: %d bytes refused within %d ms; refused for %d ms",
                    key[:8], seen[1], WINDOW_MS, BENCH_MS)
        shut_down(fd)
        return True

    def benched_frame(self, fd, key):
        """A frame of a benched key on another of its connections: that one is shut down too
        (its descriptor is the one this frame came by, so no other connection is hit)."""
        if fd is not None and fd >= 0 and self.gate.is_benched(key):
            shut_down(fd)


def shut_down(fd):
    """Shut the connection down under ZeroMQ, which reads the end of it and drops the peer (the
    descriptor stays ZeroMQ's to close: only a duplicate is closed here)."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the peer is gone already: nothing left to cut
    finally:
        sock.close()
