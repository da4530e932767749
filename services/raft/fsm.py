"""The replicated state machine: jobs, claimed ticks and executions in SQLite via peewee.
Committed entries are applied in batches, one transaction per batch, with the applied index
stored in that same transaction, so a restart never applies an entry twice. Deterministic:
no clock, no randomness; every input comes from the entry."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import peewee as pw

from common import errors, messages as m, models, schema, wire
from services.raft.aclbook import AccessBook
from services.raft.audit import AuditTrail
from services.raft.checks import StateChecks
from services.raft.followups import FollowUps
from services.raft.keybook import KeyBook
from services.raft.refusal import Guarded
from services.raft.restoring import StateLoad
from services.raft.runs import RunLedger, failure
from services.raft.state_schema import STATE


class JobStateRow(pw.Model):
    """What runs change about a job (counters, last tick, status), apart from its definition,
    so that a run does not rewrite the job or stir the scheduler's job feed."""

    name = pw.TextField(primary_key=True)
    body = pw.TextField()


class JobRow(pw.Model):
    name = pw.TextField(primary_key=True)
    parent = pw.TextField(index=True, default="")
    body = pw.TextField()


class ExecutionRow(pw.Model):
    id = pw.TextField(primary_key=True)
    job = pw.TextField()
    grp = pw.IntegerField()
    status = pw.TextField(index=True)  # a new leader looks up every unfinished run
    body = pw.TextField()

    class Meta:
        indexes = ((("job", "grp"), False),)


class TickRow(pw.Model):
    """One row per claimed (job, scheduled_at): the unique key is what makes a tick run once."""

    job = pw.TextField()
    scheduled_at = pw.IntegerField()
    grp = pw.IntegerField()
    term = pw.IntegerField()

    class Meta:
        primary_key = pw.CompositeKey("job", "scheduled_at")


class MetaRow(pw.Model):
    key = pw.TextField(primary_key=True)
    value = pw.IntegerField()


class ServerRow(pw.Model):
    """Each server's service addresses, so any server can route a client to the leader's, and
    the protocol versions it speaks, [lowest accepted, highest], for the leader's version gate."""

    name = pw.TextField(primary_key=True)
    addrs = pw.TextField()
    protocol = pw.TextField(default="[1, 1]")


class SessionRow(pw.Model):
    """The last request applied per client and its result: a retried write applies once."""

    client = pw.TextField(primary_key=True)
    seq = pw.IntegerField()
    result = pw.TextField()
    applied = pw.IntegerField(index=True)


class KeyRow(pw.Model):
    """A CURVE public key the cluster knows (services/raft/keybook.py)."""

    key = pw.TextField(primary_key=True)
    name = pw.TextField(index=True)
    kind = pw.TextField()
    status = pw.TextField()


class SettingRow(pw.Model):
    """Cluster settings every server must agree on (untagged_jobs, default_timezone)."""

    key = pw.TextField(primary_key=True)
    value = pw.TextField()


class RetryRow(pw.Model):
    """A failed attempt's pending retry (migration run_followups): keyed by the failed attempt,
    due at its end plus the backoff, with the next attempt's execution; gone once claimed."""

    id = pw.TextField(primary_key=True)
    job = pw.TextField(index=True)
    grp = pw.IntegerField()
    due_at = pw.IntegerField()
    body = pw.TextField()


class EffectRow(pw.Model):
    """A firing's follow-up not yet carried out: a dependent run (kind child), the ephemeral
    delete, a notice. `job` and `grp` name the firing, `target` the job it acts on."""

    id = pw.TextField(primary_key=True)
    job = pw.TextField()
    grp = pw.IntegerField()
    kind = pw.TextField()
    target = pw.TextField(index=True)
    body = pw.TextField()


class RequestRow(pw.Model):
    """A run-now request claimed (client/seq) and its answer: sent again, it runs nothing more."""

    key = pw.TextField(primary_key=True)
    job = pw.TextField()
    result = pw.TextField()
    applied = pw.IntegerField(index=True)


SETTINGS = {"untagged_jobs": ("one", "all"), "default_timezone": None, "paused": ("true", "false")}
SETTING_DEFAULTS = {"untagged_jobs": "one", "default_timezone": "", "paused": "false"}
# Commands of a protocol after the first, with it. A server proposes one only once every server
# speaks that protocol (the raft shell's gate), and the command carries it as "v": a replica that
# does not speak it stops rather than refuse what the others apply (one state on every replica).
COMMAND_SINCE = {"note.put": wire.NEXT_PROTOCOL, "run.claim": m.FOLLOWUPS_PROTOCOL, "run.record": m.FOLLOWUPS_PROTOCOL,
                 "run.skip": m.FOLLOWUPS_PROTOCOL, "key.pending": 2, "key.accept": 2, "key.reject": 2,
                 **dict.fromkeys(("acl.bootstrap", "token.put", "token.delete", "policy.put", "policy.delete"),
                                 m.ACL_PROTOCOL),
                 "state.check": m.CHECKS_PROTOCOL, "state.load": m.RESTORE_PROTOCOL,
                 "job.put_batch": m.BATCH_PROTOCOL}
NOTE_MAX_CHARS = 1024
SETTING_MAX_CHARS = 64  # a zone's name, the longest value a setting takes (the zone is checked before proposing)


def command(op, args):
    """A command as it is proposed: one of a later protocol carries it as "v"."""
    since = COMMAND_SINCE.get(op, 1)
    return {"op": op, "args": args, **({"v": since} if since > 1 else {})}


MODELS = (JobRow, JobStateRow, ExecutionRow, TickRow, MetaRow, ServerRow, SessionRow, SettingRow, KeyRow, RetryRow,
          EffectRow, RequestRow)
JOB_QUERY = ("SELECT j.body, s.body FROM jobrow j LEFT JOIN jobstaterow s ON s.name = j.name")
SESSIONS_KEPT = 10_000
SESSION_TRIM_EVERY = 1000  # applied entries between trims of the session table
# An upsert updates the row where it is; INSERT OR REPLACE deletes it and inserts it anew,
# rewriting every index of the table (the costlier part of a batch's commit, in profiles).
UPDATE_ROW = " ON CONFLICT DO UPDATE SET %s"


class StateMachine(Guarded, FollowUps, RunLedger, KeyBook, AccessBook, AuditTrail, StateChecks, StateLoad):
    def __init__(self, path, protocol=wire.PROTOCOL):
        self.protocol = protocol  # the highest this node speaks: entries of a newer one stop it
        self.db = pw.SqliteDatabase(path, pragmas={"journal_mode": "wal", "synchronous": 2})
        self.db.bind(MODELS)
        self.db.connect()
        schema.migrate(self.db.connection(), path, STATE)
        self.applied = self._meta("applied")
        self.cluster = self._meta("cluster")
        self.job_seq = self._meta("job_seq")
        self.changes = []  # (seq, name, job or None) from the last batch, for the state feed

    # -- applying --------------------------------------------------------------------------

    def apply(self, entries):
        """entries: (index, term, command or None). Returns one result per entry. Total: an
        entry that cannot apply is refused with a fixed reason; an error of the machine (disk,
        memory, a damaged file) rolls the whole batch back and is raised, for the shell to
        apply the batch again later (refusing would let the replicas diverge)."""
        self.changes = []
        self.keys_changed = self.acl_changed = False
        self.diverged = []
        results = []
        job_seq = self.job_seq
        try:
            with self.db.atomic():
                for index, term, command in entries:
                    self.entry_index = index
                    results.append(self.apply_one(index, term, command) if command is not None else None)
                    if index % SESSION_TRIM_EVERY == 0:
                        # At fixed indices, not at the end of whatever batch crosses one: every
                        # replica trims the same rows (replicas compare their states' hashes).
                        self._trim_sessions()
                        self.trim_requests()
                if not self.cluster:
                    self._name_cluster(entries)
                self._set_meta("applied", entries[-1][0])
                self._set_meta("job_seq", self.job_seq)
        except BaseException:
            self.job_seq, self.changes = job_seq, []  # nothing of the batch was stored
            self.cluster = self._meta("cluster")
            raise
        self.applied = entries[-1][0]
        return results

    def apply_one(self, index, term, command):
        if not isinstance(command, dict):
            return failure("bad_request", "malformed command: not a map")
        # The audit reads and writes in savepoints of their own: a malformed command refused
        # by its handler must not escape apply through them.
        before = self.guarded("audit", lambda: {"job": self.audit_before(command)}).get("job")
        self.replayed = False
        result = self._apply_once(index, term, command)
        if not self.replayed:  # a request sent again changed nothing this time
            self.guarded("audit", lambda: self.audit_write(command, result, before))
        return result

    def _apply_once(self, index, term, command):
        client, seq = command.get("client") or "", command.get("seq") or 0
        if not (isinstance(client, str) and type(seq) is int):
            return failure("bad_request", "malformed command: client must be text and seq an integer")
        if client and seq:
            session = self._one("SELECT seq, result FROM sessionrow WHERE client = ?", (client,))
            if session is not None and seq <= session[0]:
                self.replayed = True
                return self._replay(json.loads(session[1])) if seq == session[0] else failure(
                    "conflict", f"request {seq} of client {client} is older than its last one ({session[0]})")
            result = self._handle(term, command)
            self.guarded("session", lambda: self._run(
                "INSERT INTO sessionrow (client, seq, result, applied) VALUES (?, ?, ?, ?)"
                + UPDATE_ROW % "seq = excluded.seq, result = excluded.result, applied = excluded.applied",
                (client, seq, json.dumps(self._remembered(command, result)), index)))
            return result
        return self._handle(term, command)

    @staticmethod
    def _remembered(command, result):
        """What a session keeps of a result: a stored job by name (the job row has it already;
        encoding it twice per write showed in profiles), anything else whole."""
        if command.get("op") == "job.put" and "job" in result:
            return {"job_name": result["job"]["name"]}
        return result

    def _replay(self, remembered):
        if "job_name" in remembered:
            return {"job": self.job(remembered["job_name"])}
        return remembered

    def _handle(self, term, command):
        op, version = command.get("op", ""), command.get("v", 1)
        if type(version) is int and version > self.protocol:
            raise errors.Halt(f"a committed {op} command is of protocol {version}, and this node speaks "
                              f"{self.protocol}: upgrade pykron on this server")
        handler = getattr(self, "apply_" + str(op).replace(".", "_"), None)
        if handler is None or COMMAND_SINCE.get(op, 1) > self.protocol:
            return failure("bad_request", f"unknown command {op!r}")
        if version != COMMAND_SINCE.get(op, 1):
            return failure("bad_request", f"command {op} is of protocol {COMMAND_SINCE.get(op, 1)}, not {version!r}")
        args = command.get("args", {})
        if not isinstance(args, dict):
            return failure("bad_request", f"malformed {op} command: args is not a map")
        return self.guarded(f"{op} command", lambda: handler(term, **args))

    def apply_job_put(self, entry_term, job):
        old = self.job(job["name"])
        if job["parent_job"] and self.job(job["parent_job"]) is None:
            return failure("not_found", "specified parent job not found")
        cycle = self._cycle(job["name"], job["parent_job"])
        if cycle:
            return failure("bad_request", f"Job validation failed: parent_job makes a cycle: {' -> '.join(cycle)}.")
        stored = dict(job)
        # Ticks are missed only while a job is enabled: re-enabling starts the count afresh.
        # (`created_at` of a request is when the server took it; see models.validate_job.)
        stored["enabled_at"] = job["created_at"] if not old or old["disabled"] else old.get("enabled_at", 0)
        if old:
            stored.update({k: old.get(k, v) for k, v in models.JOB_STATE.items()})
            stored["created_at"] = old["created_at"]
            stored["dependent_jobs"] = old["dependent_jobs"]
            if old["parent_job"] and old["parent_job"] != job["parent_job"]:
                self._edit_dependents(old["parent_job"], remove=job["name"])
        else:
            stored.update(models.JOB_STATE)
            stored["dependent_jobs"] = []
        if job["parent_job"]:
            self._edit_dependents(job["parent_job"], add=job["name"])
        self._save_job(stored)
        return {"job": stored}

    def apply_job_put_batch(self, entry_term, jobs, refused=()):
        """A restore's jobs in one entry, in order (parents first), each in a savepoint of its
        own as a job.put: one refused leaves the others standing. The result says what became
        of each, after those the proposing server refused before (`refused`, echoed)."""
        results = [{"name": str(r["name"]), "error": str(r["error"]), "message": str(r["message"])} for r in refused]
        def put(job):
            created = self.job(job["name"]) is None
            done = self.apply_job_put(entry_term, job)
            return done if "error" in done else {"name": job["name"], "created": created}

        for job in jobs:
            done = self.guarded("job.put_batch item", lambda: put(job))
            if "error" in done:
                name = job.get("name") if isinstance(job, dict) else None
                done = {"name": name if isinstance(name, str) else "", **done}
            results.append(done)
        return {"results": results}

    def apply_job_delete(self, entry_term, name):
        job = self.job(name)
        if job is None:
            return failure("not_found", f"job {name!r} not found")
        if job["dependent_jobs"]:
            return failure("conflict", f"job {name!r} has dependent jobs {job['dependent_jobs']}: delete them first")
        if job["parent_job"]:
            self._edit_dependents(job["parent_job"], remove=name)
        JobRow.delete().where(JobRow.name == name).execute()
        JobStateRow.delete().where(JobStateRow.name == name).execute()
        ExecutionRow.delete().where(ExecutionRow.job == name).execute()
        TickRow.delete().where(TickRow.job == name).execute()
        self.forget_followups(name)
        self._changed(name, None)
        return {"job": job}

    def apply_settings_put(self, entry_term, key, value):
        if key not in SETTINGS:
            return failure("bad_request", f"unknown setting {key!r} (one of {', '.join(sorted(SETTINGS))})")
        choices = SETTINGS[key]
        if choices and value not in choices:
            return failure("bad_request", f"setting {key}: expected one of {', '.join(choices)}, got {value!r}")
        if not isinstance(value, str) or len(value) > SETTING_MAX_CHARS:
            return failure("bad_request", f"setting {key}: expected text of at most {SETTING_MAX_CHARS} characters")
        self._run("INSERT OR REPLACE INTO settingrow (key, value) VALUES (?, ?)", (key, value))
        self._changed("", None)  # a change without a name: the scheduler reloads everything
        return {"settings": self.settings()}

    def apply_note_put(self, entry_term, text):
        if not isinstance(text, str) or len(text) > NOTE_MAX_CHARS:
            return failure("bad_request", f"note: expected text of at most {NOTE_MAX_CHARS} characters")
        self._run("INSERT OR REPLACE INTO settingrow (key, value) VALUES ('note', ?)", (text,))
        return {"settings": self.settings()}

    def settings(self):
        return {**SETTING_DEFAULTS, **dict(self.db.execute_sql("SELECT key, value FROM settingrow").fetchall())}

    def apply_server_register(self, entry_term, name, addrs, store="", protocol=(1, 1)):
        # Left out of the command at [1, 1], so that a server of the release before versions
        # applies the registration of a new one during a rolling upgrade.
        lo, hi = protocol
        if not (type(lo) is int and type(hi) is int and 1 <= lo <= hi < 1 << 16):
            return failure("bad_request", f"server.register: protocol {protocol!r} is not [lowest, highest]")
        ServerRow.insert(name=name, addrs=json.dumps({**addrs, "store": store}),
                         protocol=json.dumps([lo, hi])).on_conflict_replace().execute()
        return {"name": name}

    def server_protocols(self):
        """Each registered server's [lowest accepted, spoken] protocol."""
        return {name: json.loads(p) for name, p in self.db.execute_sql("SELECT name, protocol FROM serverrow")}

    # -- reading ---------------------------------------------------------------------------

    def job(self, name):
        """A job as clients see it: its definition with its run state."""
        row = self._one(JOB_QUERY + " WHERE j.name = ?", (name,))
        return _merged(row) if row else None

    def jobs(self, after="", limit=-1, offset=0):
        """Jobs by name after `after` (skipping `offset`), at most `limit` (-1: all), each with
        its run state."""
        rows = self.db.execute_sql(JOB_QUERY + " WHERE j.name > ? ORDER BY j.name LIMIT ? OFFSET ?",
                                   (after, limit, max(offset, 0)))
        return [_merged(row) for row in rows]

    def job_names(self):
        return [name for (name,) in self.db.execute_sql("SELECT name FROM jobrow ORDER BY name")]

    def job_page(self, after="", limit=1000, offset=0, max_bytes=1 << 20):
        """(jobs, more): a page of jobs() cut at `max_bytes` of stored JSON too (one job at
        least), so that a page of large jobs still fits a frame."""
        rows = self.db.execute_sql(JOB_QUERY + " WHERE j.name > ? ORDER BY j.name LIMIT ? OFFSET ?",
                                   (after, limit + 1, max(offset, 0)))
        jobs, size = [], 0
        for row in rows:
            size += len(row[0]) + len(row[1] or "")
            if len(jobs) == limit or jobs and size > max_bytes:
                return jobs, True
            jobs.append(_merged(row))
        return jobs, False

    def job_count(self):
        return self.db.execute_sql("SELECT COUNT(*) FROM jobrow").fetchone()[0]

    def server(self, name):
        row = ServerRow.get_or_none(ServerRow.name == name)
        return json.loads(row.addrs) if row else None

    def retired(self, name):
        """The storage ids a recovery retired under this name (a server with one is refused)."""
        return {row[0] for row in self.db.execute_sql("SELECT store FROM retiredrow WHERE name = ?", (name,))}

    def snapshot_to(self, path):
        """A consistent copy of the whole state (SQLite's backup API), applied index included."""
        dest = sqlite3.connect(path)
        try:
            self.db.connection().backup(dest)
        finally:
            dest.close()

    def pragmas(self):
        return {"journal_mode": self.db.execute_sql("PRAGMA journal_mode").fetchone()[0],
                "synchronous": self.db.execute_sql("PRAGMA synchronous").fetchone()[0]}

    # -- plumbing --------------------------------------------------------------------------

    def _save_job(self, job):
        """A definition change: stored, and published on the job feed. Its run state is not
        written: a definition change carries it over unchanged, and a new job has none yet
        (JOB_QUERY reads a missing row as JOB_STATE); a second row per write showed in profiles."""
        definition = {k: v for k, v in job.items() if k not in models.JOB_STATE}
        self._run("INSERT INTO jobrow (name, parent, body) VALUES (?, ?, ?)"
                  + UPDATE_ROW % "parent = excluded.parent, body = excluded.body",
                  (job["name"], job["parent_job"], json.dumps(definition)))
        self._changed(job["name"], job)

    def _save_state(self, job):
        """A run changed the job's counters or last tick: stored, not published."""
        state = {k: job.get(k, v) for k, v in models.JOB_STATE.items()}
        self._run("INSERT INTO jobstaterow (name, body) VALUES (?, ?)" + UPDATE_ROW % "body = excluded.body",
                  (job["name"], json.dumps(state)))

    def _changed(self, name, job):
        self.job_seq += 1
        self.changes.append((self.job_seq, name, job))

    def _cycle(self, name, parent):
        """The chain of parents from `parent` back to `name`, if there is one."""
        chain, seen = [name], {name}
        while parent:
            chain.append(parent)
            if parent in seen:
                return chain
            seen.add(parent)
            job = self.job(parent)
            parent = job["parent_job"] if job else ""
        return None

    def _edit_dependents(self, parent, add=None, remove=None):
        job = self.job(parent)
        if job is None:
            return
        deps = [d for d in job["dependent_jobs"] if d != remove]
        if add and add not in deps:
            deps.append(add)
        if deps != job["dependent_jobs"]:
            job["dependent_jobs"] = deps
            self._save_job(job)

    def _name_cluster(self, entries):
        """The cluster's id, for its backups: drawn from the first command applied that carries
        a request id (random where it was proposed), so every replica names it alike."""
        for index, _, command in entries:
            if isinstance(command, dict) and isinstance(command.get("req"), str):
                self.cluster = int(hashlib.sha256(f"{index}/{command['req']}".encode()).hexdigest()[:15], 16)
                self._set_meta("cluster", self.cluster)
                return

    def cluster_id(self):
        return f"{self.cluster:015x}" if self.cluster else ""

    def _trim_sessions(self):
        if SessionRow.select().count() > SESSIONS_KEPT * 1.1:
            cutoff = SessionRow.select(SessionRow.applied).order_by(SessionRow.applied.desc()).offset(SESSIONS_KEPT).limit(1)
            SessionRow.delete().where(SessionRow.applied <= cutoff).execute()

    def _meta(self, key):
        row = MetaRow.get_or_none(MetaRow.key == key)
        return row.value if row else 0

    def _set_meta(self, key, value):
        self._run("INSERT INTO metarow (key, value) VALUES (?, ?)" + UPDATE_ROW % "value = excluded.value",
                  (key, value))

    # The hot paths run their SQL directly: building a peewee query costs more than running it.

    def _one(self, sql, params):
        return self.db.execute_sql(sql, params).fetchone()

    def _run(self, sql, params=()):
        self.db.execute_sql(sql, params)

    def close(self):
        """Every committed write moved from the WAL into state.db and the WAL emptied: a file put
        in its place next (a snapshot installed) meets no WAL of the old one."""
        self.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()


def _merged(row):
    definition, state = row
    # A state stored before a counter existed reads as its default.
    return {**json.loads(definition), **models.JOB_STATE, **(json.loads(state) if state else {})}
