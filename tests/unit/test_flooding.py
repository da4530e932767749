"""common/flooding.py over real socket pairs: a key whose refused frames pass the budget, over
all its connections, has the connection shut down under its owner and is kept out of the gate
(common/curve.py) for a while, each other connection of it shut down as its next frame comes;
below the budget, or once the window has passed, nothing happens."""

import socket
import time

import pytest

from common import curve, flooding

KEY = "k" * 40
ROLE = "raft.client"


def gate(tmp_path):
    g = curve.Gate(str(tmp_path))
    g.allow(ROLE, {KEY: "launcher"})
    return g


def test_a_connection_past_the_budget_is_shut_down_and_its_key_benched(tmp_path):
    g = gate(tmp_path)
    watch = flooding.FloodWatch(g)
    ours, theirs = socket.socketpair()
    try:
        frame, now = 1 << 20, int(time.time() * 1000)  # the gate reads the clock itself
        cuts = [watch.refused_frame(ours.fileno(), KEY, frame, now=now) for _ in range(16)]
        assert not any(cuts) and g.who(ROLE, KEY) == "launcher"
        assert watch.refused_frame(ours.fileno(), KEY, frame, now=now)
        theirs.settimeout(5)
        assert theirs.recv(1) == b""  # shut down: the other end reads its end
        assert ours.fileno() >= 0     # the descriptor stays its owner's to close
        assert g.who(ROLE, KEY) is None and watch.cut == 1
        g.bench(KEY, 0)  # its time out
        assert g.who(ROLE, KEY) == "launcher"
    finally:
        ours.close()
        theirs.close()


def test_small_refusals_count_at_a_minimum_and_an_old_window_is_forgotten(tmp_path):
    watch = flooding.FloodWatch(gate(tmp_path))
    ours, theirs = socket.socketpair()
    try:
        per_window = flooding.REFUSED_BYTES // flooding.REFUSED_FRAME_MIN_BYTES
        for i in range(per_window):
            assert not watch.refused_frame(ours.fileno(), KEY, 10, now=i)
        # The window passed: counting starts again.
        assert not watch.refused_frame(ours.fileno(), KEY, 10, now=flooding.WINDOW_MS + per_window + 1)
        assert watch.refused_frame(ours.fileno(), KEY, flooding.REFUSED_BYTES, now=flooding.WINDOW_MS + per_window + 2)
        # Without a descriptor or a key (ipc), nothing is counted.
        assert not watch.refused_frame(None, KEY, 1 << 30, now=0)
        assert not watch.refused_frame(ours.fileno(), "", 1 << 30, now=0)
    finally:
        ours.close()
        theirs.close()


def test_the_budget_is_the_keys_over_all_its_connections(tmp_path):
    g = gate(tmp_path)
    watch = flooding.FloodWatch(g)
    (a, a_peer), (b, b_peer) = socket.socketpair(), socket.socketpair()
    try:
        now, half = int(time.time() * 1000), flooding.REFUSED_BYTES // 2
        assert not watch.refused_frame(a.fileno(), KEY, half, now=now)
        assert not watch.refused_frame(b.fileno(), KEY, half, now=now)
        assert watch.refused_frame(b.fileno(), KEY, 1, now=now)  # the third, on b: b is cut
        b_peer.settimeout(5)
        assert b_peer.recv(1) == b""
        a_peer.setblocking(False)
        with pytest.raises(BlockingIOError):  # a is still open: nothing to read, no end of it
            a_peer.recv(1)
        watch.benched_frame(a.fileno(), KEY)  # a frame of the benched key comes on a
        a_peer.settimeout(5)
        assert a_peer.recv(1) == b""
        watch.benched_frame(a.fileno(), "another key")  # not benched: nothing happens
    finally:
        for sock in (a, a_peer, b, b_peer):
            sock.close()
