"""The state machine's book of keys: every CURVE public key the cluster has heard of, with the
node or client it names and whether it is pending, accepted or rejected (Salt's model). The
accepted ones are what every socket of every node lets in; a name holds one accepted key."""

from __future__ import annotations

from common import keys
from services.raft.runs import failure

KINDS = ("server", "agent", "client")
STATUSES = ("pending", "accepted", "rejected")
NAME_MAX_CHARS = 128


class KeyBook:
    """Mixed into StateMachine: uses its _one/_run SQL helpers. Keys changed by the last batch
    set `keys_changed`, so that the shell writes the book out for the node's processes."""

    keys_changed = False

    def apply_key_pending(self, entry_term, key, name, kind):
        """A key seen in gossip for the first time: listed, never accepted by this alone."""
        error = _check(key, name, kind)
        if error:
            return error
        if self._one("SELECT 1 FROM keyrow WHERE key = ?", (key,)) is None:
            self._run("INSERT INTO keyrow (key, name, kind, status) VALUES (?, ?, ?, 'pending')", (key, name, kind))
            self.keys_changed = True
        return {"key": self.key(key)}

    def apply_key_accept(self, entry_term, key, name, kind):
        """Accept a key for a name: any other key accepted for that name is rejected (a node whose
        data was wiped comes back with a new key; its old one must stop working)."""
        error = _check(key, name, kind)
        if error:
            return error
        self._run("UPDATE keyrow SET status = 'rejected' WHERE name = ? AND key != ? AND status = 'accepted'",
                  (name, key))
        self._run("INSERT INTO keyrow (key, name, kind, status) VALUES (?, ?, ?, 'accepted')"
                  " ON CONFLICT DO UPDATE SET name = excluded.name, kind = excluded.kind, status = 'accepted'",
                  (key, name, kind))
        self.keys_changed = True
        return {"key": self.key(key)}

    def apply_key_reject(self, entry_term, key):
        if self._one("SELECT 1 FROM keyrow WHERE key = ?", (key,)) is None:
            return failure("not_found", f"no key {keys.key_id(key)} is known")
        self._run("UPDATE keyrow SET status = 'rejected' WHERE key = ?", (key,))
        self.keys_changed = True
        return {"key": self.key(key)}

    def key(self, key):
        row = self._one("SELECT key, name, kind, status FROM keyrow WHERE key = ?", (key,))
        return _entry(row) if row else None

    def keys(self, status=None):
        sql = "SELECT key, name, kind, status FROM keyrow" + (" WHERE status = ?" if status else "") + " ORDER BY name, key"
        return [_entry(row) for row in self.db.execute_sql(sql, (status,) if status else ())]


def _entry(row):
    key, name, kind, status = row
    return {"key": key, "id": keys.key_id(key), "name": name, "kind": kind, "status": status}


def _check(key, name, kind):
    if not keys.is_public_key(key):
        return failure("bad_request", "key: expected a 40-character Z85 CURVE public key")
    if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX_CHARS:
        return failure("bad_request", f"name: expected 1 to {NAME_MAX_CHARS} characters")
    if kind not in KINDS:
        return failure("bad_request", f"kind: expected one of {', '.join(KINDS)}")
    return None
