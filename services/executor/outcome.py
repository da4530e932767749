"""Pure parts of the executor core for how a run ends: its output, capped (the head kept on
this node for full-output reads, the tail in the replicated record), and its final record."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import models


@dataclass
class Output:
    """An execution's output: the first max_bytes kept for full-output reads, the size counted."""

    max_bytes: int
    head: bytearray = field(default_factory=bytearray)
    size: int = 0
    tail: bytearray = field(default_factory=bytearray)
    tail_bytes: int = 8192

    def add(self, data):
        offset = self.size
        self.size += len(data)
        room = self.max_bytes - len(self.head)
        if room > 0:
            self.head += data[:room]
        self.tail += data
        if len(self.tail) > self.tail_bytes:
            del self.tail[:len(self.tail) - self.tail_bytes]
        return offset

    def read(self, offset, limit):
        return bytes(self.head[offset:offset + limit])


@dataclass
class Finished:
    """A run's final record, with the output this node keeps of it (the head, up to
    output_max_bytes, and the size): to be processed by its job's processors, or stored."""

    record: dict
    job: dict | None
    head: bytes
    size: int


def final_record(execution, *, started_at, finished_at, exit_code, output, reason=""):
    success = exit_code == 0 and not reason
    text = output.tail.decode(errors="replace")
    if reason:
        text = f"{text}\n{reason}" if text else reason
    text, cut = models.tail(text, output.tail_bytes)
    return dict(execution, status="success" if success else "failed", success=success,
                started_at=started_at, finished_at=finished_at, exit_code=exit_code, output=text,
                output_truncated=cut or output.size > output.tail_bytes, output_size=output.size,
                reason=reason)
