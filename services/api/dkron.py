"""HTTP ⇄ model for Dkron's JSON: reading request bodies with Dkron's plain-text errors,
rendering with `?pretty`, Serf's member shape, and the list conventions of ra-data-json-server
that Dkron's UI sends (`metadata[k]`, `q`, `status`, `disabled`, `_sort`, `_order`, `_start`, `_end`)."""

from __future__ import annotations

import json
import re

import falcon

from common import errors, models, wire

MAX_BODY_BYTES = 1 << 20
MAX_WHOLE_NUMBER = 1_000_000_000  # _start, _end and the like: far past any list this API serves
# Dkron sorts jobs on its BuntDB indexes; "id" is the name. An unknown key is a 400 here, not
# Dkron's 500: it is the caller's mistake, and saying which keys exist is more use.
JOB_SORT = {"id": "name", "name": "name", "displayname": "displayname", "schedule": "schedule",
            "success_count": "success_count", "error_count": "error_count", "last_success": "last_success_at",
            "last_error": "last_error_at", "next": "next", "status": "status"}
EXECUTION_SORT = ("id", "started_at", "finished_at", "attempt")
# Serf's MemberStatus numbers; a suspect member is still alive to Serf's clients.
MEMBER_STATUS = {"alive": 1, "suspect": 1, "leaving": 2, "left": 3, "failed": 4}
_METADATA = re.compile(r"^metadata\[(.+)\]$")


def read_json(req):
    """The request body as JSON, or BadRequest whose text says why (Dkron: text/plain). JSON
    only with a JSON Content-Type: the types a page of another site may send without asking
    first (text/plain, forms) are refused with 415, so no such page can write here."""
    media = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise falcon.HTTPUnsupportedMediaType(
            title=f"expected a JSON body with Content-Type: application/json, got {req.content_type or 'none'}")
    if req.content_length and req.content_length > MAX_BODY_BYTES:
        raise errors.BadRequest(f"Unable to parse payload: body over {MAX_BODY_BYTES} bytes.")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise errors.BadRequest(f"Unable to parse payload: body over {MAX_BODY_BYTES} bytes.")
    if not raw.strip():
        raise errors.BadRequest("Unable to parse payload: the body is empty, expected a JSON object.")
    return parse_json(raw)


def parse_json(raw, refusal="Unable to parse payload"):
    """JSON text → plain data within the wire's bounds (int64 integers, MAX_DEPTH levels), or
    BadRequest saying which it breaks: deep nesting is a 400, never a RecursionError's 500."""
    try:
        doc = json.loads(raw, parse_int=_int64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"{refusal}: {str(exc)[:200]}.") from None
    except RecursionError:
        raise errors.BadRequest(f"{refusal}: nested more than {wire.MAX_DEPTH} deep.") from None
    broken = wire.bounded(doc, depth=1)  # the body it travels in is one level more
    if broken:
        raise errors.BadRequest(f"{refusal}: {broken}.")
    return doc


def _int64(text):
    """JSON integers as Go reads them: past int64 is a parse error (the state could not hold it)."""
    if len(text) > 20:
        raise ValueError(f"number {text[:30]}... out of range")
    value = int(text)
    if not wire.INT_MIN <= value <= wire.INT_MAX:
        raise ValueError(f"number {text[:30]} out of range")
    return value


def render(req, resp, doc, status=falcon.HTTP_200):
    """JSON, indented when `?pretty` is present with any value (Dkron's renderJSON)."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(doc, indent=2 if "pretty" in req.params else None)


def job_json(job, now):
    """A stored job in Dkron's shape, with `next` from the same schedule code the scheduler uses."""
    return models.job_to_dkron(job, _next(job, now))  # a job stored before a schedule rule tightened still lists


def list_jobs(req, client, now):
    """GET /v1/jobs → (page, total). A plain page in name order, the usual request, reads just
    that page from the state; filters and other orders read every job (filter_jobs). Either way
    the state answers only the jobs the request's token may read, and counts only those."""
    stale = "stale" in req.params
    filtered = any(_METADATA.match(k) for k in req.params) or any(
        req.get_param(k) for k in ("q", "status", "disabled"))
    plain = not filtered and (req.get_param("_sort") or "id") in ("id", "name") and not _descending(req)
    if not plain or req.get_param("_end") in (None, ""):
        return filter_jobs(req, client.jobs(stale=stale), now)
    start = whole_number(req, "_start", 0)
    jobs, total = client.job_page(start, max(0, whole_number(req, "_end", 0) - start), stale=stale)
    return [job_json(j, now) for j in jobs], total


def filter_jobs(req, jobs, now):
    """Dkron's GET /v1/jobs filters, sort and slice over stored jobs: (page in Dkron's shape,
    total after filtering). Only the page is rendered, and `next` is computed for every job
    only when sorting by it: with 10,000 jobs, that work is what a request costs."""
    wanted = {m.group(1): _last(v) for k, v in req.params.items() if (m := _METADATA.match(k))}
    q, status, disabled = req.get_param("q"), req.get_param("status"), req.get_param("disabled")
    key = req.get_param("_sort") or "id"
    if key not in JOB_SORT:
        raise errors.BadRequest(f"_sort: cannot sort jobs by {key!r} (one of {', '.join(sorted(JOB_SORT))})")
    found = []
    for job in jobs:
        if wanted and not all((job["metadata"] or {}).get(k) == v for k, v in wanted.items()):
            continue
        if q and q not in job["name"] and q not in job["displayname"]:
            continue
        if status and (job.get("status") or "untriggered") != status:
            continue
        if disabled and str(job["disabled"]).lower() != disabled.lower():
            continue
        found.append(job)
    if key == "next":
        nexts = {j["name"]: _next(j, now) for j in found}
        value = lambda j: nexts[j["name"]]  # noqa: E731
    else:
        field = JOB_SORT[key]
        value = lambda j: j.get(field)  # noqa: E731
    # Missing values (never ran, no next) sort after present ones, and never compare with them.
    found.sort(key=lambda j: (value(j) is None, value(j) if value(j) is not None else 0), reverse=_descending(req))
    start = whole_number(req, "_start", 0)
    end = whole_number(req, "_end", len(found))
    return [job_json(j, now) for j in found[start:max(start, end)]], len(found)


def _next(job, now):
    try:
        return models.next_fire(job, now)
    except errors.BadRequest:
        return None


def sort_executions(req, docs, records):
    """Executions arrive newest first; `_sort`/`_order` (DESC unless told) re-order them as Dkron does."""
    key = req.get_param("_sort")
    if key is None:
        return docs if _descending(req, "DESC") else docs[::-1]
    if key not in EXECUTION_SORT:
        raise errors.BadRequest(f"_sort: cannot sort executions by {key!r} (one of {', '.join(EXECUTION_SORT)})")
    field = "started_at" if key == "id" else key
    # A run not started yet sorts by its claim time (group is ns), so it stays among the newest.
    started = {r["id"]: r["started_at"] or r["group"] // 1_000_000 for r in records}
    pairs = sorted(zip(docs, records), reverse=_descending(req, "DESC"),
                   key=lambda p: started[p[1]["id"]] if field == "started_at" else (p[1][field] or 0))
    return [doc for doc, _ in pairs]


def output_limit(req):
    """`output_size_limit=N`: how many trailing bytes of output to keep, or None for all."""
    return whole_number(req, "output_size_limit", None)


def member_json(member):
    """A gossip member in Dkron's (Serf's) member shape, plus Dkron's `id` and `statusText`.
    The id is the member's name, stable across requests, so the UI can key its rows on it."""
    # pykron has one protocol where Serf has two (its own and its delegate's): both show it.
    lo, hi = member.get("protocol", (1, 1))
    return {"id": member["name"], "Name": member["name"], "Addr": member["addr"], "Port": member["port"],
            "Tags": member["tags"], "Status": MEMBER_STATUS.get(member["status"], 0),
            "statusText": member["status"], "ProtocolMin": lo, "ProtocolMax": hi, "ProtocolCur": hi,
            "DelegateMin": lo, "DelegateMax": hi, "DelegateCur": hi}


def _descending(req, default="ASC"):
    return (req.get_param("_order") or default).upper() == "DESC"


def whole_number(req, name, default):
    """Query parameter `name` as a whole number, `default` when absent; BadRequest names it otherwise."""
    value = req.get_param(name)
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > MAX_WHOLE_NUMBER:
        raise errors.BadRequest(f"{name}: expected a whole number up to {MAX_WHOLE_NUMBER}, got {value[:40]!r}")
    return int(value)


def _last(value):
    return value[-1] if isinstance(value, list) else value
