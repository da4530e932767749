"""An HTTP client's view of a failover: writes (POST /v1/jobs) and linearizable reads (GET
/v1/jobs/NAME) sent through the API of the servers that stay up, continuously, while the
leader is killed -9 and, separately, paused. Every request is answered (a success, or an
error that says why), none waits out the client's call timeout, and the history is
linearizable (tests/linearizability.py): a write applied twice would show as a stale read."""

import json
import random
import threading
import time
import urllib.error
import urllib.request

import pytest

from scripts.cluster import Cluster
from tests.linearizability import UNKNOWN, Op, check

CALL_TIMEOUT_MS = 15_000  # far above an election: a request that waited for it stands out
KEYS = ("fo-a", "fo-b")
CLIENTS = 4
ROUNDS = 2                # leader faults of each kind


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=3, conf={"wire": {"call_timeout_ms": CALL_TIMEOUT_MS}}) as c:
        yield c


def request(api, method, path, body=None):
    """(status, document); status 0 when nothing came back (the connection broke). Dkron
    answers a refused job write in plain text: the document is then that text."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{api}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=2 * CALL_TIMEOUT_MS / 1000) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read().decode(errors="replace")
        return err.code, json.loads(text) if text.startswith("{") else text
    except OSError as exc:
        return 0, str(exc)


class Workload:
    """Clients writing and reading through the APIs of the servers not under fault."""

    def __init__(self, cluster):
        self.cluster, self.servers = cluster, sorted(cluster.nodes)
        self.avoid, self.stop, self.lock = "", threading.Event(), threading.Lock()
        self.history, self.answers = [], []  # answers: (elapsed s, status, method, error text)
        self.threads = [threading.Thread(target=self.client, args=(p,)) for p in range(CLIENTS)]

    def client(self, process):
        rng, i = random.Random(process), 0
        while not self.stop.wait(rng.uniform(0.01, 0.05)):
            i += 1
            api = self.cluster.api(rng.choice([s for s in self.servers if s != self.avoid]))
            key, start = rng.choice(KEYS), time.monotonic()
            method = "POST" if rng.random() < 0.5 else "GET"
            if method == "POST":
                value = f"{process}-{i}"
                status, doc = request(api, "POST", "/v1/jobs", {
                    "name": key, "schedule": "@manually", "executor": "shell",
                    "executor_config": {"command": f"echo {value}"}})
                end = time.monotonic()
                op = Op(process, "write", key, value, start, end if status == 201 else UNKNOWN)
            else:
                status, doc = request(api, "GET", f"/v1/jobs/{key}")
                end = time.monotonic()
                found = doc["executor_config"]["command"].removeprefix("echo ") if status == 200 else None
                op = Op(process, "read", key, found, start, end) if status in (200, 404) else None
            with self.lock:
                self.answers.append((end - start, status, method, doc if status >= 300 or status == 0 else None))
                if op is not None:
                    self.history.append(op)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=4 * CALL_TIMEOUT_MS / 1000)

    def fault(self, victim, hurt, heal):
        """Keep clients off the victim (their requests to it finish first), hurt it, let the
        cluster carry on without it, then heal it."""
        self.avoid = victim
        time.sleep(0.5)
        hurt(victim)
        time.sleep(4)
        heal(victim)
        time.sleep(1)
        self.avoid = ""


@pytest.mark.parametrize("kind", ["kill", "pause"])
def test_api_requests_ride_through_a_leader_fault(cluster, kind):
    hurt, heal = {"kill": (cluster.kill, cluster.restart), "pause": (cluster.pause, cluster.resume)}[kind]
    with Workload(cluster) as work:
        time.sleep(1)
        for _ in range(ROUNDS):
            work.fault(cluster.leader(timeout=30), hurt, heal)
            cluster.leader(timeout=30)
        time.sleep(1)
    writes = [op for op in work.history if op.kind == "write"]
    reads = [op for op in work.history if op.kind == "read"]
    errors = [a for a in work.answers if a[1] not in (200, 201, 404)]
    slowest = max(a[0] for a in work.answers)
    print(f"{kind}: {len(writes)} writes, {len(reads)} reads, {len(errors)} errors, slowest {slowest:.2f}s")
    assert len(writes) > 20 and len(reads) > 20
    # Answered, each error with what went wrong (a 503 says why), none a broken connection.
    assert all(status != 0 and (doc.get("error") if isinstance(doc, dict) else doc) for _, status, _, doc in errors), \
        errors
    # Nothing waited for the call timeout: a request forwarded to the lost leader is answered
    # not_leader at the leader change and sent again at once.
    assert slowest < CALL_TIMEOUT_MS / 1000, f"a request took {slowest:.1f}s: it waited out the call timeout"
    assert not [e for e in errors if "within" in str(e[3])], "a request was answered with a timeout"
    assert check(work.history) == [], "the history through the API is not linearizable"
