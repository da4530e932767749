"""services/dispatcher/notices.py (rules, events, delivery ids, template fields, payloads), the job
field `notifications` and the [notify] keys that feed it, and services/dispatcher/delivery.py: the
child against a real HTTP server and a real SMTP server on loopback, and the Notifier's children."""

import dataclasses
import json
import logging
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from common import config, models
from common.errors import BadRequest, ConfigError
from services.dispatcher import delivery, notices
from services.dispatcher.followups import Delivery

ROOT = Path(__file__).resolve().parents[3]
NOW = 1_767_225_600_000
SETTINGS = config.load(env={}).notify


def settings(**changes):
    return dataclasses.replace(SETTINGS, **changes)


def job(**fields):
    doc = {"name": "backup", "schedule": "@every 1m", "executor": "shell", "executor_config": {"command": "true"},
           **fields}
    return models.validate_job(doc, now=NOW)


def execution(group=100, node="web1", attempt=1, success=True, status=None, **fields):
    ex = models.new_execution("backup", node, group=group, scheduled_at=NOW, attempt=attempt)
    return dict(ex, id=f"{group}-{node}-{attempt}", success=success,
                status=status or ("success" if success else "failed"), started_at=NOW + 10, finished_at=NOW + 20,
                exit_code=0 if success else 3, **fields)


# -- the job field -----------------------------------------------------------------------------

def test_notifications_are_validated_and_filled_with_defaults():
    got = job(notifications=[{"type": "webhook", "url": "https://hooks.example.com/x", "rule": "on_failure",
                              "headers": {"X-Token": "t"}},
                             {"type": "email", "to": "a@example.com, b@example.com"}])
    assert got["notifications"] == [
        {"type": "webhook", "rule": "on_failure", "url": "https://hooks.example.com/x", "body": "",
         "headers": {"X-Token": "t"}},
        {"type": "email", "rule": "always", "to": "a@example.com, b@example.com", "subject": "", "body": ""}]
    assert job()["notifications"] == []
    assert models.job_to_dkron(got)["notifications"] == got["notifications"]


@pytest.mark.parametrize("notes, expected", [
    ({"type": "webhook"}, "must be a list of objects"),
    ([{"type": "sms", "to": "1"}], 'type must be "webhook" or "email"'),
    ([{"type": "webhook", "url": "ftp://x"}], "url must be an http:// or https:// URL"),
    ([{"type": "webhook", "url": "http://x", "rule": "sometimes"}], "rule 'sometimes' is not one of"),
    ([{"type": "webhook", "url": "http://x", "rule": "on_failure,"}], None),
    ([{"type": "webhook", "url": "http://x", "to": "a@b"}], "unknown key 'to' for a webhook"),
    ([{"type": "email", "to": "nobody"}], "to must be email addresses"),
    ([{"type": "email", "to": "a@b", "subject": 5}], "subject must be a string"),
    ([{"type": "email", "to": "a@b", "body": "costs $5"}], "not a valid template"),
    ([{"type": "webhook", "url": "http://x", "headers": {"X": 1}}], "headers must map names to strings"),
    ([{"type": "email", "to": "a@b"}] * 21, "at most 20 notifications"),
])
def test_bad_notifications_are_refused_with_what_is_wrong(notes, expected):
    if expected is None:
        assert job(notifications=notes)["notifications"][0]["rule"] == "on_failure,"
        return
    with pytest.raises(BadRequest) as err:
        job(notifications=notes)
    assert expected in str(err.value)


def test_notify_config_is_checked_at_start(tmp_path):
    def refused(text):
        path = tmp_path / "node.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            config.load(path, env={})
        return str(err.value)

    assert "[notify] webhook_rule: rule 'never' is not one of" in refused('[notify]\nwebhook_rule = "never"\n')
    assert '[notify] smtp_address: expected "host:port", got "mail"' in refused('[notify]\nsmtp_address = "mail"\n')
    assert "[notify] webhook_url: expected an http://" in refused('[notify]\nwebhook_url = "example.com"\n')
    assert "[notify] smtp_tls: expected one of" in refused('[notify]\nsmtp_tls = "maybe"\n')
    assert "[processors] syslog_address" in refused('[processors]\nsyslog_address = "loghost"\n')
    assert config.load(env={"PYKRON_PROCESSORS_SYSLOG_ADDRESS": "10.0.0.1:514"}).processors.syslog_address


# -- rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, events", [
    ("always", {"success", "failure", "recovery"}),
    ("on_failure", {"failure"}),
    ("on_recovery", {"recovery"}),
    ("on_skipped", {"skipped"}),
    ("on_failure,on_recovery", {"failure", "recovery"}),
])
def test_each_rule_matches_its_events(rule, events):
    note = {"type": "webhook", "rule": rule, "url": "http://x"}
    assert {e for e in ("success", "failure", "recovery", "skipped") if notices.matching([note], e)} == events


def test_global_notifications_come_first_and_the_global_email_adds_the_owner():
    s = settings(webhook_url="http://hooks/x", webhook_rule="on_failure", smtp_address="127.0.0.1:25",
                 mail_to=["ops@example.com"])
    own = {"type": "webhook", "rule": "always", "url": "http://mine", "body": "", "headers": {}}
    got = notices.configured(job(owner_email="me@example.com", notifications=[own]), s)
    assert [(n["type"], n.get("url") or n.get("to"), n["rule"]) for n in got] == [
        ("webhook", "http://hooks/x", "on_failure"), ("email", "ops@example.com,me@example.com", "always"),
        ("webhook", "http://mine", "always")]
    assert notices.configured(job(), SETTINGS) == []  # nothing configured: nothing sent
    assert notices.configured(job(owner_email="me@x.io"), settings(smtp_address="h:25"))[0]["to"] == "me@x.io"
    assert notices.configured(job(), settings(smtp_address="h:25")) == []  # nobody to mail


@pytest.mark.parametrize("status, previous, event", [
    ("success", "", "success"), ("success", "success", "success"), ("success", "failed", "recovery"),
    ("success", "partially_failed", "recovery"), ("failed", "failed", "failure"),
    ("partially_failed", "", "failure"), ("skipped", "", "skipped"),
])
def test_events(status, previous, event):
    assert models.notify_event(status, previous) == event


def test_the_rules_told_to_the_state_machine_are_those_of_the_global_notifications():
    assert notices.own_rules(SETTINGS) == [] and notices.own_rules(None) == []
    s = settings(webhook_url="http://hooks/all", webhook_rule="on_failure", smtp_address="h:25", mail_rule="always")
    assert notices.own_rules(s) == ["on_failure", "always"]
    assert models.rules_hear(["on_failure,on_recovery"], "recovery") and not models.rules_hear(["always"], "skipped")


def test_a_delivery_id_is_stable_for_one_notification_of_one_notice_and_differs_otherwise():
    hook = {"type": "webhook", "url": "http://hooks/a"}
    first = notices.delivery_id("notify:backup:5:x", hook)
    assert first == notices.delivery_id("notify:backup:5:x", dict(hook, body="another body"))
    assert first != notices.delivery_id("notify:backup:6:x", hook)
    assert first != notices.delivery_id("notify:backup:5:x", dict(hook, url="http://hooks/b"))


# -- fields, templates, payloads ---------------------------------------------------------------

def test_fields_cover_the_job_and_the_execution_as_text_and_json():
    values = notices.fields(job(owner="ops"), execution(success=False, output='say "hi"\n', reason="exit 3"),
                            "failed", "failure", "s1")
    assert set(notices.FIELDS) <= set(values)
    assert values["job"] == "backup" and values["event"] == "failure" and values["status"] == "failed"
    assert values["success"] == "false" and values["exit_code"] == "3" and values["node"] == "web1"
    assert values["scheduled_at"] == "2026-01-01T00:00:00.000Z" and values["leader"] == "s1"
    assert values["output_json"] == '"say \\"hi\\"\\n"'
    assert json.loads(values["json"])["output"] == 'say "hi"\n'
    assert "Exit code: 3" in values["report"] and values["report"].endswith('say "hi"\n\n')


def test_templates_substitute_known_fields_and_leave_the_rest():
    values = notices.fields(job(), execution(), "success", "success", "s1")
    assert notices.render("$job ${status}: $$5 $unknown ${node}x", values) == "backup success: $5 $unknown web1x"
    assert notices.render("{\"o\": $output_json}", dict(values, output_json='"a\\nb"')) == '{"o": "a\\nb"}'


def test_a_webhook_without_a_body_posts_every_field_as_json():
    note = {"type": "webhook", "rule": "always", "url": "http://x/y", "body": "", "headers": {"X-Job": "$job"}}
    values = notices.fields(job(), execution(), "success", "success", "s1", delivery="d-1")
    got = notices.payload(note, values, SETTINGS)
    assert got["kind"] == "webhook" and got["url"] == "http://x/y"
    assert got["headers"] == {"Content-Type": "application/json", "User-Agent": "pykron", "X-Pykron-Delivery": "d-1",
                              "X-Job": "backup"}
    assert json.loads(got["body"])["job"] == "backup" and json.loads(got["body"])["delivery"] == "d-1"
    note = dict(note, body="$job is $status", headers={"content-type": "text/csv"})
    got = notices.payload(note, values, SETTINGS)
    assert got["body"] == "backup is success"
    assert got["headers"] == {"User-Agent": "pykron", "X-Pykron-Delivery": "d-1", "content-type": "text/csv"}


def test_an_email_has_a_one_line_subject_and_the_report_by_default():
    s = settings(smtp_address="127.0.0.1:2525", mail_from="cron@example.com", smtp_username="u",
                 smtp_password="p")
    values = notices.fields(job(), execution(success=False, reason="line one\nline two"), "failed", "failure", "s1")
    got = notices.payload({"type": "email", "to": "a@x.io, b@x.io", "subject": "", "body": ""}, values, s)
    assert got["subject"] == "[pykron] backup: failure" and got["message_id"] == "<@pykron>"  # no delivery here
    assert got["to"] == ["a@x.io", "b@x.io"] and got["from"] == "cron@example.com"
    assert got["body"] == values["report"] and (got["username"], got["password"]) == ("u", "p")
    got = notices.payload({"type": "email", "to": "a@x.io", "subject": "$job: $reason", "body": "$output"},
                          values, s)
    assert got["subject"] == "backup: line one line two"


def notice(event, status, **job_fields):
    return {"id": "notify:backup:100:x", "event": event, "status": status, "count": 1,
            "record": execution(success=status == "success"), "job": job(**job_fields)}


def test_deliveries_are_what_matches_and_explain_what_cannot_be_sent():
    s = settings(webhook_url="http://hooks/all", webhook_rule="on_failure")
    own = [{"type": "email", "rule": "on_failure", "to": "dev@x.io"},
           {"type": "webhook", "rule": "on_recovery", "url": "http://hooks/recovered"}]
    payloads, problems = notices.deliveries(notice("failure", "failed", notifications=own), s, "s1")
    assert [notices.target(p) for p in payloads] == ["webhook http://hooks/all"]
    assert payloads[0]["delivery"] == notices.delivery_id("notify:backup:100:x", {"type": "webhook",
                                                                                  "url": "http://hooks/all"})
    (delivery, kind, why), = problems
    assert kind == "email" and why == "email to dev@x.io: no [notify] smtp_address is set on s1"
    payloads, _ = notices.deliveries(notice("recovery", "success", notifications=own), s, "s1")
    assert [notices.target(p) for p in payloads] == ["webhook http://hooks/recovered"]
    assert notices.deliveries(notice("success", "success", notifications=own), s, "s1") == ([], [])


# -- the child, against real receivers ---------------------------------------------------------

class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, dict(self.headers), body.decode()))
        self.send_response(500 if self.path == "/broken" else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


def child(payload):
    return subprocess.run([sys.executable, "-m", "services.dispatcher.delivery"], input=json.dumps(payload).encode(),
                          cwd=ROOT, capture_output=True, timeout=30)


def test_the_child_posts_a_webhook(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/hook"
    done = child({"kind": "webhook", "url": url, "headers": {"X-Job": "backup"}, "body": "hello", "timeout_ms": 5000})
    assert done.returncode == 0, done.stderr
    [(path, headers, body)] = http_server.received
    assert (path, headers["X-Job"], body) == ("/hook", "backup", "hello")


def test_the_child_fails_on_an_error_status_or_a_bad_payload(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/broken"
    done = child({"kind": "webhook", "url": url, "headers": {}, "body": "", "timeout_ms": 5000})
    assert done.returncode == 1 and b"notify: webhook " in done.stderr and b"500" in done.stderr
    assert child({"kind": "pigeon"}).returncode == delivery.EXIT_BAD_PAYLOAD


def test_the_child_sends_an_email(smtp_server):
    controller, mailbox = smtp_server
    done = child({"kind": "email", "server": f"127.0.0.1:{controller.port}", "username": "", "password": "",
                  "tls": "auto", "from": "cron@example.com", "to": ["a@x.io", "b@x.io"],
                  "subject": "[pykron] backup: failure", "body": "it broke\n", "timeout_ms": 5000,
                  "message_id": "<d-1@pykron>"})
    assert done.returncode == 0, done.stderr
    [(sender, rcpts, content)] = mailbox.messages
    assert sender == "cron@example.com" and rcpts == ["a@x.io", "b@x.io"]
    assert "Subject: [pykron] backup: failure" in content and "it broke" in content
    assert "Message-ID: <d-1@pykron>" in content


def test_the_child_reports_an_unreachable_smtp_server():
    done = child({"kind": "email", "server": f"127.0.0.1:{free_port()}", "username": "", "password": "",
                  "tls": "none", "from": "a@x.io", "to": ["b@x.io"], "subject": "s", "body": "b", "timeout_ms": 2000})
    assert done.returncode == 1 and b"notify: email b@x.io failed" in done.stderr


# -- the Notifier: a child per attempt, its outcome handed back (a fake loop) --------------------

class FakeLoop:
    def __init__(self):
        self.timers = []

    def after(self, ms, fn):
        self.timers.append(fn)


def notifier():
    conf = config.load(env={"PYKRON_NODE_NAME": '"s1"'})
    outcomes = []
    n = delivery.Notifier(conf, FakeLoop(), lambda delivery_id, error: outcomes.append((delivery_id, error)))
    return n, outcomes


def reap_all(n):
    for proc, *_ in n.errands.running:
        proc.wait(30)
    while n.loop.timers:
        n.loop.timers.pop()()


def attempt(payload, what="job=backup event=failure webhook x"):
    return Delivery("d-1", "notify:backup:1:x", payload.get("kind", "webhook"), payload, what, attempts=1)


def test_each_attempt_is_a_child_whose_outcome_goes_back_to_the_core(http_server, caplog):
    caplog.set_level(logging.INFO)
    base = f"http://127.0.0.1:{http_server.server_port}"
    n, outcomes = notifier()
    n.send(attempt({"kind": "webhook", "url": f"{base}/ok", "headers": {"X-Pykron-Delivery": "d-1"}, "body": "hi",
                    "timeout_ms": 5000}))
    reap_all(n)
    n.send(dataclasses.replace(attempt({"kind": "webhook", "url": f"{base}/broken", "headers": {}, "body": "",
                                        "timeout_ms": 5000}), id="d-2"))
    reap_all(n)
    assert outcomes == [("d-1", None), ("d-2", "exit 1")]
    assert [(p, h["X-Pykron-Delivery"]) for p, h, _ in http_server.received[:1]] == [("/ok", "d-1")]
    assert "notification started job=backup event=failure webhook x delivery=d-1 attempt=1 pid=" in caplog.text
    assert n.errands.running == [] and not n.errands.reaping


def test_a_stuck_notification_is_killed_at_its_timeout_and_counts_as_failed(caplog):
    caplog.set_level(logging.INFO)
    n, outcomes = notifier()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        n.send(attempt({"kind": "webhook", "url": url, "headers": {}, "body": "", "timeout_ms": 60_000}, "stuck"))
        n.errands.running[0][1] = 0  # its deadline has passed
        n.loop.timers.pop()()
        assert "notification timed out, killing" in caplog.text and n.errands.running[0][1] is None
        n.errands.running[0][0].wait(30)
        n.loop.timers.pop()()
    assert "notification failed exit=-9 stuck" in caplog.text and n.errands.running == [] and not n.loop.timers
    assert outcomes == [("d-1", "exit -9")]


def test_too_many_notifications_in_flight_fail_the_attempt_with_a_warning(caplog):
    n, outcomes = notifier()
    n.errands.limit = 0
    n.send(attempt({"kind": "webhook"}, "test"))
    assert n.errands.running == [] and "notification not sent test delivery=d-1 attempt=1: 0 notification" in caplog.text
    n.loop.timers.pop()()  # handed back after the Ready, not while it is carried out
    assert outcomes == [("d-1", "0 notification errands still running; this one is dropped")]
