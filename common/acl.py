"""Who may do what (Dkron's ACL): policies of rules over paths and capabilities, tokens that
carry policies, and the one check both faces call (the api for an HTTP request, the raft,
dispatcher and executor shells for a ZeroMQ client call). Pure: the caller brings the view of
the replicated ACL state and the time."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass, field

from common import errors

CAPABILITIES = ("create", "read", "update", "delete", "list")
DENY = "deny"                # a rule with it denies its paths whatever another rule grants
TYPES = ("management", "client")
ANONYMOUS = "anonymous"      # the policy a request without a token is judged by, when it exists
POLICY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")
RULES_MAX_CHARS = 16 * 1024
RULES_MAX_PATHS = 100
PATH_MAX_CHARS = 256
DESCRIPTION_MAX_CHARS = 256
TOKEN_POLICIES_MAX = 32
SECRET_MIN_CHARS = 16
SECRET_MAX_CHARS = 256


# -- policies ---------------------------------------------------------------------------------


def parse_rules(text):
    """Dkron's Rules, a JSON string {"path": {glob: {"capabilities": [...]}}} → {glob: caps}.
    BadRequest naming what is wrong; nothing stored before the whole of it is read."""
    if not isinstance(text, str) or len(text) > RULES_MAX_CHARS:
        raise errors.BadRequest(f"Rules: expected a JSON string of at most {RULES_MAX_CHARS} characters")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise errors.BadRequest(f"Rules: not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"path"} or not isinstance(doc.get("path", {}), dict):
        raise errors.BadRequest('Rules: expected {"path": {"/v1/jobs/*": {"capabilities": [...]}}}')
    paths = doc.get("path", {})
    if len(paths) > RULES_MAX_PATHS:
        raise errors.BadRequest(f"Rules: at most {RULES_MAX_PATHS} paths")
    rules = {}
    for glob, rule in paths.items():
        if not glob.startswith("/") or len(glob) > PATH_MAX_CHARS:
            raise errors.BadRequest(f"Rules: path {glob[:40]!r} must start with / and be at most {PATH_MAX_CHARS} characters")
        caps = rule.get("capabilities") if isinstance(rule, dict) else None
        if not isinstance(caps, list) or not all(c in CAPABILITIES or c == DENY for c in caps):
            raise errors.BadRequest(f"Rules: path {glob!r}: capabilities must be a list of "
                                    f"{', '.join(CAPABILITIES + (DENY,))}")
        rules[glob] = sorted(set(caps))
    return rules


def check_policy_name(name):
    if not isinstance(name, str) or not POLICY_NAME.match(name):
        raise errors.BadRequest("Name: expected 1 to 128 letters, digits, '_', '.' or '-'")
    return name


def policy_json(name, rules_text, description=""):
    """A policy in Dkron's shape."""
    return {"Name": name, "Description": description, "Rules": rules_text}


# -- tokens -----------------------------------------------------------------------------------


def secret_hash(secret):
    """What the state keeps of a token's secret (the secret itself never enters the log)."""
    return hashlib.sha256(b"pykron token\x00" + secret.encode()).hexdigest()


def check_secret(secret):
    if not isinstance(secret, str) or not SECRET_MIN_CHARS <= len(secret) <= SECRET_MAX_CHARS or not secret.isprintable():
        raise errors.BadRequest(f"SecretID: expected {SECRET_MIN_CHARS} to {SECRET_MAX_CHARS} printable characters")
    return secret


TTL_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def ttl_ms(text, what="ExpirationTTL"):
    """A token's time to live ("90s", "30m", "12h", "7d") in ms; BadRequest naming `what`."""
    if not isinstance(text, str) or text[-1:] not in TTL_UNITS or not text[:-1].isdigit() \
            or not 0 < int(text[:-1]) < 10**9:
        raise errors.BadRequest(f'{what}: expected a duration such as "90s", "30m", "12h" or "7d", got {text!r}')
    return int(text[:-1]) * TTL_UNITS[text[-1]]


def key_name(accessor):
    """The name a token's CURVE key goes by in the key book, and so in env.peer."""
    return f"token:{accessor}"


def token_json(token, secret=""):
    """A token in Consul's and Dkron Pro's shape; the secret only in the answer that made it."""
    doc = {"AccessorID": token["accessor"], "Description": token.get("description", ""),
           "Type": token["type"], "Policies": [{"Name": p} for p in token.get("policies", [])],
           "CreateTime": token.get("created_at", 0), "ExpirationTime": token.get("expires_at") or None}
    if secret:
        doc["SecretID"] = secret
    return doc


# -- the view and the check -------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The ACL state as the check needs it. enabled: bootstrapped (before that, nothing is judged)."""

    enabled: bool = False
    tokens: dict = field(default_factory=dict)     # accessor → {accessor, type, policies, expires_at, hash}
    policies: dict = field(default_factory=dict)   # name → {glob: [caps]}

    @classmethod
    def from_plain(cls, plain):
        return cls(bool(plain.get("enabled")), dict(plain.get("tokens", {})),
                   {n: p["rules"] for n, p in plain.get("policies", {}).items()})

    def by_secret(self, secret):
        wanted = secret_hash(secret)
        return next((t for t in self.tokens.values() if t["hash"] == wanted), None)


@dataclass(frozen=True)
class Caller:
    """Who is asking. kind: node (a node of the cluster, or ipc on its host), token, anonymous
    (no token, or a client key that is no token's), unknown (a secret no token has)."""

    kind: str
    accessor: str = ""

    @classmethod
    def of_peer(cls, peer, node_names):
        """From a ZeroMQ message's peer: "" (ipc: this node), a node's key name, a token's key name."""
        if peer == "" or peer in node_names:
            return cls("node")
        if peer.startswith("token:"):
            return cls("token", peer[len("token:"):])
        return cls("anonymous")

    @classmethod
    def of_secret(cls, view, secret):
        """From an HTTP request's X-Dkron-Token (or Bearer) secret, "" when there is none."""
        if not secret:
            return cls("anonymous")
        token = view.by_secret(secret)
        return cls("token", token["accessor"]) if token else cls("unknown")


def judge(view, caller, need, now_ms, exists=None):
    """None when `caller` may do `need`, else errors.Forbidden or errors.Unauthenticated (raised by require).
    need: a Need from required(). exists: for a create-or-update, whether the thing exists."""
    if not view.enabled or need is OPEN or caller.kind == "node":
        return None
    if need is NODE:
        return errors.Forbidden("only a node of the cluster sends this")
    if caller.kind == "unknown":
        return errors.Unauthenticated("ACL token not found (unknown, deleted or expired)")
    if caller.kind == "token":
        token = view.tokens.get(caller.accessor)
        if token is None or token.get("expires_at") and token["expires_at"] <= now_ms:
            return errors.Unauthenticated("ACL token not found (unknown, deleted or expired)")
        if token["type"] == "management" or need is ANY:
            return None
        names = token.get("policies", [])
    else:
        names = [ANONYMOUS]
        if need is ANY and ANONYMOUS in view.policies:
            return None
    capability = need.capability
    if capability == WRITE:
        capability = "update" if exists else "create"
    if allowed(view, names, need.path, capability):
        return None
    if caller.kind == "anonymous":
        return errors.Unauthenticated(f"a token is needed to {capability} {need.path} (X-Dkron-Token)")
    return errors.Forbidden(f"Permission denied: {capability} on {need.path}")


def require(view, caller, need, now_ms, exists=None):
    verdict = judge(view, caller, need, now_ms, exists)
    if verdict is not None:
        raise verdict


def allowed(view, policy_names, path, capability):
    """Whether any of the policies grants `capability` on `path` and none denies it there
    (globs as shell patterns: /v1/jobs/team-a-* covers team-a-x and what lies under it)."""
    granted = False
    for name in policy_names:
        for glob, caps in view.policies.get(name, {}).items():
            if fnmatch.fnmatchcase(path, glob):
                if DENY in caps:
                    return False
                granted = granted or capability in caps
    return granted


def unrestricted(view, caller):
    """Whether `caller` may do anything (the ACL off, a node, a management token): its lists
    need no filtering, and it may see secret values."""
    if not view.enabled or caller.kind == "node":
        return True
    token = view.tokens.get(caller.accessor) if caller.kind == "token" else None
    return token is not None and token.get("type") == "management"


def can_read(view, caller, path, now_ms):
    """For the filtering of lists: whether caller may read `path`."""
    return judge(view, caller, Need(path, "read"), now_ms) is None


# -- what each message and route needs --------------------------------------------------------


@dataclass(frozen=True)
class Need:
    path: str
    capability: str


NODE = Need("", "node")     # only a node of the cluster (its key, or ipc on its host) sends it
ANY = Need("", "any")       # any caller the ACL knows (a valid token, or the anonymous policy)
OPEN = Need("", "open")     # anyone who can reach the port (health, the UI's files, bootstrap)
WRITE = "create|update"     # create when the thing is new, update when it exists
# Replies and the peers' own protocols carry no request of a user.
REPLY = NODE
