"""A linearizability checker for histories of a register per key: Wing & Gong's search with
Lowe's memoization of (linearized set, state) configurations (as in porcupine and Knossos'
WGL). An operation whose outcome is unknown (a timeout) may take effect at any point after
its call, or never."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

UNKNOWN = math.inf


@dataclass
class Op:
    process: int
    kind: str          # "write" | "read"
    key: str
    value: object      # written value, or the value read (None: not found)
    call: float
    ret: float         # UNKNOWN when the client never learned the outcome


class _Entry:
    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op, index, is_call):
        self.op, self.index, self.is_call = op, index, is_call
        self.match = self.prev = self.next = None


def step(state, op):
    """The register model: (legal, next state)."""
    if op.kind == "write":
        return True, op.value
    return op.value == state, state


def check_key(ops, initial=None):
    """True when the operations on one key have a linearization."""
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i, True))
        if op.ret != UNKNOWN:
            events.append((op.ret, 1, i, False))
    events.sort(key=lambda e: (e[0], e[1]))  # at equal times calls first: they may overlap
    head = _Entry(None, -1, False)
    calls = {}
    last = head
    for _, _, i, is_call in events:
        entry = _Entry(ops[i], i, is_call)
        if is_call:
            calls[i] = entry
        else:
            calls[i].match = entry
        entry.prev, last.next = last, entry
        last = entry
    state, linearized, stack, seen = initial, 0, [], set()
    entry = head.next
    while entry is not None:
        if entry.is_call:
            legal, after = step(state, entry.op)
            key = (linearized | (1 << entry.index), after)
            if legal and key not in seen:
                seen.add(key)
                stack.append((entry, state))
                state, linearized = after, key[0]
                _lift(entry)
                entry = head.next
                continue
            entry = entry.next
        else:
            # An operation returned before any order could place it: undo the last choice.
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.index)
            _unlift(entry)
            entry = entry.next
    return True  # only calls of unknown outcome may remain, and they may never have happened


def check(history, initial=None):
    """Per key (a register per key is independent). Returns the keys that fail, [] if none."""
    by_key = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    return sorted(k for k, ops in by_key.items() if not check_key(ops, initial))


def _lift(entry):
    entry.prev.next = entry.next
    if entry.next:
        entry.next.prev = entry.prev
    if entry.match:
        match = entry.match
        match.prev.next = match.next
        if match.next:
            match.next.prev = match.prev


def _unlift(entry):
    if entry.match:
        match = entry.match
        match.prev.next = match
        if match.next:
            match.next.prev = match
    entry.prev.next = entry
    if entry.next:
        entry.next.prev = entry
