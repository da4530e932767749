"""The Raft core's view of its log, pure: entries after the last snapshot, what is not yet
durable, and the cluster configuration each conf entry set (Raft dissertation §4.1: a server
uses the latest configuration in its log, committed or not, and reverts it on truncation)."""

from __future__ import annotations

from dataclasses import dataclass

NORMAL, CONF = 0, 1


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    data: bytes
    kind: int = NORMAL

    def to_wire(self):
        return [self.index, self.term, self.data, self.kind]

    @staticmethod
    def from_wire(item):
        index, term, data, *rest = item
        return Entry(int(index), int(term), bytes(data), int(rest[0]) if rest else NORMAL)


@dataclass(frozen=True, slots=True)
class Membership:
    """Voters and learners, each name → that server's addresses (so every server can dial it)."""

    voters: dict
    learners: dict

    def names(self):
        return set(self.voters) | set(self.learners)

    def to_plain(self):
        return {"voters": dict(self.voters), "learners": dict(self.learners)}

    @staticmethod
    def from_plain(doc):
        return Membership(dict(doc.get("voters", {})), dict(doc.get("learners", {})))


@dataclass(frozen=True, slots=True)
class Snapshot:
    index: int
    term: int
    membership: Membership


class RaftLog:
    def __init__(self, snapshot, entries, decode_conf):
        self.snapshot = snapshot
        self.decode_conf = decode_conf
        self.entries = [Entry(snapshot.index, snapshot.term, b"")] + list(entries)
        self.stable = self.last_index()
        self.unstable_from = self.stable + 1
        self.confs = [(snapshot.index, snapshot.membership)]
        for entry in entries:
            self.note_conf(entry)

    # -- reading ---------------------------------------------------------------------------

    @property
    def offset(self):
        return self.entries[0].index

    def last_index(self):
        return self.entries[-1].index

    def last_term(self):
        return self.entries[-1].term

    def term(self, index):
        """The term of the entry at index; -1 when it is compacted away or not there yet."""
        if self.offset <= index <= self.last_index():
            return self.entries[index - self.offset].term
        return -1

    def slice(self, start, stop):
        """Entries [start, stop) still in memory (start > offset)."""
        return self.entries[start - self.offset:stop - self.offset]

    def entry(self, index):
        return self.entries[index - self.offset]

    def membership(self):
        return self.confs[-1][1]

    def pending_conf(self, commit):
        """True while a configuration entry is not committed: only one change at a time (§4.1)."""
        return self.confs[-1][0] > commit

    def unstable(self):
        return self.slice(self.unstable_from, self.last_index() + 1)

    # -- changing --------------------------------------------------------------------------

    def append(self, entries):
        for entry in entries:
            self.entries.append(entry)
            self.note_conf(entry)
        if entries:
            self.unstable_from = min(self.unstable_from, entries[0].index)

    def truncate(self, index, commit):
        """Drop entries from index on: a conflicting suffix (§5.3), never a committed entry."""
        if index <= commit:
            raise AssertionError(f"raft: truncating committed entry {index} (commit {commit})")
        del self.entries[index - self.offset:]
        self.confs = [c for c in self.confs if c[0] < index] or self.confs[:1]
        self.unstable_from = min(self.unstable_from, index)
        self.stable = min(self.stable, index - 1)

    def note_conf(self, entry):
        if entry.kind == CONF:
            self.confs.append((entry.index, Membership.from_plain(self.decode_conf(entry.data))))

    def stabilize(self, upto):
        self.stable = upto
        self.unstable_from = upto + 1

    def compact(self, snapshot):
        """Forget entries up to a snapshot the state machine took (they are in it)."""
        if snapshot.index <= self.offset:
            return
        self.entries = [Entry(snapshot.index, snapshot.term, b"")] + self.slice(snapshot.index + 1,
                                                                                 self.last_index() + 1)
        self.snapshot = snapshot
        self.confs = [(snapshot.index, snapshot.membership)] + [c for c in self.confs if c[0] > snapshot.index]

    def restore(self, snapshot):
        """Replace everything with a snapshot received from the leader."""
        self.entries = [Entry(snapshot.index, snapshot.term, b"")]
        self.snapshot = snapshot
        self.confs = [(snapshot.index, snapshot.membership)]
        self.stable = snapshot.index
        self.unstable_from = snapshot.index + 1
