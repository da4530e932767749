"""Dkron's ACL resources: /v1/acl/bootstrap, policies ({Name, Rules} with Rules a JSON string,
as Dkron Pro's) and tokens (Consul's shape: AccessorID, SecretID only when made, Type,
Policies, ExpirationTime). Every write goes to the node's raft client port as a command."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import falcon

from common import acl, errors
from common.loop import now_ms
from services.api import dkron

class Bootstrap:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        token, secret = self.node.client.acl_bootstrap()
        dkron.render(req, resp, acl.token_json(token, secret))


class Policies:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        found = [policy_doc(p) for p in self.node.client.policies()]
        resp.set_header("X-Total-Count", str(len(found)))
        dkron.render(req, resp, found)


class Policy:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, name):
        dkron.render(req, resp, policy_doc(self.node.client.policy(name)))

    def on_post(self, req, resp, name):
        """Store or update (Dkron's upsertPolicy): {"Rules": "<JSON>", "Description"?}; a Name
        in the body must be the path's."""
        doc = dkron.read_json(req)
        if not isinstance(doc, dict):
            raise errors.BadRequest("a policy is a JSON object {Name, Rules}")
        if doc.get("Name", name) != name:
            raise errors.BadRequest(f"Name {doc.get('Name')!r} is not the path's {name!r}")
        rules = doc.get("Rules")
        if isinstance(rules, dict):  # the rules as an object, not yet as Dkron's string of JSON
            rules = json.dumps(rules)
        policy = self.node.client.policy_put(name, rules, doc.get("Description", ""))
        dkron.render(req, resp, policy_doc(policy), falcon.HTTP_202)

    on_put = on_post

    def on_delete(self, req, resp, name):
        dkron.render(req, resp, policy_doc(self.node.client.policy_delete(name)))


class Tokens:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        found = [acl.token_json(t) for t in self.node.client.tokens()]
        resp.set_header("X-Total-Count", str(len(found)))
        dkron.render(req, resp, found)

    def on_post(self, req, resp):
        """{Type?, Policies: [{Name}] or [name], Description?, ExpirationTTL? ("90s", "1h"),
        ExpirationTime? (RFC 3339)} → the token with its SecretID, shown this once."""
        doc = dkron.read_json(req)
        if not isinstance(doc, dict):
            raise errors.BadRequest("a token is a JSON object {Type, Policies, Description, ExpirationTTL}")
        policies = doc.get("Policies") or []
        if not isinstance(policies, list):
            raise errors.BadRequest("Policies: expected a list of {Name} or names")
        names = [p.get("Name") if isinstance(p, dict) else p for p in policies]
        if not all(isinstance(n, str) for n in names):
            raise errors.BadRequest("Policies: expected a list of {Name} or names")
        token, secret = self.node.client.token_create(doc.get("Type", "client"), names, doc.get("Description", ""),
                                                      expires_at(doc))
        dkron.render(req, resp, acl.token_json(token, secret), falcon.HTTP_201)


class Token:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, accessor):
        dkron.render(req, resp, acl.token_json(self.node.client.token(accessor)))

    def on_delete(self, req, resp, accessor):
        dkron.render(req, resp, acl.token_json(self.node.client.token_delete(accessor)))


class TokenSelf:
    """The caller's own token (Consul's /acl/token/self), with its policies' rules: what the UI
    decides by. Without a token, the anonymous policy's rights (a client "token" named so);
    with the ACL off, everything (as a management token)."""

    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        grants = req.context.grants
        if grants.caller.kind == "token":
            token = grants.view.tokens[grants.caller.accessor]
        elif grants.everything:
            token = {"accessor": "", "type": "management", "description": "the ACL is off: every call is allowed"}
        else:
            token = {"accessor": "anonymous", "type": "client", "description": "no token: the anonymous policy",
                     "policies": [acl.ANONYMOUS] if acl.ANONYMOUS in grants.view.policies else []}
        rules = {} if token["type"] == "management" else {
            p: grants.view.policies.get(p, {}) for p in token.get("policies", [])}
        dkron.render(req, resp, {**acl.token_json(token), "Rules": rules})


class Audit:
    """GET /v1/audit: the audit trail, newest first; ?limit=N (1-1000, 100) and ?before=SEQ to
    page back. Each entry: seq, at (RFC 3339), who (a token's accessor, node:<name>, or
    anonymous), op, target and what changed."""

    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        limit = dkron.whole_number(req, "limit", 100)
        if not 1 <= limit <= 1000:
            raise errors.BadRequest("limit: expected 1 to 1000")
        entries, total = self.node.client.audit(dkron.whole_number(req, "before", 0), limit)
        resp.set_header("X-Total-Count", str(total))
        dkron.render(req, resp, [{**e, "at": _rfc3339(e["at"])} for e in entries])


def _rfc3339(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def policy_doc(policy):
    return acl.policy_json(policy["name"], policy["rules"], policy.get("description", ""))


def expires_at(doc):
    ttl, when = doc.get("ExpirationTTL"), doc.get("ExpirationTime")
    if ttl:
        return now_ms() + acl.ttl_ms(ttl)
    if when:
        try:
            at = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        except ValueError:
            raise errors.BadRequest("ExpirationTime: expected an RFC 3339 time") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return int(at.timestamp() * 1000)
    return 0
