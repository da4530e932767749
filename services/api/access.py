"""Who may call the API: every request is judged by the one ACL check (common/acl.py) against
the route table of common/needs.py, with the token of X-Dkron-Token (or `Authorization:
Bearer`, as Dkron's UI sends it). Before the ACL is bootstrapped, a set [security] token is
still required as it was; once bootstrapped, it is a management token of this node's api."""

from __future__ import annotations

import hmac
import threading
import time

from common import acl, errors, needs
from common.loop import now_ms

VIEW_FRESH_S = 0.3  # a deleted token stops within this, plus the log's commit, on every server
UNKNOWN_AGAIN_S = 0.05  # a secret not in the view asks again after this (a token made just now)


class Grants:
    """What a request's caller may do, for the resources that judge more than the route: the
    job of a body (BODY routes), and lists that show only what the caller may read."""

    def __init__(self, view, caller, now):
        self.view, self.caller, self.now = view, caller, now

    @property
    def everything(self):
        return acl.unrestricted(self.view, self.caller)

    def require(self, path, capability, exists=None):
        acl.require(self.view, self.caller, acl.Need(path, capability), self.now, exists)

    def readable(self, name):
        return self.everything or acl.can_read(self.view, self.caller, needs.job_path(name), self.now)


OPEN_GRANTS = Grants(acl.View(), acl.Caller("node"), 0)


class CachedView:
    """The node's ACL view, asked of its raft service at most every VIEW_FRESH_S per process."""

    def __init__(self, node):
        self.node = node
        self.view, self.at = None, 0.0
        self.lock = threading.Lock()

    def forget(self):
        """After an ACL write through this api: the next request reads the view again."""
        self.at = float("-inf")

    def get(self, fresh_s=VIEW_FRESH_S):
        now = time.monotonic()
        if self.view is None or now - self.at > fresh_s:
            with self.lock:
                if self.view is None or now - self.at > fresh_s:
                    self.view, self.at = self.node.client.acl_view(), time.monotonic()
        return self.view


class Guard:
    def __init__(self, node, legacy_token=""):
        self.node = node
        self.views = CachedView(node)
        self.legacy = legacy_token.encode()

    def process_resource(self, req, resp, resource, params):
        req.context.grants = OPEN_GRANTS
        self.node.client.act_for("anonymous")  # the audit's author of this request's writes, until known
        if resource is None or req.method == "OPTIONS":
            return  # a 404 says nothing; a CORS preflight carries no token
        need = needs.for_route(req.method, req.uri_template, params)
        if need is acl.OPEN:
            return
        secret = given_secret(req)
        view = self.views.get()
        if not view.enabled:
            if self.legacy and not hmac.compare_digest(secret.encode(), self.legacy):
                # Constant-time, so the answer's timing tells nothing about how much of a guess was right.
                raise errors.Unauthenticated("missing X-Dkron-Token header" if not secret else "wrong X-Dkron-Token")
            return
        if self.legacy and secret and hmac.compare_digest(secret.encode(), self.legacy):
            # [security] token, once the ACL is on: a management token of this node's api.
            self.node.client.act_for("[security] token")
            return
        caller = acl.Caller.of_secret(view, secret)
        if caller.kind == "unknown":  # made a moment ago, perhaps; asked again at a bounded rate
            view = self.views.get(UNKNOWN_AGAIN_S)
            caller = acl.Caller.of_secret(view, secret)
        grants = req.context.grants = Grants(view, caller, now_ms())
        if caller.kind == "token":
            self.node.client.act_for(caller.accessor)
        if need is not needs.BODY:
            acl.require(view, grants.caller, need, grants.now)

    def process_response(self, req, resp, resource, req_succeeded):
        if req.path.startswith("/v1/acl/") and req.method not in ("GET", "HEAD", "OPTIONS"):
            self.views.forget()


def given_secret(req):
    given = req.get_header("X-Dkron-Token")
    if given is None:
        scheme, _, value = (req.get_header("Authorization") or "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
    return given
