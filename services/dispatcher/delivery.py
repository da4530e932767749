"""Delivery of notices (what services.dispatcher.notices renders and the dispatcher core decides
to send), without holding the dispatcher's loop: one short-lived child per attempt of a
notification, timed out and reaped by timers, its exit stepped back into the core; the child
(`python -m services.dispatcher.delivery`) does one webhook POST or one email."""

from __future__ import annotations

import json
import logging
import smtplib
import sys
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

from common.errands import Errands
from services.dispatcher import notices

log = logging.getLogger(__name__)

MAX_CHILDREN = 64   # notifications in flight; beyond, an attempt fails at once and is tried again
                    # later (a stuck receiver must not turn into an unbounded number of processes)
EXIT_BAD_PAYLOAD = 2


class Notifier:
    """The dispatcher's side: a child per attempt, and its outcome for the core (`sent`)."""

    def __init__(self, conf, loop, sent):
        self.loop, self.sent = loop, sent  # sent(delivery id, error text or None)
        self.errands = Errands(loop.after, limit=MAX_CHILDREN, timeout_ms=conf.notify.timeout_ms, kind="notification")

    def send(self, delivery):
        what = f"{delivery.what} delivery={delivery.id} attempt={delivery.attempts}"
        try:
            self.errands.send([sys.executable, "-m", "services.dispatcher.delivery"],
                              json.dumps(delivery.payload).encode(), what,
                              done=lambda code: self.sent(delivery.id, None if code == 0 else f"exit {code}"))
        except OSError as exc:
            log.warning("notification not sent %s: %s", what, exc)
            error = str(exc)
            self.loop.after(0, lambda: self.sent(delivery.id, error))  # not while the core's Ready is carried out


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
    # The same Message-ID on every attempt and from every leader: a second copy can be dropped.
    msg["Message-ID"] = payload.get("message_id") or make_msgid()
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
