"""Why an entry failed to apply, for the state machine (fsm.py), and the savepoint each command
and each item of a record applies in: the entry's own fault is refused with a fixed reason that
every replica records alike; the environment's (a full disk, an I/O error, a corrupt file) is
never a refusal: replicas must not diverge over a local fault."""

from __future__ import annotations

import sqlite3

from services.raft.runs import failure

# SQLite's primary result codes that say the store, not the statement, is at fault.
ENVIRONMENTAL_CODES = {
    3,   # SQLITE_PERM
    5,   # SQLITE_BUSY
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY
    9,   # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    26,  # SQLITE_NOTADB
}

# A reason per kind of fault, never the exception's text: its wording (a repr of the value, an
# address, a library's version) could differ from one replica to the next.
REASONS = (
    (RecursionError, "nested too deep"),
    (OverflowError, "an integer out of range"),
    (TypeError, "a field of the wrong type or a missing or unknown field"),
    (KeyError, "a missing field"),
    (AttributeError, "a field of the wrong shape"),
    (ValueError, "a value out of range"),
)


def sqlite_error(exc):
    """The sqlite3 error behind exc (peewee wraps it as its first argument), or None."""
    for candidate in (exc, *(exc.args[:1] if getattr(exc, "args", None) else ()), exc.__context__):
        if isinstance(candidate, sqlite3.Error):
            return candidate
    return None


def environmental(exc):
    """True when exc comes from the machine (disk, memory, a damaged file), not the entry; so
    is an error met while undoing one (SQLite rolls a transaction back itself on a full disk,
    and the rollback that follows fails)."""
    for _ in range(8):
        if exc is None:
            return False
        if _environmental(exc):
            return True
        exc = exc.__context__
    return False


def _environmental(exc):
    if isinstance(exc, (OSError, MemoryError)):
        return True
    found = sqlite_error(exc)
    if found is None:
        return False
    code = getattr(found, "sqlite_errorcode", None)
    if code is None:
        # Without a code (an older Python), only a plain DatabaseError reads as the file's fault.
        return type(found) in (sqlite3.DatabaseError, sqlite3.OperationalError)
    if code & 0xFF == 1 and "no transaction is active" in str(found):
        return False  # judged by what it follows (the chain walked above)
    return code & 0xFF in ENVIRONMENTAL_CODES


def reason(what, exc):
    """The fixed message a refusal of `what` records for exc (an entry's own fault)."""
    for kind, text in REASONS:
        if isinstance(exc, kind):
            return f"malformed {what}: {text}"
    if sqlite_error(exc) is not None:
        return f"malformed {what}: a value the store cannot hold"
    return f"malformed {what}: refused"


class Guarded:
    """Mixed into StateMachine: uses its _run SQL helper."""

    def guarded(self, what, fn):
        """fn() in a savepoint of its own: a command, or one item of a batch (an exec.record's
        results), that fails half way leaves nothing of itself behind and is refused with a
        fixed reason, alike on every replica; the items beside it stand. The machine's own
        errors are raised: they are no refusal."""
        self._run("SAVEPOINT guarded")
        try:
            result = fn()
        except Exception as exc:
            if environmental(exc):
                raise
            self._run("ROLLBACK TO guarded")
            result = failure("bad_request", reason(what, exc))
        self._run("RELEASE guarded")
        return result
