"""Lifeguard's two timers, pure: local health (how far to trust our own failure detector) and
the suspicion timer that shrinks as independent members confirm it (Lifeguard §IV, arXiv
1707.00788; memberlist's awareness.go and suspicion.go are the reference behaviour)."""

from __future__ import annotations

import math


def suspicion_timeout(mult, members, interval_ms):
    """SWIM's suspicion period, grown with log10 of the cluster size so that dissemination
    (which takes O(log n) rounds) can reach everyone, and the suspect refute, in time."""
    scale = max(1.0, math.log10(max(1, members)))
    return int(mult * scale * interval_ms)


def retransmit_limit(mult, members):
    """How many times each update is sent on: enough rounds for an epidemic to reach n. Under
    ten members log10 gives one round, and about one update in twelve then missed a member
    until the next push-pull (tests/sim); two rounds at least make that about one in a thousand."""
    return mult * max(2, math.ceil(math.log10(members + 1)))


class Awareness:
    """Local Health Multiplier (Lifeguard §IV.A). Missed nacks and refutations of our own
    suspicion say that *we* are slow; probe interval and timeout stretch by score + 1."""

    def __init__(self, max_multiplier):
        self.max = max_multiplier
        self.score = 0

    def apply(self, delta):
        self.score = min(max(self.score + delta, 0), self.max - 1)

    def scale(self, ms):
        return ms * (self.score + 1)


class Suspicion:
    """Local Health Aware Suspicion (Lifeguard §IV.B): starts at `max_ms` and falls
    logarithmically to `min_ms` as k independent members confirm; with k < 1 it is a fixed
    `min_ms` (plain SWIM, or too few members to expect confirmations)."""

    __slots__ = ("incarnation", "k", "n", "min_ms", "max_ms", "start", "due", "confirmed")

    def __init__(self, incarnation, origin, k, min_ms, max_ms, start):
        self.incarnation, self.k, self.n = incarnation, k, 0
        self.min_ms, self.max_ms, self.start = min_ms, max_ms, start
        self.due = start + (max_ms if k >= 1 else min_ms)
        self.confirmed = {origin}  # our own suspicion gossiped back to us is no confirmation

    def knows(self, origin):
        """True when a confirmation from `origin` would change nothing."""
        return self.n >= self.k or origin in self.confirmed

    def confirm(self, origin):
        """True when this is new information (then the suspicion is passed on)."""
        if self.n >= self.k or origin in self.confirmed:
            return False
        self.confirmed.add(origin)
        self.n += 1
        frac = math.log(self.n + 1) / math.log(self.k + 1)
        timeout = max(self.min_ms, math.floor(self.max_ms - frac * (self.max_ms - self.min_ms)))
        self.due = self.start + timeout
        return True
