"""Notifications, the pure part: which of the node's and a job's notifications an event matches
(rules always, on_failure, on_recovery, on_skipped), the fields their string.Template texts use,
each notification's stable delivery id, and the payload each child of services.dispatcher.delivery
sends (a webhook POST or an email)."""

from __future__ import annotations

import json
import string
import uuid

from common import models

# Delivery ids are UUIDs derived from the notice (the effect the state machine recorded) and
# the notification, so that every leader sending it gives it the same id.
DELIVERY_NAMESPACE = uuid.UUID("5d3f6a4e-0c1b-4f7e-9a57-7079b2726f6e")
FIELDS = ("job", "displayname", "owner", "owner_email", "executor", "schedule", "event", "status", "success",
          "execution", "group", "attempt", "node", "scheduled_at", "started_at", "finished_at", "exit_code",
          "output", "reason", "count", "leader", "report", "delivery")


def configured(job, settings):
    """Every notification of one job: the node's global webhook and email ([notify]), then the
    job's own. The global email goes to mail_to and, as Dkron's does, to the job's owner_email."""
    found = []
    if settings.webhook_url:
        found.append({"type": "webhook", "rule": settings.webhook_rule, "url": settings.webhook_url,
                      "body": settings.webhook_body, "headers": dict(settings.webhook_headers)})
    to = [*settings.mail_to, *([job["owner_email"]] if job.get("owner_email") else [])]
    if settings.smtp_address and to:
        found.append({"type": "email", "rule": settings.mail_rule, "to": ",".join(to), "subject": "",
                      "body": settings.mail_body})
    return found + list(job.get("notifications") or [])


def own_rules(settings):
    """The rules of this node's global notifications, told to the state machine with each record
    so that it leaves a notice only for what some notification hears (the email may go to a
    job's owner alone, so it counts whenever email is set up)."""
    if settings is None:
        return []
    return ([settings.webhook_rule] if settings.webhook_url else []) + ([settings.mail_rule] if settings.smtp_address else [])


def matching(notes, event):
    return [n for n in notes if models.rules_hear([n["rule"]], event)]


def delivery_id(notice_id, note):
    """The stable id of one notification of one notice: the same from every leader and every
    attempt, for receivers to drop a second delivery (X-Pykron-Delivery, the email's Message-ID)."""
    where = note.get("url") if note["type"] == "webhook" else note.get("to")
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{notice_id}|{note['type']}|{where}"))


def fields(job, execution, status, event, leader, count=1, delivery=""):
    """What a template may name: $job, $status, $output, ... (FIELDS), each also as
    $<name>_json (a JSON string literal, for JSON bodies), and $json (all of them, an object)."""
    ex = execution
    values = {
        "job": job["name"], "displayname": job.get("displayname") or job["name"], "owner": job.get("owner", ""),
        "owner_email": job.get("owner_email", ""), "executor": job.get("executor", ""),
        "schedule": job.get("schedule", ""), "event": event, "status": status,
        "success": "true" if status == "success" else "false", "execution": ex["id"], "group": str(ex["group"]),
        "attempt": str(ex.get("attempt", 1)), "node": ex.get("node") or "",
        "scheduled_at": models.rfc3339(ex.get("scheduled_at")) or "",
        "started_at": models.rfc3339(ex.get("started_at")) or "",
        "finished_at": models.rfc3339(ex.get("finished_at")) or "",
        "exit_code": "" if ex.get("exit_code") is None else str(ex["exit_code"]),
        "output": ex.get("output") or "", "reason": ex.get("reason") or "", "count": str(count), "leader": leader,
        "delivery": delivery,
    }
    values["report"] = report(values)
    values.update({f"{k}_json": json.dumps(v) for k, v in list(values.items())})
    values["json"] = json.dumps({k: values[k] for k in FIELDS})
    return values


def report(values):
    """Dkron's .Report, the default email body: a summary, then the output."""
    lines = [f"Job: {values['job']}", f"Event: {values['event']} (status {values['status']})"]
    if values["event"] == "skipped":
        lines.append(f"Scheduled at: {values['scheduled_at']}")
    else:
        lines += [f"Execution: {values['execution']} on {values['node']}, attempt {values['attempt']}",
                  f"Scheduled at: {values['scheduled_at']}", f"Started at: {values['started_at']}",
                  f"Finished at: {values['finished_at']}", f"Exit code: {values['exit_code']}"]
    if values["reason"]:
        lines.append(f"Reason: {values['reason']}")
    lines.append(f"Reporting node: {values['leader']}")
    if values["output"]:
        lines += ["", "Output:", values["output"]]
    return "\n".join(lines) + "\n"


def render(template, values):
    """string.Template with safe_substitute: an unknown $name stays as written, never an error."""
    return string.Template(template).safe_substitute(values)


def payload(note, values, settings):
    """What the notify child is given for one notification (JSON on its stdin). The delivery id
    goes in the X-Pykron-Delivery header of a webhook and in an email's Message-ID."""
    timeout_ms, delivery = settings.timeout_ms, values["delivery"]
    if note["type"] == "webhook":
        given = {k: render(v, values) for k, v in note.get("headers", {}).items()}
        defaults = {"Content-Type": "text/plain; charset=utf-8" if note["body"] else "application/json",
                    "User-Agent": "pykron", "X-Pykron-Delivery": delivery}
        headers = {**{k: v for k, v in defaults.items() if k.lower() not in {g.lower() for g in given}}, **given}
        body = render(note["body"], values) if note["body"] else values["json"]
        return {"kind": "webhook", "url": note["url"], "headers": headers, "body": body, "timeout_ms": timeout_ms,
                "delivery": delivery}
    subject = render(note.get("subject") or settings.mail_subject, values)
    return {"kind": "email", "server": settings.smtp_address, "username": settings.smtp_username,
            "password": settings.smtp_password, "tls": settings.smtp_tls, "from": settings.mail_from,
            "to": [a.strip() for a in note["to"].split(",") if a.strip()],
            "subject": " ".join(subject.split()),  # a header is one line, whatever a field held
            "body": render(note["body"], values) if note["body"] else values["report"], "timeout_ms": timeout_ms,
            "delivery": delivery, "message_id": f"<{delivery}@pykron>"}


def deliveries(notice, settings, leader):
    """A notice (the body of a notify effect: event, status, count, record, job) → (payloads to
    send, each with its delivery id; notifications that cannot be sent: (delivery id, kind, why))."""
    job, record, event = notice["job"], notice["record"], notice["event"]
    payloads, problems = [], []
    for note in matching(configured(job, settings), event):
        delivery = delivery_id(notice["id"], note)
        if note["type"] == "email" and not settings.smtp_address:
            problems.append((delivery, "email", f"email to {note['to']}: no [notify] smtp_address is set on {leader}"))
        else:
            values = fields(job, record, notice["status"], event, leader, notice.get("count", 1), delivery)
            payloads.append(payload(note, values, settings))
    return payloads, problems


def target(payload):
    """Where a payload goes, for logs."""
    return f"webhook {payload['url']}" if payload["kind"] == "webhook" else f"email {','.join(payload['to'])}"
