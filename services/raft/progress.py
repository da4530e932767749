"""What a Raft leader knows of one follower's log (etcd's Progress): the highest index known
to match, the next to send, the appends in flight (bounded pipelining, freed by acks), whether
it answered since the last CheckQuorum round, and the snapshot sent to it, if any."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Progress:
    next: int = 1
    match: int = 0
    inflight: deque = field(default_factory=deque)  # last index of each append not yet acked
    probing: bool = False   # after a rejection: one append at a time until one succeeds
    active: bool = False
    acked_lately: bool = False  # match moved since the last heartbeat round (heartbeat acks do not count)
    snapshot_index: int = 0
    snapshot_rounds: int = 0    # CheckQuorum rounds since the snapshot went out unanswered

    def paused(self, max_inflight):
        return len(self.inflight) >= (1 if self.probing else max_inflight)

    def sent(self, last_index):
        """Pipelining: assume the append lands and send the next batch without waiting."""
        self.next = last_index + 1
        self.inflight.append(last_index)

    def acked(self, match):
        self.probing = False
        if match > self.match:
            self.match = match
            self.acked_lately = True
        while self.inflight and self.inflight[0] <= match:
            self.inflight.popleft()
        self.next = max(self.next, match + 1)
        if self.snapshot_index and match >= self.snapshot_index:
            self.snapshot_index = self.snapshot_rounds = 0

    def snapshot_unanswered(self, rounds):
        """A snapshot in transit for this many rounds was lost (the follower restarted, or a
        chunk went missing): forget it, so the next round sends it again."""
        if self.snapshot_index:
            self.snapshot_rounds += 1
            if self.snapshot_rounds >= rounds:
                self.snapshot_index = self.snapshot_rounds = 0

    def rejected(self, hint, last_index):
        self.inflight.clear()
        self.probing = True
        self.next = max(self.match + 1, min(hint, last_index + 1))

    def rewind(self):
        """Appends were lost (the pipeline is full and not draining), or the follower holds
        less than was sent with nothing in flight (a new or restarted server): resend."""
        self.inflight.clear()
        self.next = self.match + 1
