"""The ACL's message types (protocol 3), kept beside common/messages.py, which imports them:
bootstrap, tokens and policies on the raft client port, and the view of the ACL state that a
node's own faces and services judge calls by (common/acl.py)."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from common.wire import message, reply

ACL_PROTOCOL = 3


@message("acl.bootstrap", since=ACL_PROTOCOL)
class AclBootstrap:
    """Make the first management token, once: a second bootstrap is refused. The caller makes
    the accessor and the secret; only the secret's hash and its CURVE public key are stored."""

    accessor: str
    secret: str
    description: str = ""
    client: str = ""                  # with seq: a retried write is applied once
    seq: int = 0
    by: str = ""                      # the token a node's api acts for (the audit's who)


@message("acl.view", since=ACL_PROTOCOL)
class AclView:
    """→ ok {enabled, tokens, policies}: what the check needs (hashes, never secrets), for a
    node's own api and services."""

    stale: bool = True


@message("token.create", since=ACL_PROTOCOL)
class TokenCreate:
    accessor: str
    secret: str
    type: str = "client"
    policies: list[str] = field(default_factory=list)
    description: str = ""
    expires_at: int = 0               # Unix ms; 0: never
    client: str = ""                  # with seq: a retried write is applied once
    seq: int = 0
    by: str = ""                      # the token a node's api acts for (the audit's who)


@message("token.list", since=ACL_PROTOCOL)
class TokenList:
    stale: bool = False


@message("token.get", since=ACL_PROTOCOL)
class TokenGet:
    accessor: str
    stale: bool = False


@message("token.delete", since=ACL_PROTOCOL)
class TokenDelete:
    accessor: str
    client: str = ""                  # with seq: a retried write is applied once
    seq: int = 0
    by: str = ""                      # the token a node's api acts for (the audit's who)


@message("policy.put", since=ACL_PROTOCOL)
class PolicyPut:
    """Create or replace a policy: Dkron's {Name, Rules}, Rules a JSON string."""

    name: str
    rules: str
    description: str = ""
    client: str = ""                  # with seq: a retried write is applied once
    seq: int = 0
    by: str = ""                      # the token a node's api acts for (the audit's who)


@message("policy.list", since=ACL_PROTOCOL)
class PolicyList:
    stale: bool = False


@message("policy.get", since=ACL_PROTOCOL)
class PolicyGet:
    name: str
    stale: bool = False


@message("policy.delete", since=ACL_PROTOCOL)
class PolicyDelete:
    name: str
    client: str = ""                  # with seq: a retried write is applied once
    seq: int = 0
    by: str = ""                      # the token a node's api acts for (the audit's who)


@reply("acl.bootstrap", "token.create", "token.get", "token.delete")
class TokenReply:
    token: dict[str, Any]             # {accessor, type, policies, description, created_at, expires_at}


@reply("token.list")
class TokenPage:
    tokens: list[dict[str, Any]]


@reply("policy.put", "policy.get", "policy.delete")
class PolicyReply:
    policy: dict[str, Any]            # {name, rules (the JSON text), description}


@reply("policy.list")
class PolicyPage:
    policies: list[dict[str, Any]]


@reply("acl.view")
class AclViewReply:
    enabled: bool
    tokens: dict[str, dict[str, Any]]
    policies: dict[str, dict[str, Any]]


@message("audit.list", since=ACL_PROTOCOL)
class AuditList:
    """The audit trail, newest first: rows older than `before` (a row's seq; 0: the newest)."""

    before: int = 0
    limit: int = 100
    stale: bool = False


@reply("audit.list")
class AuditPage:
    entries: list[dict[str, Any]]     # {seq, at, who, op, target, change}
    total: int
