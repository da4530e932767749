"""The job and execution model shared by every service and both faces: validation of a job
as Dkron's JSON gives it, the internal plain-map form that travels on the wire and sits in
Raft (times as Unix ms `*_at`), and the conversion back to Dkron's JSON shapes."""

from __future__ import annotations

import json
import string
import unicodedata
from datetime import datetime, timezone

from common import schedule
from common.errors import BadRequest

ZERO_TIME = "0001-01-01T00:00:00Z"  # Dkron's finished_at of a running execution
CONCURRENCY = ("allow", "forbid", "replace", "")
MISFIRE = ("skip", "run_once", "run_all")
MAX_HISTORY = 10_000
RUNNING = ("claimed", "running")
FINISHED = ("success", "failed", "lost", "killed", "interrupted", "skipped")
NOTIFY_RULES = ("always", "on_failure", "on_recovery", "on_skipped")
# The events each rule hears. `always` is every firing that ran; skipped ticks can come once a
# second under forbid, so only on_skipped hears of them.
NOTIFY_EVENTS = {"always": ("success", "failure", "recovery"), "on_failure": ("failure",),
                 "on_recovery": ("recovery",), "on_skipped": ("skipped",)}
# A job's notifications: each kind's keys (templates are string.Template text, see the README).
NOTIFY_KEYS = {"webhook": ("type", "rule", "url", "body", "headers"), "email": ("type", "rule", "to", "subject", "body")}
MAX_NOTIFICATIONS = 20
MAX_JOB_BYTES = 256 * 1024  # [api] max_job_bytes's default
MAX_RETRIES = 1000
NAME_CHARS = 200            # a job's name: it makes execution ids and topics

JOB_DEFAULTS = {
    "name": "", "displayname": "", "schedule": "", "timezone": "", "owner": "", "owner_email": "",
    "disabled": False, "tags": {}, "metadata": {}, "retries": 0, "parent_job": "",
    "dependent_jobs": [], "processors": {}, "concurrency": "allow", "executor": "",
    "executor_config": {}, "ephemeral": False, "starts_at": None, "expires_at": None,
    "created_at": 0,
    # Beyond Dkron: what to do with ticks missed while no leader ran them, a random delay per
    # tick, the first retry delay (doubled per attempt, up to the max), a timeout for any executor,
    # history kept.
    "misfire_policy": "run_once", "catchup_window": "1h", "jitter": "", "retry_interval": "1s",
    "max_retry_interval": "1h", "timeout": "", "history_limit": 100,
    "notifications": [],  # webhooks and emails of this job, each with a rule (NOTIFY_RULES)
}
DURATIONS = ("catchup_window", "jitter", "retry_interval", "max_retry_interval", "timeout")
# Kept by the state machine across updates, never taken from a client.
JOB_STATE = {"success_count": 0, "error_count": 0, "skipped_count": 0, "last_success_at": None,
             "last_error_at": None, "status": "", "last_scheduled_at": None}
_STRINGS = ("displayname", "timezone", "owner", "owner_email", "parent_job", "executor", "concurrency",
            "misfire_policy") + DURATIONS
_STRING_MAPS = ("tags", "metadata", "executor_config")


def validate_job(doc, *, now=0, max_bytes=MAX_JOB_BYTES):
    """Dkron job JSON (already decoded) → the internal job map. BadRequest says what is wrong.

    `now` anchors `@every` for a new job; the state machine keeps the first anchor on update.
    A job is at most `max_bytes` of JSON ([api] max_job_bytes), so that any page of jobs fits
    a frame and no stored job can make a listing fail."""
    if not isinstance(doc, dict):
        raise BadRequest("Unable to parse payload: a job must be a JSON object.")
    try:
        size = len(json.dumps(doc, ensure_ascii=False).encode())
    except (ValueError, TypeError, RecursionError):
        raise BadRequest("Unable to parse payload: a job must be plain JSON, nested at most a few levels.") from None
    if size > max_bytes:
        raise BadRequest(f"Job validation failed: the job is {size} bytes of JSON, over the maximum of {max_bytes} "
                         "([api] max_job_bytes).")
    job = dict(JOB_DEFAULTS)
    job["name"] = _name(doc.get("name"))
    for key in _STRINGS:
        if doc.get(key) is not None:
            job[key] = _typed(doc[key], str, key, "a string")
    for key in _STRING_MAPS:
        if doc.get(key) is not None:
            job[key] = _string_map(doc[key], key)
    for key in ("disabled", "ephemeral"):
        if doc.get(key) is not None:
            job[key] = _typed(doc[key], bool, key, "true or false")
    if doc.get("retries") is not None:
        retries = _typed(doc["retries"], int, "retries", "an integer")
        if not 0 <= retries <= MAX_RETRIES:
            raise BadRequest(f"Job validation failed: retries must be 0..{MAX_RETRIES}.")
        job["retries"] = retries
    if doc.get("history_limit") is not None:
        limit = _typed(doc["history_limit"], int, "history_limit", "an integer")
        if not 1 <= limit <= MAX_HISTORY:
            raise BadRequest(f"Job validation failed: history_limit must be 1..{MAX_HISTORY}.")
        job["history_limit"] = limit
    if doc.get("processors") is not None:
        procs = doc["processors"]
        if not isinstance(procs, dict) or not all(isinstance(v, dict) for v in procs.values()):
            raise BadRequest("Unable to parse payload: processors must map a name to an object.")
        job["processors"] = {k: _string_map(v, f"processors.{k}") for k, v in procs.items()}
    if doc.get("notifications") is not None:
        job["notifications"] = _notifications(doc["notifications"])
    if doc.get("schedule") is not None:
        job["schedule"] = _typed(doc["schedule"], str, "schedule", "a string")
    for key in ("starts_at", "expires_at"):
        if doc.get(key) not in (None, ""):
            value = _typed(doc[key], str, key, "an RFC 3339 time")
            job[key] = _check(lambda: schedule.parse_time(value, schedule.zone(job["timezone"])))
    if job["concurrency"] not in CONCURRENCY:
        raise BadRequest('Job validation failed: invalid concurrency policy value, use "allow", "forbid" or "replace".')
    if job["misfire_policy"] not in MISFIRE:
        raise BadRequest('Job validation failed: misfire_policy must be "skip", "run_once" or "run_all".')
    for key in DURATIONS:
        if job[key]:
            if _check(lambda: schedule.parse_duration(job[key])) < 0:
                raise BadRequest(f"Job validation failed: {key} must not be negative.")
    for key, value in job["tags"].items():
        _, sep, count = value.partition(":")
        if sep and not (count.isdigit() and int(count) >= 1):
            raise BadRequest(f'Job validation failed: tag {key}: "{value}" must be "value" or "value:N" with N ≥ 1.')
    if job["parent_job"] == job["name"]:
        raise BadRequest("Job validation failed: the job can not have itself as parent.")
    _check(lambda: schedule.zone(job["timezone"]))
    if job["schedule"] or not job["parent_job"]:
        _check(lambda: schedule.parse(job["schedule"], timezone=job["timezone"], name=job["name"]))
    if job["executor"] == "shell" and not job["executor_config"].get("command"):
        raise BadRequest("Job validation failed: the shell executor needs executor_config.command.")
    if "timeout" in job["executor_config"]:
        _check(lambda: executor_timeout_ms(job["executor"], job["executor_config"]["timeout"]))
    job["created_at"] = now
    return job


def executor_timeout_ms(executor, text):
    """executor_config.timeout in ms, 0 for none. Dkron's http executor reads whole seconds
    ("30": atoiOrDefault in its plugin/http); a Go duration ("30s") is taken there too, since it
    cannot be mistaken for seconds. Every other executor's is a Go duration, as Dkron's shell's."""
    text = text.strip()
    if executor == "http" and text.isascii() and text.isdigit():
        return int(text) * 1000
    ms = schedule.parse_duration(text) if text else 0
    if ms < 0:
        raise BadRequest(f"timeout {text!r} must not be negative")
    return ms


def duration_ms(job, key):
    """One of a job's Go durations in ms (0 when unset); they were checked on the way in."""
    value = job.get(key) or JOB_DEFAULTS[key]
    return schedule.parse_duration(value) if value else 0


def job_schedule(job, default_timezone=""):
    """The job's parsed schedule, anchored at its creation; None for a child job without one."""
    if not job["schedule"]:
        return None
    return schedule.parse(job["schedule"], timezone=job["timezone"] or default_timezone,
                          name=job["name"], anchor_at=job["created_at"])


def next_fire(job, now, default_timezone=""):
    """The job's next fire time after now, honouring disabled, starts_at and expires_at."""
    if job["disabled"] or job["parent_job"]:
        return None
    sched = job_schedule(job, default_timezone)
    if sched is None:
        return None
    after = max(now, job.get("last_scheduled_at") or 0)
    if job.get("starts_at") and after < job["starts_at"]:
        after = job["starts_at"] - 1
    fire = sched.next_after(after)
    if fire is not None and (job.get("expires_at") and fire > job["expires_at"] or fire > schedule.MAX_TIME_MS):
        return None  # none in the years a time may name (1 to 9999)
    return fire


def retry_delay_ms(job, attempt):
    """How long after a failed attempt the next one is due: the job's retry_interval, doubled
    for each attempt after the first, never more than its max_retry_interval."""
    first, cap = duration_ms(job, "retry_interval"), duration_ms(job, "max_retry_interval")
    return min(first << min(attempt - 1, 40), cap)


def notify_event(status, previous=""):
    """The event a firing's end (or a skip) is to notifications: a success after a failed or
    partly failed firing is a recovery."""
    if status == "skipped":
        return "skipped"
    if status == "success":
        return "recovery" if previous in ("failed", "partially_failed") else "success"
    return "failure"


def rules_hear(rules, event):
    """Whether any of the rule texts ("on_failure,on_recovery", ...) hears the event."""
    return any(event in NOTIFY_EVENTS.get(rule.strip(), ()) for text in rules for rule in text.split(","))


def job_to_dkron(job, next_at=None):
    """Internal job → Dkron's job JSON (with pykron's additions)."""
    return {
        "id": job["name"], "name": job["name"], "displayname": job["displayname"],
        "timezone": job["timezone"], "schedule": job["schedule"], "owner": job["owner"],
        "owner_email": job["owner_email"], "success_count": job.get("success_count", 0),
        "error_count": job.get("error_count", 0), "skipped_count": job.get("skipped_count", 0),
        "last_success": rfc3339(job.get("last_success_at")),
        "last_error": rfc3339(job.get("last_error_at")), "disabled": job["disabled"],
        "tags": job["tags"] or None, "metadata": job["metadata"] or None, "retries": job["retries"],
        "dependent_jobs": job["dependent_jobs"] or None, "parent_job": job["parent_job"],
        "processors": job["processors"], "concurrency": job["concurrency"],
        "executor": job["executor"], "executor_config": job["executor_config"] or None,
        "status": job.get("status", ""), "next": rfc3339(next_at) or ZERO_TIME,
        "ephemeral": job["ephemeral"], "starts_at": rfc3339(job["starts_at"]),
        "expires_at": rfc3339(job["expires_at"]),
        **{k: job.get(k, JOB_DEFAULTS[k]) for k in ("misfire_policy", "catchup_window", "jitter", "retry_interval",
                                                     "max_retry_interval", "timeout", "history_limit")},
        "notifications": job.get("notifications", []),
    }


def execution_id(job, group, node, attempt=1):
    """Unique in the cluster: Dkron's "<ns>-<node>" is unique only within its job, and two jobs
    firing at the same instant on one node must not share an id (the executor dedupes by it)."""
    return f"{job}-{group}-{node}" + (f"-{attempt}" if attempt > 1 else "")


def new_execution(job, node, *, group, scheduled_at, attempt=1, manual=False):
    return {
        "id": execution_id(job, group, node, attempt), "job": job, "group": group, "attempt": attempt, "node": node,
        "scheduled_at": scheduled_at, "manual": manual, "status": "claimed", "started_at": None,
        "finished_at": None, "success": False, "exit_code": None, "output": "",
        "output_truncated": False, "output_size": 0, "reason": "",
    }


def start_time(execution):
    """When a run is due to start: its tick, plus the random delay its jitter drew."""
    return execution["scheduled_at"] + execution.get("jitter_ms", 0)


_EXECUTION_TIMES = ("scheduled_at", "started_at", "finished_at", "retry_at")
_EXECUTION_COUNTS = {"attempt": (1, MAX_RETRIES + 1), "jitter_ms": (0, schedule.MAX_DURATION_MS),
                     "exit_code": (-(1 << 31), 1 << 31), "output_size": (0, 1 << 62)}
EXECUTION_TEXT_CHARS = 4096
_EXECUTION_TYPES = {"id": str, "job": str, "group": int, "attempt": int, "node": str, "status": str,
                    "success": bool, "output": str}


def check_ack(ack):
    """An ack from the dispatcher ({job, id, started_at}), checked before it is proposed to Raft."""
    if not isinstance(ack, dict) or set(ack) != {"job", "id", "started_at"}:
        raise BadRequest(f"ack: expected job, id and started_at, got {sorted(ack) if isinstance(ack, dict) else ack!r}")
    if type(ack["job"]) is not str or type(ack["id"]) is not str or type(ack["started_at"]) is not int:
        raise BadRequest("ack: job and id must be strings, started_at an integer")
    if not schedule.MIN_TIME_MS <= ack["started_at"] <= schedule.MAX_TIME_MS:
        raise BadRequest("ack: started_at must be a time in ms within years 1 to 9999")
    return ack


_DELIVERY_TYPES = {"id": str, "kind": str, "outcome": str, "attempts": int, "error": str}


def check_done(mark):
    """A follow-up carried out ({id, deliveries: [{id, kind, outcome, attempts, error}]}), from the
    dispatcher, checked before it is proposed to Raft."""
    if not isinstance(mark, dict) or type(mark.get("id")) is not str or not isinstance(mark.get("deliveries", []), list):
        raise BadRequest("done: expected {id, deliveries}")
    for delivery in mark.get("deliveries", []):
        if not isinstance(delivery, dict) or any(type(delivery.get(k)) is not t for k, t in _DELIVERY_TYPES.items()):
            raise BadRequest(f"done {mark['id']}: a delivery needs {', '.join(_DELIVERY_TYPES)}")
        if delivery["outcome"] not in ("delivered", "gave_up"):
            raise BadRequest(f"done {mark['id']}: delivery outcome {delivery['outcome']!r}")
    return {"id": mark["id"], "deliveries": list(mark.get("deliveries", []))}


def check_execution(ex):
    """An execution record from another service (a claim's or a result), checked before it is
    proposed to Raft: its types, and its times, counts and texts within their bounds, so that
    nothing stored can make a listing fail."""
    if not isinstance(ex, dict):
        raise BadRequest("execution record: expected a map")
    for key, kind in _EXECUTION_TYPES.items():
        if type(ex.get(key)) is not kind:
            raise BadRequest(f"execution record: {key} must be {kind.__name__}, got {type(ex.get(key)).__name__}")
    if ex["status"] not in RUNNING + FINISHED:
        raise BadRequest(f"execution record: unknown status {ex['status']!r}")
    for key in _EXECUTION_TIMES:
        value = ex.get(key)
        if value is not None and not (type(value) is int and schedule.MIN_TIME_MS <= value <= schedule.MAX_TIME_MS):
            raise BadRequest(f"execution record: {key} must be a time in ms within years 1 to 9999, or null")
    for key, (lo, hi) in _EXECUTION_COUNTS.items():
        value = ex.get(key, lo)
        if value is not None and not (type(value) is int and lo <= value <= hi):
            raise BadRequest(f"execution record: {key} must be an integer {lo}..{hi}")
    for key in ("id", "job", "node", "reason"):
        if len(ex.get(key) or "") > EXECUTION_TEXT_CHARS:
            raise BadRequest(f"execution record: {key} is longer than {EXECUTION_TEXT_CHARS} characters")
    return {**new_execution(ex["job"], ex["node"], group=ex["group"], scheduled_at=ex.get("scheduled_at")), **ex}


def execution_to_dkron(ex):
    return {
        "id": ex["id"], "job_name": ex["job"], "group": ex["group"], "attempt": ex["attempt"],
        "node_name": ex["node"], "started_at": rfc3339(ex["started_at"]) or ZERO_TIME,
        "finished_at": rfc3339(ex["finished_at"]) or ZERO_TIME, "success": ex["success"],
        "output": ex["output"], "output_truncated": ex["output_truncated"],
        "status": ex["status"], "scheduled_at": rfc3339(ex["scheduled_at"]), "jitter_ms": ex.get("jitter_ms", 0),
        "exit_code": ex["exit_code"], "reason": ex["reason"],
        # A failed attempt whose retry is pending says when it is due; each notification of the
        # firing it ended says whether it was delivered or given up.
        "retrying": bool(ex.get("retrying")), "retry_at": rfc3339(ex.get("retry_at")),
        "notifications": ex.get("notified", []),
    }


def rfc3339(ms):
    if ms is None or not schedule.MIN_TIME_MS <= ms <= schedule.MAX_TIME_MS:
        return None  # checked on the way in: what is out of range now was stored before the checks
    when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def tail(text, limit):
    """The last `limit` bytes of text, cut on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[-limit:].decode(errors="ignore"), True


def _name(value):
    if value is None or value == "":
        raise BadRequest("Job validation failed: name cannot be empty.")
    if not isinstance(value, str):
        raise BadRequest("Unable to parse payload: name must be a string.")
    if len(value) > NAME_CHARS:
        raise BadRequest(f"Job validation failed: name is longer than {NAME_CHARS} characters.")
    for char in value:
        if not (unicodedata.category(char) == "Ll" or char in "0123456789_-"):
            raise BadRequest(f"Job validation failed: name contains illegal character '{char}'.")
    return value


def _typed(value, kind, key, what):
    if type(value) is not kind:
        raise BadRequest(f"Unable to parse payload: {key} must be {what}, got {type(value).__name__}.")
    return value


def _string_map(value, key):
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"Unable to parse payload: {key} must map names to strings.")
    return dict(value)


def split_rules(text):
    """"on_failure,on_recovery" → ("on_failure", "on_recovery"); BadRequest names a bad rule."""
    rules = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in rules if r not in NOTIFY_RULES]
    if bad or not rules:
        raise BadRequest(f"rule {text!r} is not one of {', '.join(NOTIFY_RULES)} (or several, with commas)")
    return rules


def _notifications(value):
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise BadRequest("Unable to parse payload: notifications must be a list of objects.")
    if len(value) > MAX_NOTIFICATIONS:
        raise BadRequest(f"Job validation failed: at most {MAX_NOTIFICATIONS} notifications.")
    found = []
    for i, doc in enumerate(value):
        where = f"notifications[{i}]"
        kind = doc.get("type")
        if not isinstance(kind, str) or kind not in NOTIFY_KEYS:  # {} or [] would not even hash
            raise BadRequest(f'Job validation failed: {where}.type must be "webhook" or "email".')
        unknown = sorted(set(doc) - set(NOTIFY_KEYS[kind]))
        if unknown:
            raise BadRequest(f"Job validation failed: {where}: unknown key {unknown[0]!r} for a {kind} "
                             f"(keys: {', '.join(NOTIFY_KEYS[kind])}).")
        note = {"type": kind, "rule": "always", "body": "",
                **({"url": "", "headers": {}} if kind == "webhook" else {"to": "", "subject": ""})}
        for key, given in doc.items():
            if key == "headers":
                note[key] = _string_map(given, f"{where}.headers")
            elif key != "type":
                note[key] = _typed(given, str, f"{where}.{key}", "a string")
        _check(lambda: split_rules(note["rule"]))
        if kind == "webhook" and not note["url"].startswith(("http://", "https://")):
            raise BadRequest(f"Job validation failed: {where}.url must be an http:// or https:// URL.")
        if kind == "email" and not all("@" in a for a in note["to"].split(",")):
            raise BadRequest(f"Job validation failed: {where}.to must be email addresses, separated by commas.")
        for key in ("body", "subject"):
            if note.get(key) and not string.Template(note[key]).is_valid():
                raise BadRequest(f"Job validation failed: {where}.{key} is not a valid template "
                                 "(write $$ for a dollar sign).")
        found.append(note)
    return found


def _check(fn):
    try:
        return fn()
    except BadRequest as err:
        raise BadRequest(f"Job validation failed: {err}.") from None
