"""Notifications, the pure part: which of the node's and a job's notifications an event matches
(rules always, on_failure, on_recovery, on_skipped), the fields their string.Template texts use,
and the payload each child of services.dispatcher.delivery sends (a webhook POST or an email)."""

from __future__ import annotations

import json
import string

from common import models

SUCCESS, FAILURE, RECOVERY, SKIPPED = "success", "failure", "recovery", "skipped"
# `always` is every firing that ran; skipped ticks can come once a second under forbid, so only
# on_skipped hears of them.
MATCHES = {"always": (SUCCESS, FAILURE, RECOVERY), "on_failure": (FAILURE,), "on_recovery": (RECOVERY,),
           "on_skipped": (SKIPPED,)}
FAILED = ("failed", "partially_failed")
HISTORY_LIMIT = 100  # executions read to find the firing before a success (is it a recovery?)
FIELDS = ("job", "displayname", "owner", "owner_email", "executor", "schedule", "event", "status", "success",
          "execution", "group", "attempt", "node", "scheduled_at", "started_at", "finished_at", "exit_code",
          "output", "reason", "count", "leader", "report")


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


def matching(notes, event):
    return [n for n in notes if any(event in MATCHES[rule] for rule in models.split_rules(n["rule"]))]


def needs_history(notes, status):
    """A success is a recovery when the firing before it failed; worth a history read only when
    some notification would be sent for it."""
    return status == "success" and bool(matching(notes, SUCCESS) or matching(notes, RECOVERY))


def previous_status(executions, group):
    """The outcome of the newest finished firing older than `group`, from a job's history
    (newest group first), judged as the state machine judges groups: the last attempt on each
    node decides. None when the history holds no such firing."""
    latest, prior = {}, None
    for ex in executions:
        if ex["group"] >= group or ex["status"] == "skipped" or ex["status"] in models.RUNNING:
            continue
        if prior is None:
            prior = ex["group"]
        if ex["group"] != prior:
            break
        if ex["node"] not in latest or ex["attempt"] > latest[ex["node"]]["attempt"]:
            latest[ex["node"]] = ex
    if not latest:
        return None
    outcomes = {ex["success"] for ex in latest.values()}
    return "success" if outcomes == {True} else "failed" if outcomes == {False} else "partially_failed"


def event_for(status, previous=None):
    if status == "skipped":
        return SKIPPED
    if status == "success":
        return RECOVERY if previous in FAILED else SUCCESS
    return FAILURE


def fields(job, execution, status, event, leader, count=1):
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
    }
    values["report"] = report(values)
    values.update({f"{k}_json": json.dumps(v) for k, v in list(values.items())})
    values["json"] = json.dumps({k: values[k] for k in FIELDS})
    return values


def report(values):
    """Dkron's .Report, the default email body: a summary, then the output."""
    lines = [f"Job: {values['job']}", f"Event: {values['event']} (status {values['status']})"]
    if values["event"] == SKIPPED:
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
    """What the notify child is given for one notification (JSON on its stdin)."""
    timeout_ms = settings.timeout_ms
    if note["type"] == "webhook":
        given = {k: render(v, values) for k, v in note.get("headers", {}).items()}
        defaults = {"Content-Type": "text/plain; charset=utf-8" if note["body"] else "application/json",
                    "User-Agent": "pykron"}
        headers = {**{k: v for k, v in defaults.items() if k.lower() not in {g.lower() for g in given}}, **given}
        body = render(note["body"], values) if note["body"] else values["json"]
        return {"kind": "webhook", "url": note["url"], "headers": headers, "body": body, "timeout_ms": timeout_ms}
    subject = render(note.get("subject") or settings.mail_subject, values)
    return {"kind": "email", "server": settings.smtp_address, "username": settings.smtp_username,
            "password": settings.smtp_password, "tls": settings.smtp_tls, "from": settings.mail_from,
            "to": [a.strip() for a in note["to"].split(",") if a.strip()],
            "subject": " ".join(subject.split()),  # a header is one line, whatever a field held
            "body": render(note["body"], values) if note["body"] else values["report"], "timeout_ms": timeout_ms}


def deliveries(job, execution, status, settings, leader, *, previous=None, count=1):
    """One event of a job → (event, payloads to send, notifications that cannot be sent: why)."""
    event = event_for(status, previous)
    notes = matching(configured(job, settings), event)
    if not notes:
        return event, [], []
    values = fields(job, execution, status, event, leader, count)
    payloads, problems = [], []
    for note in notes:
        if note["type"] == "email" and not settings.smtp_address:
            problems.append(f"email to {note['to']}: no [notify] smtp_address is set on {leader}")
        else:
            payloads.append(payload(note, values, settings))
    return event, payloads, problems


def target(payload):
    """Where a payload goes, for logs."""
    return f"webhook {payload['url']}" if payload["kind"] == "webhook" else f"email {','.join(payload['to'])}"
