"""Delivery of notices (what services.dispatcher.notices decides and renders), without holding
the dispatcher's loop: the Notifier reads what a decision needs from Raft and starts one
short-lived child per notification, timed out and reaped by timers; the child
(`python -m services.dispatcher.delivery`) does one webhook POST or one email."""

from __future__ import annotations

import json
import logging
import smtplib
import sys
import urllib.request
from email.message import EmailMessage

from common import messages as m
from common.errands import Errands
from services.dispatcher import notices

log = logging.getLogger(__name__)

MAX_CHILDREN = 64   # notifications in flight; beyond, one is dropped with a warning (a stuck receiver
                    # must not turn into an unbounded number of processes)
EXIT_BAD_PAYLOAD = 2


class Notifier:
    """The dispatcher's side: what one event of a job sends, and the children sending it."""

    def __init__(self, conf, loop, raft):
        self.conf, self.loop, self.raft = conf, loop, raft
        self.errands = Errands(loop.after, limit=MAX_CHILDREN, timeout_ms=conf.notify.timeout_ms, kind="notification")

    def finished(self, job, record, status):
        """A firing is over with this group status; `record` is its last execution."""
        notes = notices.configured(job, self.conf.notify)
        if not notices.needs_history(notes, status):
            return self.send(job, record, status)

        def got(result, err):
            if err is not None:
                log.warning("history unread, recovery not judged job=%s: %s", job["name"], err)
            previous = None if err else notices.previous_status(result.executions, record["group"])
            self.send(job, record, status, previous=previous)

        self.raft.call(m.ExecList(job=job["name"], limit=notices.HISTORY_LIMIT, stale=True), got)

    def skipped(self, job, rows):
        """Ticks recorded as skipped (rows of one decision): one on_skipped notice for them all."""
        if not rows:
            return
        if isinstance(job, str):
            def got(result, err):
                if err is None:
                    self.skipped(result.job, rows)
            return self.raft.call(m.JobGet(name=job, stale=True), got)
        self.send(job, rows[0], "skipped", count=len(rows))

    def send(self, job, record, status, *, previous=None, count=1):
        event, payloads, problems = notices.deliveries(job, record, status, self.conf.notify, self.conf.node.name,
                                                 previous=previous, count=count)
        for problem in problems:
            log.warning("notification not sent job=%s event=%s: %s", job["name"], event, problem)
        for payload in payloads:
            self.spawn(payload, f"job={job['name']} event={event} {notices.target(payload)}")

    def spawn(self, payload, what):
        try:
            self.errands.send([sys.executable, "-m", "services.dispatcher.delivery"], json.dumps(payload).encode(), what)
        except OSError as exc:
            log.warning("notification not sent %s: %s", what, exc)


# -- the child ---------------------------------------------------------------------------------

def post(payload):
    """Dkron's webhook: a POST of the rendered body; an answer of 400 or more is a failure."""
    req = urllib.request.Request(payload["url"], data=payload["body"].encode(), headers=payload["headers"],
                                 method="POST")
    with urllib.request.urlopen(req, timeout=payload["timeout_ms"] / 1000) as resp:
        resp.read()


def mail(payload):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = payload["from"], ", ".join(payload["to"]), payload["subject"]
    msg.set_content(payload["body"])
    host, _, port = payload["server"].rpartition(":")
    tls, timeout_s = payload["tls"], payload["timeout_ms"] / 1000
    kind = smtplib.SMTP_SSL if tls == "ssl" else smtplib.SMTP
    with kind(host, int(port), timeout=timeout_s) as smtp:
        smtp.ehlo()
        if tls == "starttls" or (tls == "auto" and smtp.has_extn("starttls")):
            smtp.starttls()
            smtp.ehlo()
        if payload["username"]:
            smtp.login(payload["username"], payload["password"])
        smtp.send_message(msg)


def main():
    try:
        payload = json.loads(sys.stdin.buffer.read())
        send = {"webhook": post, "email": mail}[payload["kind"]]
        what = notices.target(payload)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"notify: bad payload: {exc!r}", file=sys.stderr, flush=True)
        return EXIT_BAD_PAYLOAD
    try:
        send(payload)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        print(f"notify: {what} failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
