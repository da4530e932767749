"""User events, pure (Serf's): stamped with a Lamport clock that every event and push-pull
advances, told apart from repeats by a buffer of recent clock values, passed on through the
dissemination queue and delivered once on every member."""

from __future__ import annotations

EVENT_BUFFER = 512          # Serf's event buffer: user events this many Lamport ticks old are dropped
MAX_EVENT_BYTES = 512       # Serf's user event size limit: name and payload ride in one datagram


class UserEvents:
    def __init__(self, broadcasts):
        self.broadcasts = broadcasts
        self.clock = 0
        self.seen = {}        # ltime → {(name, payload)}
        self.delivered = []   # {ltime, name, payload} for the shell to publish

    def witness(self, ltime):
        """Lamport: our clock passes any time we hear of."""
        if ltime >= self.clock:
            self.clock = ltime + 1

    def fire(self, name, payload):
        if len(name.encode()) + len(payload) > MAX_EVENT_BYTES:
            raise ValueError(f"a user event's name and payload must fit in {MAX_EVENT_BYTES} bytes")
        ltime = self.clock
        self.clock += 1
        self.receive(ltime, name, payload)
        return ltime

    def receive(self, ltime, name, payload):
        self.witness(ltime)
        if ltime + EVENT_BUFFER < self.clock:
            return  # older than the buffer remembers: it could be a repeat
        seen = self.seen.setdefault(ltime, set())
        if (name, payload) in seen:
            return
        seen.add((name, payload))
        if len(self.seen) > 2 * EVENT_BUFFER:
            for old in [t for t in self.seen if t + EVENT_BUFFER < self.clock]:
                del self.seen[old]
        self.broadcasts.add(("e", ltime, name, payload), ["e", ltime, name, payload])
        self.delivered.append({"ltime": ltime, "name": name, "payload": payload})
