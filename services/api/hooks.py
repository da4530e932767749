"""Cross-cutting HTTP behaviour, as Dkron's API has it: `X-Whom` on every response, CORS for
any origin (exposing X-Total-Count to browsers), the optional X-Dkron-Token check, and the one
mapping from the client library's typed errors to HTTP statuses and bodies."""

from __future__ import annotations

import hmac
import json

import falcon

from common import errors

STATUS = {"bad_request": falcon.HTTP_400, "not_found": falcon.HTTP_404, "conflict": falcon.HTTP_409,
          "not_leader": falcon.HTTP_503, "unavailable": falcon.HTTP_503, "timeout": falcon.HTTP_503}
OPEN_PATHS = ("/health",)


class Meta:
    """X-Whom names the node that answered; CORS lets the UI of any origin call the API."""

    def __init__(self, node):
        self.node = node

    def process_request(self, req, resp):
        if req.method == "OPTIONS":
            resp.complete = True  # a CORS preflight needs only the headers below

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Whom", self.node)
        resp.set_header("Access-Control-Allow-Origin", "*")
        resp.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
        resp.set_header("Access-Control-Allow-Headers", req.get_header("Access-Control-Request-Headers") or "*")
        resp.set_header("Access-Control-Expose-Headers", "*")


class Token:
    """When a token is configured, every request but /health carries it in X-Dkron-Token."""

    def __init__(self, token):
        self.token = token

    def process_request(self, req, resp):
        if not self.token or req.path in OPEN_PATHS or req.method == "OPTIONS":
            return
        given = req.get_header("X-Dkron-Token") or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise falcon.HTTPError(falcon.HTTP_401, title="missing or wrong X-Dkron-Token")


def render_error(req, resp, ex, params):
    """errors.Error → status and JSON {"error": ...}; job writes answer text/plain (Dkron's spec)."""
    status = STATUS.get(ex.code, falcon.HTTP_500)
    if req.context.get("text_errors") and ex.code == "bad_request":
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = str(ex)
    else:
        resp.content_type = falcon.MEDIA_JSON
        body = {"error": str(ex)}
        if ex.leader:
            body["leader"] = ex.leader
        resp.text = json.dumps(body)
    resp.status = status


def render_http_error(req, resp, ex, params):
    resp.status = ex.status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"error": ex.title or ex.status})
    for key, value in (ex.headers or {}).items():
        resp.set_header(key, value)


def install(app):
    app.add_error_handler(errors.Error, render_error)
    app.add_error_handler(falcon.HTTPError, render_http_error)
