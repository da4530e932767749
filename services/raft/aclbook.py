"""The state machine's part of the ACL (protocol 3): the bootstrap, policies and tokens as the
log applies them, and the view every server judges calls by (common/acl.py). A token is kept
as the hash of its secret and the CURVE public key derived from it, never the secret."""

from __future__ import annotations

import json

from common import acl, errors, keys
from services.raft.runs import failure

ACCESSOR_MAX_CHARS = 64


class AccessBook:
    """Mixed into StateMachine: uses its _one/_run/_meta helpers. `acl_changed` is set by a batch
    that changed tokens or policies, so that the shell writes the node's view and key book."""

    acl_changed = False

    def apply_acl_bootstrap(self, entry_term, token):
        if self._meta("acl_bootstrap"):
            return failure("conflict", "ACL bootstrap already done: it works once (make tokens with a management token)")
        error = _check_token(token, bootstrap=True) or self._taken(token)
        if error:
            return error
        self._put_token({**token, "type": "management", "policies": []})
        self._set_meta("acl_bootstrap", self.entry_index)
        return {"token": self.token(token["accessor"])}

    def apply_token_put(self, entry_term, token):
        if not self._meta("acl_bootstrap"):
            return failure("conflict", "ACL is not bootstrapped yet (pykronctl acl bootstrap)")
        error = _check_token(token) or self._taken(token)
        if error:
            return error
        missing = [p for p in token["policies"] if self._one("SELECT 1 FROM policyrow WHERE name = ?", (p,)) is None]
        if missing:
            return failure("not_found", f"no policy named {', '.join(missing)}")
        self._put_token(token)
        return {"token": self.token(token["accessor"])}

    def apply_token_delete(self, entry_term, accessor):
        token = self.token(accessor)
        if token is None:
            return failure("not_found", f"no token {accessor!r}")
        self._run("DELETE FROM tokenrow WHERE accessor = ?", (accessor,))
        self.acl_changed = True
        return {"token": token}

    def apply_policy_put(self, entry_term, name, rules, description=""):
        try:
            acl.check_policy_name(name)
            acl.parse_rules(rules)
        except errors.BadRequest as exc:
            return failure("bad_request", str(exc))
        if not isinstance(description, str) or len(description) > acl.DESCRIPTION_MAX_CHARS:
            return failure("bad_request", f"Description: at most {acl.DESCRIPTION_MAX_CHARS} characters")
        self._run("INSERT INTO policyrow (name, rules, description) VALUES (?, ?, ?) ON CONFLICT DO UPDATE"
                  " SET rules = excluded.rules, description = excluded.description", (name, rules, description))
        self.acl_changed = True
        return {"policy": self.policy(name)}

    def apply_policy_delete(self, entry_term, name):
        policy = self.policy(name)
        if policy is None:
            return failure("not_found", f"no policy named {name!r}")
        users = [t["accessor"] for t in self.tokens() if name in t["policies"]]
        if users:
            return failure("conflict", f"policy {name!r} is used by tokens {', '.join(users[:5])}: delete them first")
        self._run("DELETE FROM policyrow WHERE name = ?", (name,))
        self.acl_changed = True
        return {"policy": policy}

    # -- reading ---------------------------------------------------------------------------

    def acl_enabled(self):
        return bool(self._meta("acl_bootstrap"))

    def token(self, accessor):
        row = self._one(TOKEN_QUERY + " WHERE accessor = ?", (accessor,))
        return _token(row) if row else None

    def tokens(self):
        return [_token(row) for row in self.db.execute_sql(TOKEN_QUERY + " ORDER BY accessor")]

    def token_keys(self):
        """{public key: key book name} of every token (expired ones too: the check refuses them
        by the clock, which the state machine does not read)."""
        return {key: acl.key_name(accessor) for accessor, key in self.db.execute_sql("SELECT accessor, key FROM tokenrow")}

    def policy(self, name):
        row = self._one("SELECT name, rules, description FROM policyrow WHERE name = ?", (name,))
        return _policy(row) if row else None

    def policies(self):
        return [_policy(row) for row in self.db.execute_sql("SELECT name, rules, description FROM policyrow ORDER BY name")]

    def acl_view(self):
        """The check's view (common/acl.View.from_plain), hashes included, secrets never known."""
        hashes = dict(self.db.execute_sql("SELECT accessor, hash FROM tokenrow"))
        return {"enabled": self.acl_enabled(),
                "tokens": {t["accessor"]: {**t, "hash": hashes[t["accessor"]]} for t in self.tokens()},
                "policies": {p["name"]: {"rules": acl.parse_rules(p["rules"])} for p in self.policies()}}

    # -- plumbing --------------------------------------------------------------------------

    def _taken(self, token):
        if self._one("SELECT 1 FROM tokenrow WHERE accessor = ? OR hash = ? OR key = ?",
                     (token["accessor"], token["hash"], token["key"])) is not None:
            return failure("conflict", "a token with this accessor or secret exists")
        return None

    def _put_token(self, token):
        self._run("INSERT INTO tokenrow (accessor, hash, key, type, policies, description, created_at, expires_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (token["accessor"], token["hash"], token["key"], token["type"], json.dumps(token["policies"]),
                   token.get("description", ""), token["created_at"], token.get("expires_at", 0)))
        self.acl_changed = True


TOKEN_QUERY = "SELECT accessor, type, policies, description, created_at, expires_at FROM tokenrow"


def _token(row):
    accessor, kind, policies, description, created_at, expires_at = row
    return {"accessor": accessor, "type": kind, "policies": json.loads(policies), "description": description,
            "created_at": created_at, "expires_at": expires_at}


def _policy(row):
    name, rules, description = row
    return {"name": name, "rules": rules, "description": description}


def _check_token(token, bootstrap=False):
    """The command's token as the shell made it: every field of the right type and size."""
    if not isinstance(token, dict):
        return failure("bad_request", "token: expected a map")
    accessor, policies = token.get("accessor"), token.get("policies", [])
    if not isinstance(accessor, str) or not 0 < len(accessor) <= ACCESSOR_MAX_CHARS or not accessor.isprintable():
        return failure("bad_request", f"AccessorID: expected 1 to {ACCESSOR_MAX_CHARS} printable characters")
    if not (isinstance(token.get("hash"), str) and len(token["hash"]) == 64 and keys.is_public_key(token.get("key"))):
        return failure("bad_request", "token: expected the secret's hash and public key")
    if not bootstrap and token.get("type") not in acl.TYPES:
        return failure("bad_request", f"Type: expected one of {', '.join(acl.TYPES)}")
    if not (isinstance(policies, list) and len(policies) <= acl.TOKEN_POLICIES_MAX
            and all(isinstance(p, str) for p in policies)):
        return failure("bad_request", f"Policies: at most {acl.TOKEN_POLICIES_MAX} policy names")
    if not bootstrap and token.get("type") == "client" and not policies:
        return failure("bad_request", "Policies: a client token needs at least one policy")
    if not isinstance(token.get("description", ""), str) or len(token.get("description", "")) > acl.DESCRIPTION_MAX_CHARS:
        return failure("bad_request", f"Description: at most {acl.DESCRIPTION_MAX_CHARS} characters")
    for name in ("created_at", "expires_at"):
        if type(token.get(name, 0)) is not int or token.get(name, 0) < 0:
            return failure("bad_request", f"{name}: expected Unix ms")
    return None
