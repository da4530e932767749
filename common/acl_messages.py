"""The ACL's message types (protocol 3), kept beside common/messages.py, which imports them:
bootstrap, tokens and policies on the raft client port, and the view of the ACL state that a
node's own faces and services judge calls by (common/acl.py)."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any

from common import acl
from common.schedule import MAX_TIME_MS
from common.wire import Bound, message, reply

ACL_PROTOCOL = 3

# Each field's bounds (wire.Bound), from the ACL's own limits: what is longer is refused as it
# decodes; what is within them is judged by the ACL's checks (common/acl.py) before it is proposed.
Accessor = Annotated[str, Bound(most=acl.SECRET_MAX_CHARS)]
Secret = Annotated[str, Bound(most=acl.SECRET_MAX_CHARS)]
PolicyName = Annotated[str, Bound(most=acl.PATH_MAX_CHARS)]
Description = Annotated[str, Bound(most=acl.DESCRIPTION_MAX_CHARS)]
Rules = Annotated[str, Bound(most=acl.RULES_MAX_CHARS)]
Policies = Annotated[list[PolicyName], Bound(most=acl.TOKEN_POLICIES_MAX)]
Session = Annotated[str, Bound(most=256)]        # a client's session id, as messages.Name
Seq = Annotated[int, Bound(lo=0)]
Expiry = Annotated[int, Bound(lo=0, hi=MAX_TIME_MS)]  # Unix ms; 0: never
Limit = Annotated[int, Bound(lo=0, hi=1_000_000_000)]


@message("acl.bootstrap", since=ACL_PROTOCOL)
class AclBootstrap:
    """Make the first management token, once: a second bootstrap is refused. The caller makes
    the accessor and the secret; only the secret's hash and its CURVE public key are stored."""

    accessor: Accessor
    secret: Secret
    description: Description = ""
    client: Session = ""              # with seq: a retried write is applied once
    seq: Seq = 0
    by: Accessor = ""                 # the token a node's api acts for (the audit's who)


@message("acl.view", since=ACL_PROTOCOL)
class AclView:
    """→ ok {enabled, tokens, policies}: what the check needs (hashes, never secrets), for a
    node's own api and services."""

    stale: bool = True


@message("token.create", since=ACL_PROTOCOL)
class TokenCreate:
    accessor: Accessor
    secret: Secret
    type: Annotated[str, Bound(most=16)] = "client"
    policies: Policies = field(default_factory=list)
    description: Description = ""
    expires_at: Expiry = 0            # Unix ms; 0: never
    client: Session = ""              # with seq: a retried write is applied once
    seq: Seq = 0
    by: Accessor = ""                 # the token a node's api acts for (the audit's who)


@message("token.list", since=ACL_PROTOCOL)
class TokenList:
    stale: bool = False


@message("token.get", since=ACL_PROTOCOL)
class TokenGet:
    accessor: Accessor
    stale: bool = False


@message("token.delete", since=ACL_PROTOCOL)
class TokenDelete:
    accessor: Accessor
    client: Session = ""              # with seq: a retried write is applied once
    seq: Seq = 0
    by: Accessor = ""                 # the token a node's api acts for (the audit's who)


@message("policy.put", since=ACL_PROTOCOL)
class PolicyPut:
    """Create or replace a policy: Dkron's {Name, Rules}, Rules a JSON string."""

    name: PolicyName
    rules: Rules
    description: Description = ""
    client: Session = ""              # with seq: a retried write is applied once
    seq: Seq = 0
    by: Accessor = ""                 # the token a node's api acts for (the audit's who)


@message("policy.list", since=ACL_PROTOCOL)
class PolicyList:
    stale: bool = False


@message("policy.get", since=ACL_PROTOCOL)
class PolicyGet:
    name: PolicyName
    stale: bool = False


@message("policy.delete", since=ACL_PROTOCOL)
class PolicyDelete:
    name: PolicyName
    client: Session = ""              # with seq: a retried write is applied once
    seq: Seq = 0
    by: Accessor = ""                 # the token a node's api acts for (the audit's who)


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

    before: Seq = 0
    limit: Limit = 100
    stale: bool = False


@reply("audit.list")
class AuditPage:
    entries: list[dict[str, Any]]     # {seq, at, who, op, target, change}
    total: int
