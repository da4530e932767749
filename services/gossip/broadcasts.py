"""The dissemination queue, pure: updates waiting to be piggybacked, each sent a bounded
number of times, fewest-sent first and then newest first (memberlist's TransmitLimitedQueue).
A newer update about the same member replaces the older one: stale news never rides along."""

from __future__ import annotations

from common import wire

MIN_UPDATE_BYTES = 16  # below this much room left, no update can fit: stop looking
MAX_MISFITS = 8        # updates passed over for size before giving up: bounds the cost of one take


class Broadcasts:
    def __init__(self):
        self.levels = []  # levels[t]: key → (size, update) sent t times, oldest first
        self.level_of = {}
        self.sized = None  # called with each queued update and its bytes (the simulator counts bytes so)

    def __len__(self):
        return len(self.level_of)

    @property
    def items(self):
        return self.level_of

    def add(self, key, update):
        self.drop(key)
        if not self.levels:
            self.levels.append({})
        size = len(wire.pack(update))
        self.levels[0][key] = (size, update)
        self.level_of[key] = 0
        if self.sized is not None:
            self.sized(update, size)

    def drop(self, key):
        level = self.level_of.pop(key, None)
        if level is not None:
            del self.levels[level][key]

    def clear(self):
        self.levels, self.level_of = [], {}

    def take(self, budget, limit):
        """Updates that fit in `budget` bytes; each counts as one transmission, and one sent
        `limit` times leaves the queue. Hot (every datagram), hence the plain loops."""
        level_of = self.level_of
        if not level_of or budget < MIN_UPDATE_BYTES:
            return []
        levels, updates, moved, misfits = self.levels, [], [], 0
        for level, entries in enumerate(levels):
            if not entries:
                continue
            for key, entry in reversed(entries.items()):
                if entry[0] <= budget:
                    budget -= entry[0]
                    updates.append(entry[1])
                    moved.append((level, key, entry))
                    if budget < MIN_UPDATE_BYTES:
                        break
                else:
                    misfits += 1
                    if misfits > MAX_MISFITS:
                        break
            if budget < MIN_UPDATE_BYTES or misfits > MAX_MISFITS:
                break
        for level, key, entry in reversed(moved):  # oldest first: the next level keeps newest last
            del levels[level][key]
            level += 1
            if level >= limit:
                del level_of[key]
                continue
            if level == len(levels):
                levels.append({})
            levels[level][key] = entry
            level_of[key] = level
        return updates
