"""HTTP ⇄ model for Dkron's JSON: reading request bodies with Dkron's plain-text errors,
rendering with `?pretty`, and the job list conventions of ra-data-json-server that Dkron's UI
uses (`metadata[k]`, `q`, `status`, `disabled`, `_sort`, `_order`, `_start`, `_end`, X-Total-Count)."""

from __future__ import annotations

import json
import re

import falcon

from common import errors
from common.loop import now_ms
from common import models

MAX_BODY_BYTES = 1 << 20
SORT_KEYS = {"id": "name", "name": "name", "displayname": "displayname", "schedule": "schedule",
             "success_count": "success_count", "error_count": "error_count", "last_success": "last_success",
             "last_error": "last_error", "next": "next", "status": "status"}
_METADATA = re.compile(r"^metadata\[(.+)\]$")


def read_json(req):
    """The request body as JSON, or a 400 whose text says why (Dkron: text/plain)."""
    if req.content_length and req.content_length > MAX_BODY_BYTES:
        raise errors.BadRequest(f"Unable to parse payload: body over {MAX_BODY_BYTES} bytes.")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise errors.BadRequest(f"Unable to parse payload: body over {MAX_BODY_BYTES} bytes.")
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"Unable to parse payload: {exc}.") from None


def render(req, resp, doc, status=falcon.HTTP_200):
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(doc, indent=2 if "pretty" in req.params else None)


def job_json(job, now=None):
    try:
        next_at = models.next_fire(job, now or now_ms())
    except errors.BadRequest:
        next_at = None
    return models.job_to_dkron(job, next_at)


def filter_jobs(req, jobs):
    """Dkron's GET /v1/jobs filters, sort and slice; returns (page, total after filtering)."""
    wanted = {m.group(1): v for k, v in req.params.items() if (m := _METADATA.match(k))}
    q = req.get_param("q")
    status = req.get_param("status")
    disabled = req.get_param("disabled")
    found = []
    for doc in jobs:
        if wanted and not all((doc["metadata"] or {}).get(k) == v for k, v in wanted.items()):
            continue
        if q and q not in doc["name"] and q not in doc["displayname"]:
            continue
        if status and (doc["status"] or "untriggered") != status:
            continue
        if disabled and str(doc["disabled"]).lower() != disabled.lower():
            continue
        found.append(doc)
    key = req.get_param("_sort") or "id"
    if key not in SORT_KEYS:
        raise errors.BadRequest(f"_sort: cannot sort by {key!r} (one of {', '.join(sorted(SORT_KEYS))})")
    field = SORT_KEYS[key]
    found.sort(key=lambda d: (d[field] is None, d[field] if d[field] is not None else 0),
               reverse=(req.get_param("_order") or "ASC").upper() == "DESC")
    start = _index(req, "_start", 0)
    end = _index(req, "_end", len(found))
    return found[start:max(start, end)], len(found)


def _index(req, name, default):
    value = req.get_param(name)
    if value is None:
        return default
    if not value.isdigit():
        raise errors.BadRequest(f"{name}: expected a whole number, got {value!r}")
    return int(value)


def member_json(member):
    """A gossip member in Dkron's (Serf's) member shape."""
    status = {"alive": 1, "suspect": 1, "leaving": 2, "left": 3, "failed": 4}.get(member["status"], 0)
    proto = member.get("protocol", 1)
    return {"id": member["name"], "Name": member["name"], "Addr": member["addr"], "Port": member["port"],
            "Tags": member["tags"], "Status": status, "statusText": member["status"], "ProtocolMin": proto,
            "ProtocolMax": proto, "ProtocolCur": proto, "DelegateMin": proto, "DelegateMax": proto,
            "DelegateCur": proto}
