"""The audit trail in the replicated state (protocol 3): every applied write of a job, setting,
key, policy or token, with who made it (a token's accessor, `node:<name>`, or `anonymous`), when
(the time the proposing server put in the command) and what changed. Bounded like history: the
newest AUDIT_KEPT rows stay."""

from __future__ import annotations

import json

from common import keys

AUDITED = frozenset({"job.put", "job.put_batch", "job.delete", "exec.delete_all", "settings.put", "note.put", "key.accept",
                     "key.reject", "acl.bootstrap", "token.put", "token.delete", "policy.put", "policy.delete"})
AUDIT_KEPT = 10_000
AUDIT_TRIM_EVERY = 500        # rows written between trims
QUIET_FIELDS = frozenset({"created_at", "enabled_at", "updated_at"})  # set by the server, not by the writer


class AuditTrail:
    """Mixed into StateMachine: uses its _one/_run helpers and entry_index."""

    def audit_before(self, command):
        """What a write replaces, to say afterwards what it changed (a job's fields)."""
        if command.get("op") == "job.put" and "by" in command:
            name = (command.get("args", {}).get("job") or {}).get("name")
            return self.job(name) if isinstance(name, str) else None
        return None

    def audit_write(self, command, result, before):
        """Record an applied write that carries its author (the shell adds `by` and `at` once
        every server speaks protocol 3, so that every replica records the same rows)."""
        op = command.get("op")
        if op not in AUDITED or "by" not in command or not isinstance(result, dict) or "error" in result:
            return
        target, change = _describe(op, command.get("args", {}), result, before)
        self._run("INSERT INTO auditrow (seq, at, who, op, target, change) VALUES (?, ?, ?, ?, ?, ?)",
                  (self.entry_index, int(command.get("at", 0)), str(command["by"])[:200], op, target[:200], change))
        if self.entry_index % AUDIT_TRIM_EVERY == 0:
            self._run("DELETE FROM auditrow WHERE seq <= (SELECT seq FROM auditrow ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                      (AUDIT_KEPT,))

    def audit(self, before=0, limit=100):
        """The newest rows first, older than seq `before` (0: from the newest) → (rows, total)."""
        sql = "SELECT seq, at, who, op, target, change FROM auditrow" + (" WHERE seq < ?" if before else "")
        rows = self.db.execute_sql(sql + " ORDER BY seq DESC LIMIT ?", ((before,) if before else ()) + (limit,))
        total = self.db.execute_sql("SELECT COUNT(*) FROM auditrow").fetchone()[0]
        return [{"seq": s, "at": at, "who": who, "op": op, "target": t, "change": json.loads(c)}
                for s, at, who, op, t, c in rows], total


def _describe(op, args, result, before):
    """(target, change as JSON text): what the write named, and what it changed, with no
    secret value (a job's changed fields are named, never shown)."""
    if op == "job.put":
        job = result.get("job", {})
        if before is None:
            return job.get("name", ""), json.dumps({"created": True})
        fields = sorted(k for k in set(job) | set(before) if k not in QUIET_FIELDS and job.get(k) != before.get(k))
        return job.get("name", ""), json.dumps({"fields": fields})
    if op == "job.put_batch":  # one row per entry (its index is the row's key): the jobs by name
        done = [r for r in result.get("results", []) if "error" not in r]
        return f"{len(done)} jobs", json.dumps({"created": [r["name"] for r in done if r["created"]],
                                                "updated": [r["name"] for r in done if not r["created"]]})
    if op in ("job.delete",):
        return args.get("name", ""), json.dumps({"deleted": True})
    if op == "exec.delete_all":
        return args.get("job", ""), json.dumps({"executions_deleted": True})
    if op == "settings.put":
        return args.get("key", ""), json.dumps({"value": args.get("value")})
    if op == "note.put":
        return "note", json.dumps({"set": True})
    if op in ("key.accept", "key.reject"):
        key = result.get("key") or {}
        return key.get("name", ""), json.dumps({"status": key.get("status"), "id": keys.key_id(key.get("key", ""))})
    if op in ("acl.bootstrap", "token.put", "token.delete"):
        token = result.get("token") or {}
        return token.get("accessor", ""), json.dumps({"type": token.get("type"), "policies": token.get("policies"),
                                                      "deleted": op == "token.delete"})
    policy = result.get("policy") or {}
    return policy.get("name", ""), json.dumps({"deleted": op == "policy.delete"} if op == "policy.delete"
                                              else {"rules": policy.get("rules")})
