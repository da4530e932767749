"""Processors and notifications on one real node, against real receivers on loopback: an HTTP
server for webhooks, an SMTP server (aiosmtpd) for email, a UDP syslog listener and a Fluent
forward input. Every wait polls against a deadline; nothing sleeps to synchronize."""

import json
import re
import signal
import socket
import threading
import time
from email import message_from_string
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgpack
import pytest
from aiosmtpd.controller import Controller

from common import models
from scripts.cluster import Cluster, kill_quietly, wait_until

GLOBAL_BODY = '{"job": $job_json, "event": "$event", "status": "$status", "reason": $reason_json}'


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "to": sorted(envelope.rcpt_tos),
                              "message": message_from_string(envelope.content.decode())})
        return "250 Message accepted for delivery"


class ForwardInput:
    """Fluent Bit's forward input, as far as a test needs: msgpack [tag, time, record] over TCP."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.messages = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            unpacker = msgpack.Unpacker(raw=False)
            with conn:
                conn.settimeout(10)
                while data := conn.recv(65536):
                    unpacker.feed(data)
            self.messages.extend(unpacker)


class World:
    def __init__(self, tmp):
        self.tmp = tmp
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
        self.http.received = []
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http.server_port}"
        self.mailbox = Mailbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            smtp_port = probe.getsockname()[1]
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=smtp_port)
        self.smtp.start()
        self.syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.syslog.bind(("127.0.0.1", 0))
        self.syslog.setblocking(False)
        self.datagrams = []
        self.fluent = ForwardInput()
        self.conf = {
            "notify": {"webhook_url": f"{self.base}/global", "webhook_rule": "on_failure", "webhook_body": GLOBAL_BODY,
                       "smtp_address": f"127.0.0.1:{smtp_port}", "mail_to": ["ops@example.com"],
                       "mail_rule": "on_failure", "mail_from": "pykron@example.com", "timeout_ms": 5000},
            # The files tests write under their own tmp_path: all of them under pytest's base.
            "processors": {"syslog_address": f"127.0.0.1:{self.syslog.getsockname()[1]}",
                           "files_root": str(Path(tmp).parent)},
        }
        # Dkron's way of configuring its fluent processor: the environment of the node.
        self.env = {"FLUENTBIT_HOST": "127.0.0.1", "FLUENTBIT_PORT": str(self.fluent.port), "FLUENTBIT_TAG": "pk.test"}

    def close(self):
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()
        self.syslog.close()
        self.fluent.server.close()

    def posts(self, path):
        return [r for r in self.http.received if r["path"] == path]

    def syslog_messages(self):
        while True:
            try:
                self.datagrams.append(self.syslog.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                return self.datagrams


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("receivers"))
    try:
        with Cluster(servers=1, conf=w.conf, env=w.env) as cluster:
            w.cluster, w.client = cluster, cluster.client()
            yield w
    finally:
        w.close()


def shell_job(name, command, **fields):
    return {"name": name, "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": command, "shell": "true"}, **fields}


def run_and_wait(world, name, runs=1):
    """Run the job now and return its execution once finished (after `runs` finished ones)."""
    world.client.run(name)

    def done():
        found = [x for x in world.client.executions(name) if x["status"] in models.FINISHED]
        return found if len(found) >= runs else None

    return wait_until(done, timeout=30, what=f"run {runs} of {name} finished")[0]


def spawned(world, job, event):
    """What the dispatcher started for one event of a job, from its log: every child of one
    event is started (and logged) before any of them can reach a receiver."""
    text = world.cluster.log("s1", "dispatcher")
    return sorted(re.findall(rf"notification started job={re.escape(job)} event={event} (.+?) delivery=\S+ "
                             rf"attempt=1 pid=\d+", text))


# -- notifications -----------------------------------------------------------------------------

def test_a_failure_goes_to_on_failure_and_always_and_not_to_on_recovery(world):
    base = world.base
    world.client.put_job(shell_job("breaks", "echo broken; exit 3", owner_email="owner@example.com", notifications=[
        {"type": "webhook", "rule": "on_recovery", "url": f"{base}/breaks/recovery"},
        {"type": "webhook", "rule": "always", "url": f"{base}/breaks/always", "body": "$job $event $exit_code",
         "headers": {"X-Job": "$job"}},
        {"type": "email", "rule": "on_failure", "to": "dev@example.com", "subject": "$job failed with exit code $exit_code"},
    ]))
    execution = run_and_wait(world, "breaks")
    assert execution["status"] == "failed" and execution["exit_code"] == 3

    hook = wait_until(lambda: [json.loads(r["body"]) for r in world.posts("/global")
                               if json.loads(r["body"])["job"] == "breaks"], what="the global webhook")
    assert hook == [{"job": "breaks", "event": "failure", "status": "failed", "reason": ""}]
    always = wait_until(lambda: world.posts("/breaks/always"), what="the job's always webhook")
    assert always[0]["body"] == "breaks failure 3" and always[0]["headers"]["X-Job"] == "breaks"

    def mails():
        found = [m for m in world.mailbox.messages if "breaks" in m["message"]["Subject"]]
        return found if len(found) >= 2 else None

    by_to = {tuple(m["to"]): m for m in wait_until(mails, what="two emails about breaks")}
    assert set(by_to) == {("ops@example.com", "owner@example.com"), ("dev@example.com",)}
    assert by_to[("dev@example.com",)]["message"]["Subject"] == "breaks failed with exit code 3"
    global_mail = by_to[("ops@example.com", "owner@example.com")]
    assert global_mail["message"]["Subject"] == "[pykron] breaks: failure"
    assert global_mail["from"] == "pykron@example.com"
    assert "Exit code: 3" in global_mail["message"].get_payload() and "broken" in global_mail["message"].get_payload()
    # The on_recovery webhook was never started for this failure.
    assert spawned(world, "breaks", "failure") == sorted([
        f"webhook {base}/global", f"webhook {base}/breaks/always", "email ops@example.com,owner@example.com",
        "email dev@example.com"])
    assert world.posts("/breaks/recovery") == []


def test_the_first_success_after_a_failure_is_a_recovery(world, tmp_path):
    base, marker = world.base, tmp_path / "ran-once"
    command = f"if [ -e {marker} ]; then echo fine; else touch {marker}; echo first; exit 1; fi"
    world.client.put_job(shell_job("flaky", command, notifications=[
        {"type": "webhook", "rule": "on_recovery", "url": f"{base}/flaky/recovery", "body": "$job $event $status"},
        {"type": "webhook", "rule": "always", "url": f"{base}/flaky/always", "body": "$event"},
    ]))

    def events(count):
        bodies = [r["body"] for r in world.posts("/flaky/always")]
        return bodies if len(bodies) >= count else None

    run_and_wait(world, "flaky", runs=1)
    assert wait_until(lambda: events(1), what="the failure") == ["failure"]
    run_and_wait(world, "flaky", runs=2)
    assert wait_until(lambda: events(2), what="the recovery") == ["failure", "recovery"]
    run_and_wait(world, "flaky", runs=3)
    assert wait_until(lambda: events(3), what="a plain success") == ["failure", "recovery", "success"]

    assert [r["body"] for r in world.posts("/flaky/recovery")] == ["flaky recovery success"]
    assert spawned(world, "flaky", "recovery") == [f"webhook {base}/flaky/always", f"webhook {base}/flaky/recovery"]
    assert spawned(world, "flaky", "success") == [f"webhook {base}/flaky/always"]  # not a recovery again
    failures = [json.loads(r["body"]) for r in world.posts("/global") if json.loads(r["body"])["job"] == "flaky"]
    assert [f["event"] for f in failures] == ["failure"]  # the global on_failure hook heard only the failure


def test_skipped_ticks_go_to_on_skipped_with_their_reason(world):
    skipped = {"type": "webhook", "rule": "on_skipped", "url": f"{world.base}/skipped", "body": "$job|$event|$reason"}
    # A run of 30 s every second under forbid: the ticks while it runs are skipped.
    sleepy = shell_job("sleepy", "sleep 30", schedule="@every 1s", concurrency="forbid", notifications=[skipped])
    # No node has this tag: each tick is skipped for want of a target.
    nowhere = shell_job("nowhere", "true", schedule="@every 1s", tags={"role": "nowhere"}, notifications=[skipped])
    world.client.put_job(sleepy)
    world.client.put_job(nowhere)

    def reasons(job):
        return [r["body"].split("|") for r in world.posts("/skipped") if r["body"].startswith(job + "|")]

    try:
        got = wait_until(lambda: reasons("sleepy"), timeout=30, what="a skipped tick of sleepy")
        assert got[0][1] == "skipped" and got[0][2].startswith("concurrency forbid: ")
        got = wait_until(lambda: reasons("nowhere"), timeout=30, what="a skipped tick of nowhere")
        assert got[0][1] == "skipped" and got[0][2].startswith("no alive node offers executor 'shell'")
    finally:
        world.client.put_job(dict(sleepy, disabled=True))
        world.client.put_job(dict(nowhere, disabled=True))
        world.client.kill("sleepy")
    recorded = [x for x in world.client.executions("sleepy") if x["status"] == "skipped"]
    assert recorded and recorded[0]["reason"].startswith("concurrency forbid")


def test_ticks_missed_while_the_scheduler_stood_still_are_skipped_by_policy_and_notified(world):
    """The scheduler's own skips (misfire policy) reach Raft through the dispatcher, which notifies."""
    skipped = {"type": "webhook", "rule": "on_skipped", "url": f"{world.base}/missed", "body": "$job|$count|$reason"}
    job = shell_job("misfired", "true", schedule="@every 1s", misfire_policy="skip", notifications=[skipped])
    world.client.put_job(job)
    try:
        wait_until(lambda: [x for x in world.client.executions("misfired") if x["status"] == "success"],
                   what="misfired running on schedule")
        stopped = world.cluster.pause("s1", "scheduler")
        try:
            # The fault itself: the scheduler stays stopped while three ticks go by.
            stopped_at = time.time()
            wait_until(lambda: time.time() > stopped_at + 3, what="three ticks missed")
        finally:
            for pid in stopped:  # by pid: a stopped service cannot tell its pid over ctl
                kill_quietly(pid, signal.SIGCONT)
        got = wait_until(lambda: [r["body"].split("|") for r in world.posts("/missed")], timeout=30,
                         what="the missed ticks notified")
    finally:
        world.client.put_job(dict(job, disabled=True))
    name, count, reason = got[0]
    assert name == "misfired" and int(count) >= 1
    assert reason == "misfire policy skip: missed while no scheduler ran"
    recorded = [x for x in world.client.executions("misfired") if x["status"] == "skipped"]
    assert recorded and recorded[0]["reason"].startswith("misfire policy skip")


# -- processors --------------------------------------------------------------------------------

def test_files_writes_the_full_output_and_stores_its_path(world, tmp_path):
    world.client.put_job(shell_job("files-only", "seq 1 3000", processors={"files": {"log_dir": str(tmp_path)}}))
    execution = run_and_wait(world, "files-only")
    path = tmp_path / f"{execution['id']}.log"
    assert execution["success"] is True
    assert execution["output"] == str(path)
    # The whole output, not the 8 KiB tail kept in the replicated record.
    assert path.read_text() == "".join(f"{i}\n" for i in range(1, 3001))


def test_forwarding_processors_deliver_and_keep_the_output(world, tmp_path):
    forward = {"forward": "true"}
    world.client.put_job(shell_job("forwarding", "echo forwarded output", processors={
        "files": {"log_dir": str(tmp_path), "forward": "true"}, "log": forward, "syslog": forward,
        "fluent": forward}))
    execution = run_and_wait(world, "forwarding")
    assert execution["output"] == "forwarded output\n" and execution["reason"] == ""
    assert (tmp_path / f"{execution['id']}.log").read_text() == "forwarded output\n"
    logged = wait_until(lambda: f"BEGIN OUTPUT job=forwarding execution={execution['id']}" in
                        world.cluster.log("s1", "executor"), what="the output in the executor log")
    assert logged
    datagram = wait_until(lambda: [d for d in world.syslog_messages() if "job=forwarding" in d],
                          what="a syslog datagram")[0]
    assert datagram.startswith("<78>") and " s1 pykron[" in datagram and datagram.endswith("forwarded output\n")
    tag, stamp, record = wait_until(lambda: [m for m in world.fluent.messages if m[2]["job_name"] == "forwarding"],
                                    what="a fluent record")[0]
    assert tag == "pk.test" and isinstance(stamp, int)
    assert record == {"host": "s1", "job_name": "forwarding", "message": "forwarded output\n",
                      "execution": execution["id"], "status": "success"}


def test_processors_that_do_not_forward_leave_dkrons_placeholders(world):
    world.client.put_job(shell_job("placeholders", "echo secret", processors={"log": {}, "syslog": {}, "fluent": {}}))
    execution = run_and_wait(world, "placeholders")
    assert execution["output"] == "Output in dkron log\nOutput in syslog\nOutput sent to Fluent"
    assert execution["success"] is True
    wait_until(lambda: [m for m in world.fluent.messages if m[2]["job_name"] == "placeholders"], what="fluent record")
    wait_until(lambda: [d for d in world.syslog_messages() if "job=placeholders" in d], what="syslog datagram")


def test_an_unknown_processor_is_noted_and_the_result_kept(world):
    world.client.put_job(shell_job("unknown-proc", "echo hi", processors={"teleport": {}}))
    execution = run_and_wait(world, "unknown-proc")
    assert execution["success"] is True and execution["output"] == "hi\n"
    assert execution["reason"] == "processor 'teleport' is not installed on s1"


def test_the_node_stays_healthy(world):
    for service in ("executor", "dispatcher", "scheduler"):
        assert world.cluster.ctl("s1", service)["ready"], service
    assert "Traceback" not in world.cluster.log("s1", "dispatcher")
    assert "Traceback" not in world.cluster.log("s1", "executor")
    assert Path(world.cluster.nodes["s1"].conf.node.data_dir).exists()
