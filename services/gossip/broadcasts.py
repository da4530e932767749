"""The dissemination queue, pure: updates waiting to be piggybacked, each sent a bounded
number of times, fewest-sent first and then newest first (memberlist's TransmitLimitedQueue).
A newer update about the same member replaces the older one: stale news never rides along."""

from __future__ import annotations

from common import wire

MIN_UPDATE_BYTES = 16  # below this much room left, no update can fit: stop looking
MAX_MISFITS = 32       # updates passed over for size before giving up: bounds the cost of one take


class Broadcasts:
    def __init__(self):
        self.levels = []  # levels[t]: key → (size, update) sent t times, oldest first
        self.level_of = {}

    def __len__(self):
        return len(self.level_of)

    @property
    def items(self):
        return self.level_of

    def add(self, key, update):
        self.drop(key)
        if not self.levels:
            self.levels.append({})
        self.levels[0][key] = (len(wire.pack(update)), update)
        self.level_of[key] = 0

    def drop(self, key):
        level = self.level_of.pop(key, None)
        if level is not None:
            del self.levels[level][key]

    def clear(self):
        self.levels, self.level_of = [], {}

    def take(self, budget, limit):
        """Updates that fit in `budget` bytes; each counts as one transmission, and one sent
        `limit` times leaves the queue."""
        if not self.level_of or budget < MIN_UPDATE_BYTES:
            return []
        chosen, misfits = [], 0
        for level, entries in enumerate(self.levels):
            for key in reversed(entries):
                size = entries[key][0]
                if size <= budget:
                    budget -= size
                    chosen.append((level, key))
                else:
                    misfits += 1
                if budget < MIN_UPDATE_BYTES or misfits > MAX_MISFITS:
                    break
            if budget < MIN_UPDATE_BYTES or misfits > MAX_MISFITS:
                break
        updates = [self.levels[level][key][1] for level, key in chosen]
        for level, key in reversed(chosen):  # oldest first: the next level keeps newest last
            entry = self.levels[level].pop(key)
            if level + 1 >= limit:
                del self.level_of[key]
                continue
            if level + 1 == len(self.levels):
                self.levels.append({})
            self.levels[level + 1][key] = entry
            self.level_of[key] = level + 1
        return updates
