"""Cross-cutting HTTP behaviour, as Dkron's API has it: `X-Whom` on every response, CORS for
the origins [api] cors_origins names (none by default), and the one mapping from the client
library's typed errors to HTTP statuses and bodies (the ACL's check is services/api/access.py)."""

from __future__ import annotations

import json
import logging

import falcon

from common import errors, wire

log = logging.getLogger(__name__)

STATUS = {"bad_request": falcon.HTTP_400, "unauthenticated": falcon.HTTP_401, "forbidden": falcon.HTTP_403,
          "not_found": falcon.HTTP_404, "conflict": falcon.HTTP_409,
          "not_leader": falcon.HTTP_503, "unavailable": falcon.HTTP_503, "timeout": falcon.HTTP_503,
          "insufficient_storage": falcon.HTTP_507}
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# "*" covers every header for current browsers; the names are for those that predate the wildcard.
CORS_EXPOSE = "*, X-Total-Count, X-Whom, Location"


class Meta:
    """X-Whom names the node that answered. CORS lets the pages of the listed origins call the
    API; others get no CORS headers, so a browser keeps a page from elsewhere from reading the
    API or sending it anything but a simple request (which read_json refuses: JSON only)."""

    def __init__(self, node, cors_origins=()):
        self.node = node
        self.origins = frozenset(cors_origins)

    def process_request(self, req, resp):
        if req.method == "OPTIONS":
            resp.complete = True  # a CORS preflight needs only the headers set below
            return
        # A browser names the page's origin on every write it sends; a form of another site
        # (multipart needs no preflight, and /v1/restore takes it) is refused here.
        origin = req.get_header("Origin")
        if (req.method not in SAFE_METHODS and origin and origin != f"{req.scheme}://{req.netloc}"
                and "*" not in self.origins and origin not in self.origins):
            raise falcon.HTTPForbidden(title=f"a write from a page of {origin} is refused (not in [api] cors_origins)")

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Whom", self.node)
        origin = req.get_header("Origin")
        resp.append_header("Vary", "Origin")
        if not origin or not ("*" in self.origins or origin in self.origins):
            return
        resp.set_header("Access-Control-Allow-Origin", origin)
        resp.set_header("Access-Control-Allow-Methods", CORS_METHODS)
        resp.set_header("Access-Control-Allow-Headers", req.get_header("Access-Control-Request-Headers") or "*")
        resp.set_header("Access-Control-Expose-Headers", CORS_EXPOSE)


def text_errors(req):
    """Mark a request whose errors are plain text: Dkron's job writes answer that way."""
    req.context.text_errors = True


def render_error(req, resp, ex, params):
    """errors.Error → status and JSON {"error": ...} ({"error", "leader"} when one is known)."""
    resp.status = STATUS.get(ex.code, falcon.HTTP_500)
    body = {"error": str(ex)}
    if ex.leader:
        body["leader"] = ex.leader
    _write(req, resp, body)


def render_http_error(req, resp, ex, params):
    """Falcon's own errors (401 above, unknown route, wrong method) in the same JSON shape."""
    resp.status = ex.status
    for key, value in (ex.headers or {}).items():
        resp.set_header(key, value)
    _write(req, resp, {"error": ex.title or str(ex.status)})


def render_wire_error(req, resp, ex, params):
    """A reply the client library could not decode: the node behind us is at fault, not the caller."""
    log.warning("undecodable reply path=%s: %s", req.path, ex)
    resp.status = falcon.HTTP_502
    _write(req, resp, {"error": f"bad reply from the node's services: {ex}"})


def render_crash(req, resp, ex, params):
    log.exception("unexpected error method=%s path=%s", req.method, req.path)
    resp.status = falcon.HTTP_500
    _write(req, resp, {"error": f"internal error: {type(ex).__name__}"})


def _write(req, resp, body):
    if getattr(req.context, "text_errors", False):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = body["error"]
    else:
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(body)


def install(app):
    app.add_error_handler(Exception, render_crash)
    app.add_error_handler(errors.Error, render_error)
    app.add_error_handler(wire.WireError, render_wire_error)
    app.add_error_handler(falcon.HTTPError, render_http_error)
