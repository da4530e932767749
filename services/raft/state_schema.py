"""Migrations of state.db, the replicated state machine's file (services/raft/fsm.py), oldest
first. Each is a small function run once per file inside common.schema.migrate's transaction;
a new one is appended, never edited, and the peewee models in fsm.py follow the last."""

from common.schema import Schema


def tables(db):
    """The first schema, as the release before versions made it (peewee's create_tables)."""
    # One statement at a time: executescript would commit migrate's transaction first.
    for statement in """
        CREATE TABLE IF NOT EXISTS "jobrow" ("name" TEXT NOT NULL PRIMARY KEY, "parent" TEXT NOT NULL,
                                             "body" TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS "jobrow_parent" ON "jobrow" ("parent");
        CREATE TABLE IF NOT EXISTS "jobstaterow" ("name" TEXT NOT NULL PRIMARY KEY, "body" TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS "executionrow" ("id" TEXT NOT NULL PRIMARY KEY, "job" TEXT NOT NULL,
                                                   "grp" INTEGER NOT NULL, "status" TEXT NOT NULL,
                                                   "body" TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS "executionrow_status" ON "executionrow" ("status");
        CREATE INDEX IF NOT EXISTS "executionrow_job_grp" ON "executionrow" ("job", "grp");
        CREATE TABLE IF NOT EXISTS "tickrow" ("job" TEXT NOT NULL, "scheduled_at" INTEGER NOT NULL,
                                              "grp" INTEGER NOT NULL, "term" INTEGER NOT NULL,
                                              PRIMARY KEY ("job", "scheduled_at"));
        CREATE TABLE IF NOT EXISTS "metarow" ("key" TEXT NOT NULL PRIMARY KEY, "value" INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS "serverrow" ("name" TEXT NOT NULL PRIMARY KEY, "addrs" TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS "sessionrow" ("client" TEXT NOT NULL PRIMARY KEY, "seq" INTEGER NOT NULL,
                                                 "result" TEXT NOT NULL, "applied" INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS "sessionrow_applied" ON "sessionrow" ("applied");
        CREATE TABLE IF NOT EXISTS "settingrow" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);
    """.split(";"):
        if statement.strip():
            db.execute(statement)


def server_protocol(db):
    """Each server's protocol range [lowest accepted, spoken]: the leader proposes a command only
    once every server speaks its version. A server recorded before versions spoke only 1."""
    db.execute("""ALTER TABLE "serverrow" ADD COLUMN "protocol" TEXT NOT NULL DEFAULT '[1, 1]'""")


def key_book(db):
    """The CURVE public keys the cluster knows, by the node or client they name, with their
    status: pending (seen in gossip), accepted (let in by every socket) or rejected."""
    db.execute("""CREATE TABLE "keyrow" ("key" TEXT NOT NULL PRIMARY KEY, "name" TEXT NOT NULL,
                                         "kind" TEXT NOT NULL, "status" TEXT NOT NULL)""")
    db.execute("""CREATE INDEX "keyrow_name" ON "keyrow" ("name")""")


def run_followups(db):
    """What follows a run, replicated (protocol 2): a failed attempt's pending retry with its due
    time, a firing's follow-ups (effects: a dependent job's run, the ephemeral delete, notices)
    until carried out, and the run-now requests claimed (a request sent again runs once)."""
    for statement in (
        """CREATE TABLE "retryrow" ("id" TEXT NOT NULL PRIMARY KEY, "job" TEXT NOT NULL, "grp" INTEGER NOT NULL,
                                    "due_at" INTEGER NOT NULL, "body" TEXT NOT NULL)""",
        """CREATE INDEX "retryrow_job" ON "retryrow" ("job")""",
        """CREATE TABLE "effectrow" ("id" TEXT NOT NULL PRIMARY KEY, "job" TEXT NOT NULL, "grp" INTEGER NOT NULL,
                                     "kind" TEXT NOT NULL, "target" TEXT NOT NULL, "body" TEXT NOT NULL)""",
        """CREATE INDEX "effectrow_target" ON "effectrow" ("target")""",
        """CREATE TABLE "requestrow" ("key" TEXT NOT NULL PRIMARY KEY, "job" TEXT NOT NULL, "result" TEXT NOT NULL,
                                      "applied" INTEGER NOT NULL)""",
        """CREATE INDEX "requestrow_applied" ON "requestrow" ("applied")""",
    ):
        db.execute(statement)


def acl(db):
    """Dkron's ACL (protocol 3): policies (their Rules as given, a JSON string) and tokens, of
    which only a hash of the secret and the CURVE public key derived from it are kept."""
    for statement in (
        """CREATE TABLE "policyrow" ("name" TEXT NOT NULL PRIMARY KEY, "rules" TEXT NOT NULL,
                                     "description" TEXT NOT NULL)""",
        """CREATE TABLE "tokenrow" ("accessor" TEXT NOT NULL PRIMARY KEY, "hash" TEXT NOT NULL UNIQUE,
                                    "key" TEXT NOT NULL UNIQUE, "type" TEXT NOT NULL, "policies" TEXT NOT NULL,
                                    "description" TEXT NOT NULL, "created_at" INTEGER NOT NULL,
                                    "expires_at" INTEGER NOT NULL)""",
    ):
        db.execute(statement)


def audit(db):
    """The audit trail (protocol 3): one row per applied write, keyed by its log index, with who
    made it, when, and what it changed (services/raft/audit.py)."""
    db.execute("""CREATE TABLE "auditrow" ("seq" INTEGER NOT NULL PRIMARY KEY, "at" INTEGER NOT NULL,
                                           "who" TEXT NOT NULL, "op" TEXT NOT NULL, "target" TEXT NOT NULL,
                                           "change" TEXT NOT NULL)""")


def state_checks(db):
    """Each server's hash of its state at the snapshot points (state.check, protocol 3): the
    replicas compare them, and a difference is a divergence reported loudly."""
    db.execute("""CREATE TABLE "checkrow" ("idx" INTEGER NOT NULL, "server" TEXT NOT NULL,
                                           "checksum" TEXT NOT NULL, PRIMARY KEY ("idx", "server"))""")


def retired_servers(db):
    """Servers a recovery after quorum loss left out (`pykron recover`), by name and storage id:
    one that returns with that storage is refused; wiped, it joins as a new server."""
    db.execute("""CREATE TABLE "retiredrow" ("name" TEXT NOT NULL, "store" TEXT NOT NULL,
                                             PRIMARY KEY ("name", "store"))""")


STATE = Schema("state", 0x706B7374, (tables, server_protocol, key_book, run_followups, acl, audit,
                                     state_checks, retired_servers))  # "pkst"
