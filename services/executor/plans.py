"""Executors as plans: how an execution becomes a child process (argv, environment, stdin,
limits). Every executor runs as a child, so output streaming, timeouts and kills work the same
for all; `shell` and `http` are built in, more plug in as `pykron.executors` entry points."""

from __future__ import annotations

import base64
import binascii
import json
import os
import pwd
import re
import shlex
import sys
from dataclasses import dataclass
from importlib import metadata

from common import models, schedule
from common.errors import BadRequest
from services.executor.http import DEFAULT_TIMEOUT_S

ENTRY_POINTS = "pykron.executors"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(BYTES|B|KB|K|MB|M|GB|G|TB|T)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "BYTES": 1, "K": 1024, "KB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2,
          "G": 1024 ** 3, "GB": 1024 ** 3, "T": 1024 ** 4, "TB": 1024 ** 4}


@dataclass
class Plan:
    argv: list
    env: dict
    cwd: str | None = None
    stdin: bytes | None = None
    timeout_ms: int = 0        # 0: none
    mem_limit: int = 0         # bytes of RSS for the process tree; 0: none
    user: str | None = None
    group: str | None = None


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


def shell_plan(job, cfg, base_env):
    """Dkron's shell keys: command, shell, env, cwd, timeout, mem_limit, su, payload."""
    user, _, group = (cfg.get("su") or "").partition(":")
    payload = None
    if cfg.get("payload"):
        try:
            payload = base64.b64decode(cfg["payload"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("executor_config.payload is not valid base64") from None
    return Plan(shell_command(cfg), shell_env(cfg, job["name"], base_env), cwd=cfg.get("cwd") or None,
                stdin=payload, timeout_ms=_duration(cfg.get("timeout")), mem_limit=parse_size(cfg.get("mem_limit")),
                user=user or None, group=group or None)


def http_plan(job, cfg, base_env):
    """Dkron's http keys, run by services.executor.http in a child so that it can be timed out
    and killed like any run and never blocks this service's loop."""
    if not cfg.get("url") or not cfg.get("method"):
        raise BadRequest("the http executor needs executor_config.method and executor_config.url")
    timeout = cfg.get("timeout", "")
    timeout_ms = models.executor_timeout_ms("http", timeout) if timeout.strip() else DEFAULT_TIMEOUT_S * 1000
    # The whole request within its timeout, as Go's http.Client counts it (the child's socket
    # timeout counts each read alone); "0" is no timeout, as in Dkron.
    return Plan([sys.executable, "-m", "services.executor.http"], {**base_env, "ENV_JOB_NAME": job["name"]},
                stdin=json.dumps(cfg).encode(), timeout_ms=timeout_ms)


BUILT_IN = {"shell": shell_plan, "http": http_plan}


def available(names):
    """The executors this node offers: those configured that are built in or installed."""
    known = dict(BUILT_IN)
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        known.setdefault(entry.name, entry)
    return {name: known[name] for name in names if name in known}


def job_environment(passthrough, environ=None):
    """What a job inherits of the executor's environment: the variables named in [executor]
    env_passthrough, never pykron's own (PYKRON_*: they say where the node's config and keys are)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in passthrough if k in environ and not k.startswith("PYKRON_")}


def plan(offered, job, base_env, run_as="", forbid_uid=None):
    """The plan for one execution; BadRequest when the executor or its config is not usable.
    A job that names no su runs as [executor] run_as (when set). forbid_uid: the uid no job may
    run as (with the ACL on, the node's own: it owns the run dir, so it can command the node)."""
    factory = offered.get(job["executor"])
    if factory is None:
        raise BadRequest(f"executor {job['executor']!r} is not offered on this node")
    if isinstance(factory, metadata.EntryPoint):
        factory = factory.load()
    result = factory(job, job.get("executor_config") or {}, dict(base_env))
    if run_as and result.user is None:
        result.user, _, group = run_as.partition(":")
        result.group = group or None
    if forbid_uid is not None and _uid(result.user) == forbid_uid:
        raise BadRequest(f"the ACL is on and this job would run as the node's own user (uid {forbid_uid}): "
                         f"set [executor] run_as, or su to another user")
    job_timeout = _duration(job.get("timeout"))
    if job_timeout and (not result.timeout_ms or job_timeout < result.timeout_ms):
        result.timeout_ms = job_timeout
    return result


def _uid(user):
    """The uid a plan's user (None: this process's own) names; -1 for a name not known here (the
    start itself then fails with the reason)."""
    if user is None:
        return os.geteuid()
    if str(user).isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return -1


def parse_size(text):
    if not text:
        return 0
    match = _SIZE.match(str(text))
    if not match:
        raise BadRequest(f"mem_limit {text!r} is not a size (e.g. 1024, 512KB, 1.5GB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def _duration(text):
    return schedule.parse_duration(text) if text else 0
