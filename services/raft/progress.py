"""What a Raft leader knows of one follower's log (etcd's Progress): the highest index known
to match, the next to send, how many appends are in flight (bounded pipelining), whether it
answered since the last CheckQuorum round, and the snapshot sent to it, if any."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    next: int = 1
    match: int = 0
    inflight: int = 0
    probing: bool = False   # after a rejection: one append at a time until one succeeds
    active: bool = False
    snapshot_index: int = 0

    def paused(self, max_inflight):
        return self.inflight >= (1 if self.probing else max_inflight)

    def sent(self, last_index):
        """Pipelining: assume the append lands and send the next batch without waiting."""
        self.next = last_index + 1
        self.inflight += 1

    def acked(self, match):
        self.inflight = max(0, self.inflight - 1)
        self.probing = False
        if match > self.match:
            self.match = match
        self.next = max(self.next, match + 1)
        if self.inflight == 0:
            # Nothing in flight, yet the follower holds less than we sent (a new or restarted
            # server, or appends lost on the way): resend from what it has.
            self.next = self.match + 1
        if self.snapshot_index and match >= self.snapshot_index:
            self.snapshot_index = 0

    def rejected(self, hint, last_index):
        self.inflight = 0
        self.probing = True
        self.next = max(self.match + 1, min(hint, last_index + 1))
