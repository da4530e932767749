"""What follows a run survives a failover, on real processes: 3 servers and an agent. A job
fails its first attempt with retries 2 at 6 s, has a dependent job and an `always` webhook; the
leader is killed (-9) or paused after the failure is recorded and before the retry: the retry
runs under the new leader, the firing ends a success, the child runs once and the receiver on
loopback gets the notice, at most twice and under one delivery id (also while it refuses the
first two attempts). A run-now asked through the API while the leader is killed runs once, and
so does the same request sent again to the new leader."""

import json
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.cluster import Cluster, wait_until

FINISHED = ("success", "failed", "lost", "killed", "interrupted", "skipped")
ON_AGENT = {"server": "false:1"}  # runs stay off the servers the faults hit


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        path = self.path.strip("/")
        refused = self.server.refuse.get(path, 0) > 0
        if refused:
            self.server.refuse[path] -= 1
        self.server.received.append({"path": path, "delivery": self.headers.get("X-Pykron-Delivery"), "body": body,
                                     "refused": refused})
        self.send_response(503 if refused else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    server.received, server.refuse = [], {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def cluster(request):
    with Cluster(servers=3, agents=1) as c:
        yield c
        if request.session.testsfailed:
            c.print_logs(60)


def survivor(cluster, leader):
    return next(n for n in ("s1", "s2", "s3") if n != leader)


def executions(cluster, via, name):
    """Through the API, as a user sees them (the pending retry and its due time included)."""
    with urllib.request.urlopen(f"{cluster.api(via)}/v1/jobs/{name}/executions", timeout=10) as resp:
        return json.load(resp)


def put_failing_chain(cluster, via, name, receiver, tmp_path):
    marker = tmp_path / f"{name}-failed-once"
    client = cluster.client(via)
    client.put_job({"name": name, "schedule": "@manually", "executor": "shell", "tags": ON_AGENT,
                    "executor_config": {"shell": "true",
                                        "command": f"if [ -e {marker} ]; then echo fine; else touch {marker}; exit 3; fi"},
                    "retries": 2, "retry_interval": "6s",
                    "notifications": [{"type": "webhook", "rule": "always",
                                       "url": f"http://127.0.0.1:{receiver.server_port}/{name}"}]})
    client.put_job({"name": f"{name}-child", "parent_job": name, "executor": "shell", "tags": ON_AGENT,
                    "executor_config": {"command": "echo child"}})


def kill(cluster, leader):
    cluster.kill(leader)
    return lambda: cluster.restart(leader)


def pause(cluster, leader):
    cluster.pause(leader)
    wait_until(lambda: cluster.leader(timeout=10) != leader, timeout=15, what="a new leader")
    return lambda: cluster.resume(leader)


@pytest.mark.parametrize("fault, refused", [(kill, 0), (pause, 0), (kill, 2)],
                         ids=["leader-killed", "leader-paused", "leader-killed-receiver-down-twice"])
def test_a_pending_retry_its_child_and_its_notice_survive_the_leaders_loss(cluster, receiver, tmp_path, fault, refused):
    leader = cluster.leader()
    via = survivor(cluster, leader)
    name = f"flaky-{fault.__name__}-{refused}"
    receiver.refuse[name] = refused
    put_failing_chain(cluster, via, name, receiver, tmp_path)
    cluster.client(via).run(name)

    def failed_and_pending():
        found = [x for x in executions(cluster, via, name) if x["attempt"] == 1 and x["status"] == "failed"]
        return found[0] if found and found[0]["retrying"] else None

    first = wait_until(failed_and_pending, timeout=30, what="the first attempt recorded failed, its retry pending")
    assert first["retry_at"] and first["exit_code"] == 3
    back = fault(cluster, leader)  # before the retry is due (6 s after the failure)
    try:
        def ended():
            found = [x for x in executions(cluster, via, name) if x["status"] in FINISHED]
            return found if any(x["attempt"] == 2 for x in found) else None

        runs = sorted(wait_until(ended, timeout=40, what="the retry under the new leader"), key=lambda x: x["attempt"])
        assert [(x["attempt"], x["status"]) for x in runs] == [(1, "failed"), (2, "success")]
        assert runs[1]["group"] == runs[0]["group"] and not runs[0]["retrying"]
        wait_until(lambda: cluster.client(via).job(name)["status"] == "success", what="the firing ended a success")
        child = wait_until(lambda: [x for x in executions(cluster, via, f"{name}-child") if x["status"] in FINISHED],
                           timeout=30, what="the child's run")
        hooks = wait_until(lambda: [r for r in receiver.received if r["path"] == name and not r["refused"]],
                           timeout=40, what="the notice delivered")
    finally:
        back()
    cluster.leader(timeout=30)
    time.sleep(3)  # the old leader back: a second child run or notice would show by now
    assert [x["status"] for x in executions(cluster, via, f"{name}-child")] == ["success"] == [c["status"] for c in child]
    assert json.loads(hooks[0]["body"])["event"] == "success"
    sent = [r for r in receiver.received if r["path"] == name]
    assert len([r for r in sent if not r["refused"]]) <= 2 and len(sent) - len(hooks) >= refused
    assert {r["delivery"] for r in sent} == {hooks[0]["delivery"]} and hooks[0]["delivery"]
    assert json.loads(hooks[0]["body"])["delivery"] == hooks[0]["delivery"]


def manual_job(cluster, name):
    """A job to run now, through a server other than the leader: (leader, that server, its client)."""
    leader = cluster.leader()
    via = survivor(cluster, leader)
    client = cluster.client(via)
    client.put_job({"name": name, "schedule": "@manually", "executor": "shell", "tags": ON_AGENT,
                    "executor_config": {"command": "true"}})
    return leader, via, client


def test_a_run_now_asked_while_the_leader_is_killed_runs_once(cluster):
    leader, via, client = manual_job(cluster, "asked")
    answers = []

    def ask():
        request = urllib.request.Request(f"{cluster.api(via)}/v1/jobs/asked/run", method="POST")
        with urllib.request.urlopen(request, timeout=60) as resp:
            answers.append(resp.status)

    asking = threading.Thread(target=ask)
    asking.start()
    cluster.kill(leader)
    asking.join(90)
    try:
        assert answers == [202]
        ran = wait_until(lambda: [x for x in client.executions("asked") if x["status"] in FINISHED] or None,
                         timeout=30, what="the run")
        wait_until(lambda: cluster.leader(timeout=10), what="a leader")
        assert [x["status"] for x in client.executions("asked")] == ["success"] == [x["status"] for x in ran]
    finally:
        cluster.restart(leader)


def test_a_run_now_request_sent_again_to_the_next_leader_runs_nothing_more(cluster):
    leader, via, client = manual_job(cluster, "again")
    client.local.session = f"test-{uuid.uuid4().hex[:8]}"
    client.local.seq = 0
    first = client.run("again")
    cluster.kill(leader)
    try:
        client.local.seq -= 1  # the same request: as a client whose answer was lost sends it again
        second = client.run("again")
        assert [x["id"] for x in second.executions] == [x["id"] for x in first.executions]
        wait_until(lambda: all(x["status"] in FINISHED for x in client.executions("again")), what="the run ended")
        assert len(client.executions("again")) == 1
    finally:
        cluster.restart(leader)
