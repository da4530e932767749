"""`scripts/bench hostile`: the raft service of a secure 3-server cluster under a flood from an
accepted client key (a process of its own, so that it does not share a GIL with the honest
client): its peak RSS during the flood beside its RSS idle, and the commit rate of an honest
client during the flood beside the same client without it. Two floods in turn: maximal frames
(the wire's limit, which the client port's transport cuts from another host), and frames just
under what that transport takes (each reaches the service, to be refused by its type's bound)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import zmq

from common import keys, messages as m, wire

ROOT = Path(__file__).resolve().parent.parent
HONEST_PROPOSERS = 4


def rss(pid):
    """(current, peak) resident bytes of a process, from /proc."""
    found = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1]) * 1024
    return found["VmRSS"], found["VmHWM"]


def flood(endpoint, server_key, key_path, seconds, limit):
    """Frames of `limit` bytes as fast as the socket takes them: a frame of nested empty arrays
    (the costliest to decode), and a job.put carrying a string as large. Cut off (its socket
    takes nothing for a second), it dials again on a new socket, as a determined flooder would
    (ZeroMQ does not dial again by itself after a refused handshake)."""
    arrays = msgpack.packb([[[]] * 65_535] * (limit // 65_538 - 1))
    job = msgpack.packb({"job": {"name": "flood", "metadata": {"k": "x" * (limit - 200)}}}, use_bin_type=True)
    ctx = zmq.Context()
    pair = keys.read_keypair(key_path)

    def dial():
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = pair.secret, pair.public, server_key.encode()
        sock.connect(endpoint)
        return sock

    sock = dial()
    sent, stop, i, took = 0, time.monotonic() + seconds, 0, time.monotonic()
    while time.monotonic() < stop:
        i += 1
        head = msgpack.packb([1, "job.put" if i % 2 else "job.list", "flood", i.to_bytes(16, "big"), b"", 0],
                             use_bin_type=True)
        try:
            sock.send_multipart([head, job if i % 2 else arrays], zmq.NOBLOCK)
            sent += 1
            took = time.monotonic()
        except zmq.Again:
            if time.monotonic() - took > 1:
                sock.close(0)
                sock, took = dial(), time.monotonic()
            sock.poll(50, zmq.POLLOUT)
        while sock.poll(0):
            sock.recv_multipart()
    sock.close(0)
    ctx.term()
    print(sent)


def wait_pid(cluster, name, timeout=60):
    """The raft service's pid once it answers again (a flood may leave it busy a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return cluster.service_pid(name, "raft")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


FLOODS = (("maximal frames", wire.DEFAULT_MAX_FRAME_BYTES - 1024),
          ("frames under the transport's cut", m.JOB_BYTES + m.SMALL_BYTES - 1024))


def bench_hostile(seconds):
    from scripts.bench import load
    from scripts.cluster import Cluster
    rows = []
    with Cluster(servers=3, secure=True) as cluster:
        leader = cluster.leader()
        pid = cluster.service_pid(leader, "raft")
        node = cluster.nodes[leader]
        time.sleep(3)
        idle, _ = rss(pid)
        honest_alone = load(cluster, HONEST_PROPOSERS, seconds)
        print(f"  honest alone: {honest_alone['commits_s']:.0f} commits/s", file=sys.stderr)
        for what, limit in FLOODS:
            flooder = subprocess.Popen(
                [sys.executable, __file__, "flood", f"tcp://{node.server}", node.key, str(cluster.dir / "client.key"),
                 str(seconds + 2), str(limit)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            peak, sampling = [idle], True

            def sample():
                while sampling:
                    try:
                        peak.append(rss(pid)[0])
                    except OSError:
                        return
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            time.sleep(1)  # the flood is under way
            honest_flooded = load(cluster, HONEST_PROPOSERS, seconds)
            frames = int(flooder.communicate(timeout=seconds + 60)[0].strip() or 0)
            sampling = False
            sampler.join()
            cut = cluster.ctl(leader, "raft").get("floods_cut", 0) - sum(r[5] for r in rows)
            rows.append((what, limit, frames, max(peak), honest_flooded, cut))
            print(f"  {what}: {honest_flooded['commits_s']:.0f} commits/s", file=sys.stderr)
        restarted = wait_pid(cluster, leader) != pid
    print(f"\nhostile: the leader's raft service under a flood from one accepted client key ({seconds + 2}s each), "
          "3 servers on loopback, secure")
    print(f"{'flood':>34} | {'':>16} | {'flood':>12} | {'baseline (idle / alone)':>24} | {'ratio':>6} | target")
    for what, limit, frames, peak, flooded, cut in rows:
        label = f"{what} ({limit / 2**20:.1f} MiB)"
        sent = f"{frames} frames sent, cut off {cut}x"
        print(f"{label:>34} | {'RSS':>16} | {peak / 2**20:>8.1f} MiB | {idle / 2**20:>20.1f} MiB | "
              f"{peak / idle:>5.2f}x | under 4x")
        print(f"{sent:>34} | {'honest commits/s':>16} | {flooded['commits_s']:>12.0f} | "
              f"{honest_alone['commits_s']:>24.0f} | {flooded['commits_s'] / max(honest_alone['commits_s'], 1e-9):>5.2f}x"
              f" | at least 0.5x   ({HONEST_PROPOSERS} proposers, p99 {flooded['p99_ms']:.0f} ms beside "
              f"{honest_alone['p99_ms']:.0f} ms, {flooded['failed']} failed)")
    print(f"raft service restarted during the floods: {'yes' if restarted else 'no'}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1] == "flood":
        flood(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))
