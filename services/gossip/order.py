"""Whom to talk to next, pure: SWIM's round-robin probe order over a shuffled member list
(a full pass before anyone is probed twice, so a failure is found in bounded time, SWIM §4.3)
and random picks of k members for gossip, indirect probes and push-pull."""

from __future__ import annotations

from services.gossip.roster import LIVE


class ProbeOrder:
    def __init__(self, roster, rng):
        self.roster, self.rng = roster, rng
        self.names, self.index = [], 0

    def next_target(self):
        roster = self.roster
        for _ in range(len(self.names) + 1):
            if self.index >= len(self.names):
                self.names = [x for x in roster.members if x != roster.name]
                self.rng.shuffle(self.names)
                self.index = 0
                if not self.names:
                    return None
            mem = roster.members.get(self.names[self.index])
            self.index += 1
            if mem is not None and mem.state in LIVE:
                return mem
        return None

    def add(self, name):
        """memberlist puts a new member at a random place, so it is probed within one pass."""
        self.names.insert(self.rng.randrange(len(self.names) + 1), name)

    def pick(self, k, accept):
        """Up to k distinct members that `accept` takes, at random (memberlist's kRandomNodes)."""
        names, found, tried = self.names, [], set()
        count = len(names)
        for _ in range(3 * count):
            if len(found) >= k or len(tried) >= count:
                break
            name = names[int(self.rng.random() * count)]  # randrange is several calls; this is hot
            if name in tried:
                continue
            tried.add(name)
            mem = self.roster.members.get(name)
            if mem is not None and accept(mem):
                found.append(mem)
        return found
