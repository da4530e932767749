"""Replay protection for gossip datagrams, pure: each message id is the sender's boot number
and a sequence number, and each receiver keeps a sliding window per sender (as IPsec's anti-
replay window), so a datagram captured and sent again is dropped even though it decrypts."""

from __future__ import annotations

WINDOW = 1024         # how far out of order a datagram may arrive and still be taken
MAX_SENDERS = 16_384  # senders remembered; the oldest is forgotten past this


def message_id(boot, seq):
    return boot.to_bytes(8, "big") + seq.to_bytes(8, "big")


class MessageIds:
    """Our own ids: boot (greater at every start of this node) then a counter."""

    def __init__(self, boot):
        self.boot, self.seq = boot, 0

    def next(self):
        self.seq += 1
        return message_id(self.boot, self.seq)


class ReplayWindow:
    def __init__(self, window=WINDOW, max_senders=MAX_SENDERS):
        self.window, self.max_senders = window, max_senders
        self.senders = {}  # name → [boot, highest seq, seqs seen within the window]

    def accept(self, sender, msg_id):
        """True the first time (sender, msg_id) is seen within the window; False for a repeat,
        for an id from an earlier boot of the sender, or for one too old to tell."""
        if len(msg_id) != 16:
            return False
        boot, seq = int.from_bytes(msg_id[:8], "big"), int.from_bytes(msg_id[8:], "big")
        state = self.senders.get(sender)
        if state is None or boot > state[0]:
            self.senders.pop(sender, None)
            self.senders[sender] = [boot, seq, {seq}]
            if len(self.senders) > self.max_senders:
                del self.senders[next(iter(self.senders))]
            return True
        if boot < state[0]:
            return False
        top, seen = state[1], state[2]
        if seq > top:
            state[1] = seq
            seen.add(seq)
            if len(seen) > 2 * self.window:
                state[2] = {s for s in seen if s > seq - self.window}
            return True
        if seq <= top - self.window or seq in seen:
            return False
        seen.add(seq)
        return True
