"""The raft service's side of the ACL: every client call judged by the one check (common/acl.py)
against the table of common/needs.py before it is served; the ACL verbs (bootstrap, tokens,
policies) proposed; and the view written for the node's other services when it changes."""

from __future__ import annotations

import logging

from common import acl, aclview, errors, keys, messages as m, needs, secrets

log = logging.getLogger(__name__)

AUDIT_PAGE = 1000

VERBS = (m.AuditList, m.AclBootstrap, m.AclView, m.TokenCreate, m.TokenList, m.TokenGet, m.TokenDelete, m.PolicyPut,
         m.PolicyList, m.PolicyGet, m.PolicyDelete)


class Access:
    def __init__(self, shell):
        self.shell = shell
        self._view = None
        self.changed()

    @property
    def fsm(self):
        return self.shell.fsm  # replaced when a snapshot is installed

    def view(self):
        if self._view is None:
            self._view = acl.View.from_plain(self.fsm.acl_view())
        return self._view

    def changed(self):
        """Tokens or policies changed (or the whole state, by a snapshot): the view is read
        again, written for the node's services, and the key book takes the tokens' keys."""
        self._view = None
        aclview.write(self.shell.conf.node.run_dir, self.fsm.acl_view())

    # -- judging ---------------------------------------------------------------------------

    def caller(self, env):
        nodes = {k["name"] for k in self.fsm.keys("accepted") if k["kind"] != "client"} if env.peer else ()
        return acl.Caller.of_peer(env.peer, nodes)

    def who(self, env):
        """The audit's author of a write: a token's accessor; for a node's own call, the token
        its api acts for (`by`), else node:<name>; else anonymous."""
        if env is None:
            return f"node:{self.shell.name}"
        caller = self.caller(env)
        if caller.kind == "token":
            return caller.accessor
        if caller.kind == "node":
            return getattr(env.msg, "by", "") or f"node:{env.peer or self.shell.name}"
        return "anonymous"

    def check(self, env):
        """Raises Unauthenticated or Forbidden when the caller may not send this message."""
        view = self.view()
        if not view.enabled:
            return
        caller, now = self.caller(env), self.shell.loop.now()
        if env.type in needs.EACH and acl.unrestricted(view, caller):
            return  # a node's or a management token's batch: no need to look each item up
        for type_name, fields in needs.judged(env.type, _fields(env.msg)):
            need = needs.for_message(type_name, fields)
            acl.require(view, caller, need, now, exists=self._exists(type_name, fields))
            if type_name == "job.put" and needs.run_as(fields["job"]):  # who it runs as is a right of its own
                acl.require(view, caller, needs.run_as(fields["job"]), now)

    def readable(self, env):
        """A job name → whether the caller may read it; None when it may read every job. For a
        node's api, the caller is the token it acts for (`by`: an accessor, or anonymous)."""
        view, caller = self.view(), self.caller(env)
        by = getattr(env.msg, "by", "")
        if caller.kind == "node" and (by in view.tokens or by == "anonymous"):
            caller = acl.Caller("token", by) if by in view.tokens else acl.Caller("anonymous")
        if acl.unrestricted(view, caller):
            return None
        now = self.shell.loop.now()
        return lambda name: acl.can_read(view, caller, needs.job_path(name), now)

    def shown(self, env, wanted):
        """How jobs go out to this caller: whole when it asks for secrets and may see them (a
        node's own service, a management token; anyone with the ACL off), else with secret
        values redacted."""
        if wanted and acl.unrestricted(self.view(), self.caller(env)):
            return lambda job: job
        return lambda job: secrets.redact(job, self.shell.conf.security.secret_keys)

    def _exists(self, type_name, fields):
        if type_name == "job.put":
            name = fields["job"].get("name")
            return isinstance(name, str) and self.fsm.job(name) is not None
        if type_name == "policy.put":
            return self.fsm.policy(fields["name"]) is not None
        return None

    # -- verbs -----------------------------------------------------------------------------

    def on_verb(self, env, msg):
        fsm, shell = self.fsm, self.shell
        if isinstance(msg, m.AuditList):
            limit = min(max(msg.limit, 1), AUDIT_PAGE)
            return shell.read(env, msg.stale, lambda: dict(zip(("entries", "total"), fsm.audit(msg.before, limit))))
        if isinstance(msg, m.AclView):
            return shell.read(env, msg.stale, fsm.acl_view)
        if isinstance(msg, m.TokenList):
            return shell.read(env, msg.stale, lambda: {"tokens": fsm.tokens()})
        if isinstance(msg, m.TokenGet):
            return shell.read(env, msg.stale, lambda: {"token": found(fsm.token(msg.accessor), "token", msg.accessor)})
        if isinstance(msg, m.PolicyList):
            return shell.read(env, msg.stale, lambda: {"policies": fsm.policies()})
        if isinstance(msg, m.PolicyGet):
            return shell.read(env, msg.stale, lambda: {"policy": found(fsm.policy(msg.name), "policy", msg.name)})
        if isinstance(msg, m.PolicyPut):
            acl.check_policy_name(msg.name)
            acl.parse_rules(msg.rules)  # refused here with the reason, before it takes a log entry
            return shell.propose(env, "policy.put", session(msg), name=msg.name, rules=msg.rules,
                                 description=msg.description)
        if isinstance(msg, m.PolicyDelete):
            return shell.propose(env, "policy.delete", session(msg), name=msg.name)
        if isinstance(msg, m.TokenDelete):
            return shell.propose(env, "token.delete", session(msg), accessor=msg.accessor)
        if isinstance(msg, m.AclBootstrap):
            if fsm.acl_enabled() and not msg.seq:  # a bootstrap sent again is answered by its session
                raise errors.Conflict("ACL bootstrap already done: it works once")
            return shell.propose(env, "acl.bootstrap", session(msg), token=self.token(msg, "management", [], 0))
        if isinstance(msg, m.TokenCreate):
            if msg.expires_at and msg.expires_at <= shell.loop.now():
                raise errors.BadRequest("ExpirationTime: already past")
            return shell.propose(env, "token.put", session(msg), token=self.token(msg, msg.type, msg.policies,
                                                                                  msg.expires_at))
        raise errors.BadRequest(f"not an ACL verb: {env.type}")

    def token(self, msg, kind, policies, expires_at):
        """The token as the log keeps it: the secret's hash and public key, never the secret."""
        secret = acl.check_secret(msg.secret)
        return {"accessor": msg.accessor, "hash": acl.secret_hash(secret),
                "key": keys.token_keypair(secret).public.decode(), "type": kind, "policies": policies,
                "description": msg.description, "created_at": self.shell.loop.now(), "expires_at": expires_at}


def session(msg):
    """(client, seq): a write sent again after a lost reply gets the first answer, not a conflict."""
    return (msg.client, msg.seq)


def _fields(msg):
    return {name: getattr(msg, name) for name in msg.__slots__}


def found(value, what, name):
    if value is None:
        raise errors.NotFound(f"{what} {name!r} not found")
    return value
