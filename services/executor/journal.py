"""A pure part of the executor core: what the executor has written to its store and not yet
committed, when the store may commit, and the results it owes the leader: each sent once its
record is durable, and again until the leader confirms that it is committed."""

from __future__ import annotations

COMMIT_GAP_MS = 30         # a commit waits for a gap: no waiting run due this soon...
COMMIT_MAX_WAIT_MS = 1000  # ...unless a write has waited this long


class Journal:
    def __init__(self, unconfirmed=()):
        self.unsynced = set()    # ids written (a start, a record) and not yet committed
        self.written_at = None   # when the oldest write not yet committed was made
        self.unconfirmed = {r["id"]: r for r in unconfirmed}  # records until the leader commits them
        self.outbox = []         # records to send once committed
        self.sending = set()     # ids whose result is on its way

    def wrote(self, now, execution_id=None):
        if execution_id is not None:
            self.unsynced.add(execution_id)
        if self.written_at is None:
            self.written_at = now

    def durable(self, execution_id):
        return execution_id not in self.unsynced

    def finished(self, record, now):
        self.wrote(now, record["id"])
        self.unconfirmed[record["id"]] = record
        self.outbox.append(record)

    def may_commit(self, now, next_start):
        """A write is waiting, and the store may commit now: under a busy CPU an fsync takes
        tens of ms, and a run due meanwhile would wait for it."""
        return self.written_at is not None and (
            next_start is None or next_start - now > COMMIT_GAP_MS or now - self.written_at >= COMMIT_MAX_WAIT_MS)

    def commit_due(self):
        """When a write will have waited long enough to commit whatever is due (None: none waits)."""
        return None if self.written_at is None else self.written_at + COMMIT_MAX_WAIT_MS

    def committed(self):
        """Everything written is durable: the records waiting for it, to send."""
        self.unsynced.clear()
        self.written_at = None
        outbox, self.outbox = self.outbox, []
        return outbox

    def owed(self):
        """Durable records the leader has not confirmed: to send again."""
        return [r for execution_id, r in self.unconfirmed.items() if execution_id not in self.unsynced]

    def take(self, record):
        """True when the record is to go now (it is not already on its way)."""
        if record["id"] in self.sending:
            return False
        self.sending.add(record["id"])
        return True

    def confirmed(self, execution_id):
        """True when this was a result owed (its confirmation is to be stored)."""
        self.sending.discard(execution_id)
        return self.unconfirmed.pop(execution_id, None) is not None

    def failed(self, execution_id):
        self.sending.discard(execution_id)
