"""Pure parts of the executor: what a run.start means for this node, the runs that wait here
for their start time, how a shell job's command line and environment are built from Dkron's
executor_config keys, how output is capped (head kept locally, tail in the replicated record),
and the final execution record."""

from __future__ import annotations

import heapq
import shlex
from dataclasses import dataclass, field

from common import models
from common.errors import BadRequest

NEW, DUPLICATE, NOT_MINE = "new", "duplicate", "not_mine"


def classify(execution, node, started_ids):
    """A run published to this node's topic is re-checked: topics are a filter, not a proof."""
    if execution.get("node") != node:
        return NOT_MINE
    return DUPLICATE if execution["id"] in started_ids else NEW


class Waiting:
    """Runs published before their start time (claimed ahead, or jittered) wait here, so that
    at the tick the executor starts them on its own clock: no publication, no transport and no
    dispatcher round lies between the tick and the start."""

    def __init__(self):
        self.runs = {}   # execution id → (execution, job)
        self.heap = []   # (start time, execution id); ids taken early are skipped when popped

    def add(self, execution, job):
        """False when the run already waits (a run.start sent again)."""
        if execution["id"] in self.runs:
            return False
        self.runs[execution["id"]] = (execution, job)
        heapq.heappush(self.heap, (models.start_time(execution), execution["id"]))
        return True

    def take(self, execution_id):
        """The run, no longer waiting (started early by a kill, or dropped); None if it was not."""
        return self.runs.pop(execution_id, None)

    def deadline(self):
        while self.heap and self.heap[0][1] not in self.runs:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def due(self, now):
        """The runs whose start time has come, in start order."""
        out = []
        while self.heap and self.heap[0][0] <= now:
            _, execution_id = heapq.heappop(self.heap)
            run = self.runs.pop(execution_id, None)
            if run is not None:
                out.append(run)
        return out

    def __contains__(self, execution_id):
        return execution_id in self.runs

    def __len__(self):
        return len(self.runs)


def shell_command(config):
    """Dkron's shell keys → argv. Without shell=true the command is split and exec'd directly."""
    command = config.get("command", "")
    if not command.strip():
        raise BadRequest("executor_config.command is empty")
    if config.get("shell", "false").lower() in ("true", "1", "yes"):
        return ["/bin/sh", "-c", command]
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise BadRequest(f"cannot split command: {exc}") from None


def shell_env(config, job_name, base):
    """Dkron's env key is "K1=v1,K2=v2", appended to the executor's own environment."""
    env = dict(base)
    env["ENV_JOB_NAME"] = job_name
    for pair in filter(None, (p.strip() for p in config.get("env", "").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadRequest(f"executor_config.env: {pair!r} is not KEY=value")
        env[key] = value
    return env


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
