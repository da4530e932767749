"""The client library's ACL verbs (a part of common/client.Client, kept apart for size): the
caller makes a token's accessor and secret, so that only their hash travels into the log and
the secret is shown once, to whoever asked for it."""

from __future__ import annotations

import secrets
import uuid

from common import acl, messages as m


class AclVerbs:
    """Mixed into Client: uses its ask(), _request() and endpoint."""

    def acl_view(self):
        """The ACL state the check needs (acl.View), as this node holds it."""
        return acl.View.from_plain(dict(self.document(self.endpoint, m.AclView(stale=True))))

    def acl_bootstrap(self, description="Bootstrap Token (Global Management)", secret=None):
        """The first management token → (token, secret); refused (conflict) once done."""
        secret = secret or new_secret()
        token = self.ask(self.endpoint, m.AclBootstrap(accessor=str(uuid.uuid4()), secret=secret,
                                                       description=description, **self._request())).token
        return token, secret

    def token_create(self, type="client", policies=(), description="", expires_at=0):
        """A new token → (token, secret): the secret is known to no one else."""
        secret = new_secret()
        token = self.ask(self.endpoint, m.TokenCreate(accessor=str(uuid.uuid4()), secret=secret, type=type,
                                                      policies=list(policies), description=description,
                                                      expires_at=expires_at, **self._request())).token
        return token, secret

    def tokens(self, stale=False):
        return self.ask(self.endpoint, m.TokenList(stale=stale)).tokens

    def token(self, accessor, stale=False):
        return self.ask(self.endpoint, m.TokenGet(accessor=accessor, stale=stale)).token

    def token_delete(self, accessor):
        return self.ask(self.endpoint, m.TokenDelete(accessor=accessor, **self._request())).token

    def policy_put(self, name, rules, description=""):
        return self.ask(self.endpoint, m.PolicyPut(name=name, rules=rules, description=description,
                                                  **self._request())).policy

    def policies(self, stale=False):
        return self.ask(self.endpoint, m.PolicyList(stale=stale)).policies

    def policy(self, name, stale=False):
        return self.ask(self.endpoint, m.PolicyGet(name=name, stale=stale)).policy

    def policy_delete(self, name):
        return self.ask(self.endpoint, m.PolicyDelete(name=name, **self._request())).policy


    def audit(self, before=0, limit=100, stale=False):
        """The audit trail, newest first → (entries, total)."""
        page = self.ask(self.endpoint, m.AuditList(before=before, limit=limit, stale=stale))
        return page.entries, page.total


def new_secret():
    return secrets.token_urlsafe(32)
