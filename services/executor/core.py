"""Pure parts of the executor: what a run.start means for this node, how a shell job's
command line and environment are built from Dkron's executor_config keys, how output is
capped (head kept locally, tail in the replicated record), and the final execution record."""

from __future__ import annotations

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
