"""Secret values in a job's executor_config (passwords, tokens, Authorization headers, and the
keys [security] secret_keys names): stored, replicated and used as they are, but shown as
REDACTED in every reply a face renders, and kept as stored when a job comes back with REDACTED
in their place (an edit or a toggle of what a read showed). Pure."""

from __future__ import annotations

import json

from common import errors

REDACTED = "<redacted>"
SECRET_KEYS = frozenset({"password", "saslpassword", "token", "secret", "apikey", "api_key", "accesskey",
                         "secretkey", "secret_key", "access_token", "auth_token"})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"})


def is_secret(key, extra=()):
    lowered = str(key).lower()
    return lowered in SECRET_KEYS or lowered in {k.lower() for k in extra}


def redact(job, extra=()):
    """A copy of the job with its secret values replaced by REDACTED (the job itself untouched)."""
    config = job.get("executor_config") if isinstance(job, dict) else None
    if not isinstance(config, dict) or not any(_secret_entry(k, v, extra) for k, v in config.items()):
        return job
    hidden = {k: (_headers(v, lambda name, value: REDACTED) if _is_headers(k) else REDACTED)
              if _secret_entry(k, v, extra) else v for k, v in config.items()}
    return {**job, "executor_config": hidden}


def keep_stored(job, old, extra=()):
    """The job to store for a write whose secret values may read REDACTED: each takes the stored
    value; BadRequest when there is none to take (a new job cannot say "as before")."""
    config = job.get("executor_config") if isinstance(job, dict) else None
    if not isinstance(config, dict) or REDACTED not in json.dumps(config):
        return job
    stored = ((old or {}).get("executor_config") or {})
    kept = {}
    for key, value in config.items():
        if _is_headers(key) and REDACTED in str(value):
            before = {name.lower(): v for name, v in _header_pairs(stored.get(key))}
            value = _headers(value, lambda name, v, before=before, key=key:
                             _stored(before.get(name.lower()), f"{key}: {name}") if v == REDACTED else v)
        elif value == REDACTED and is_secret(key, extra):
            value = _stored(stored.get(key), key)
        kept[key] = value
    return {**job, "executor_config": kept}


def _stored(value, what):
    if value is None:
        raise errors.BadRequest(f"executor_config.{what} is {REDACTED} and there is no stored value to keep")
    return value


def _is_headers(key):
    return str(key).lower() == "headers"


def _secret_entry(key, value, extra):
    if _is_headers(key):
        return any(name.lower() in SECRET_HEADERS for name, _ in _header_pairs(value))
    return is_secret(key, extra) and value not in ("", None)


def _header_pairs(value):
    """Dkron's http executor headers: a JSON string of ["Name: value", ...] (or that list)."""
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except ValueError:
            return []
    if not isinstance(items, list):
        return []
    pairs = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            name, _, rest = item.partition(":")
            pairs.append((name.strip(), rest.strip()))
    return pairs


def _headers(value, change):
    """The headers with each secret one's value passed through change(name, value), in the form
    they came (a JSON string stays a string)."""
    out = []
    for name, header_value in _header_pairs(value):
        if name.lower() in SECRET_HEADERS:
            header_value = change(name, header_value)
        out.append(f"{name}: {header_value}")
    return json.dumps(out) if isinstance(value, str) else out
