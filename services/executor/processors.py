"""Processors: what happens to an execution's output on the node that ran it, after the run and
before its result is sent. Dkron's log, files, syslog and fluent are built in, with Dkron's keys;
more plug in as `pykron.processors` entry points. None may hold the executor's loop for long."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from importlib import metadata

from common.errands import Errands

log = logging.getLogger(__name__)

ENTRY_POINTS = "pykron.processors"
FORWARD = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool, as Dkron reads `forward`
SYSLOG_MAX_BYTES = 8192  # rsyslog's default message limit: a longer output keeps its tail
FACILITY_CRON = 9        # Dkron logs to syslog's cron facility
SEVERITY_INFO, SEVERITY_ERR = 6, 3
FLUENT_PORT = 24224      # Fluent Bit's and Fluentd's forward input
MAX_SENDERS = 32         # fluent senders alive at once; a record beyond them is dropped, and said so


@dataclass
class Finished:
    """What a processor is given besides its own config map."""

    job: dict
    execution: dict   # the final record; its output is the tail kept in Raft
    output: bytes     # the full output (up to [executor] output_max_bytes)
    node: str
    settings: object  # conf.processors
    data_dir: str
    spawn: object     # spawn(argv, stdin bytes, what): a short-lived child the executor times out and reaps


# -- Dkron's processors; each returns the text that replaces the stored output unless forward --

def log_processor(done, config):
    """Dkron's log: the output in the executor's own log, as a warning when the run failed."""
    ex = done.execution
    log.log(logging.INFO if ex["success"] else logging.WARNING,
            "----- BEGIN OUTPUT job=%s execution=%s -----\n%s\n----- END OUTPUT job=%s execution=%s -----",
            ex["job"], ex["id"], done.output.decode(errors="replace"), ex["job"], ex["id"])
    return "Output in dkron log"  # Dkron's placeholders are kept word for word: clients match on them


def files_processor(done, config):
    """Dkron's files: <log_dir>/<execution id>.log holds the output; the stored output becomes
    that path. A relative log_dir is taken from the node's data_dir (Dkron's cwd is arbitrary).
    It must lie under [processors] files_root: whoever may write a job must not choose where the
    executor's user writes files (`..`, a link, /etc)."""
    default = done.settings.log_dir or "logs"
    root = os.path.realpath(os.path.join(done.data_dir, done.settings.files_root or default))
    directory = os.path.realpath(os.path.join(done.data_dir, config.get("log_dir") or default))
    if os.path.commonpath([root, directory]) != root:
        raise PermissionError(f"log_dir {config.get('log_dir')!r} is outside [processors] files_root ({root})")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, done.execution["id"].replace(os.sep, "_") + ".log")
    with open(path, "wb") as fh:
        fh.write(done.output)
    return path


def syslog_processor(done, config):
    """Dkron's syslog: one datagram (facility cron) to the local syslog socket or a UDP address,
    sent without blocking; a full socket buffer drops the message and fails this processor."""
    ex, settings = done.execution, done.settings
    address = settings.syslog_address
    local = address.startswith("/")
    now = time.localtime()  # RFC 3164 stamps are local time, the day space-padded
    stamp = time.strftime("%b ", now) + f"{now.tm_mday:2d} " + time.strftime("%H:%M:%S", now)
    priority = FACILITY_CRON * 8 + (SEVERITY_INFO if ex["success"] else SEVERITY_ERR)
    text = done.output[-SYSLOG_MAX_BYTES:].decode(errors="ignore")
    header = f"<{priority}>{stamp} {'' if local else done.node + ' '}{settings.syslog_tag}[{os.getpid()}]: "
    message = f"{header}job={ex['job']} execution={ex['id']} status={ex['status']}: {text}".encode()
    if local:
        family, target = socket.AF_UNIX, address
    else:
        host, _, port = address.rpartition(":")
        family, target = socket.AF_INET, (host, int(port))
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(message, target)
    return "Output in syslog"


def fluent_processor(done, config):
    """Dkron's fluent: {host, job_name, message} to Fluent Bit's forward input. Connecting over
    TCP can stall, so a short-lived child sends it (services.executor.fluent), timed out and
    reaped by the executor; like Dkron's, the send is not awaited and its failure is only logged."""
    settings, ex = done.settings, done.execution
    address = settings.fluent_address or (
        f"{os.environ.get('FLUENTBIT_HOST') or '127.0.0.1'}:{os.environ.get('FLUENTBIT_PORT') or FLUENT_PORT}")
    record = {"host": done.node, "job_name": ex["job"], "message": done.output.decode(errors="replace"),
              "execution": ex["id"], "status": ex["status"]}
    payload = {"address": address, "tag": settings.fluent_tag or os.environ.get("FLUENTBIT_TAG") or "pykron",
               "record": record, "timeout_ms": settings.timeout_ms}
    done.spawn([sys.executable, "-m", "services.executor.fluent"], json.dumps(payload).encode(),
               f"fluent sender to {address} job={ex['job']} execution={ex['id']}")
    return "Output sent to Fluent"


BUILT_IN = {"log": log_processor, "files": files_processor, "syslog": syslog_processor, "fluent": fluent_processor}


def installed():
    """Built-ins, then entry points of group pykron.processors (loaded when first used)."""
    known = dict(BUILT_IN)
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        known.setdefault(entry.name, entry)
    return known


def forwarded(config):
    return config.get("forward", "") in FORWARD


class Processors:
    """A job's processors, run in the order its map lists them, each on the full output; and
    the short-lived senders some of them start, timed out and reaped by the executor's timers."""

    def __init__(self, conf, after):
        self.conf, self.after = conf, after
        self.known = installed()
        self.errands = Errands(after, limit=MAX_SENDERS, timeout_ms=conf.processors.timeout_ms, kind="processor")

    def run(self, job, record, output):
        """The record as it is sent: its output replaced by the placeholders of the processors
        that do not forward, and a missing or failing processor noted in `reason`. A skipped
        run never ran, so it has nothing to process."""
        configs = job.get("processors") or {}
        if not configs or record["status"] == "skipped":
            return record
        done = Finished(job, record, bytes(output), self.conf.node.name, self.conf.processors,
                        self.conf.node.data_dir, self.spawn)
        placeholders, problems = [], []
        for name, config in configs.items():
            try:
                process = self.load(name)
                if process is None:
                    problems.append(f"processor {name!r} is not installed on {self.conf.node.name}")
                    continue
                text = process(done, config)
            except Exception as exc:  # noqa: BLE001 — a processor (maybe a plug-in) must never lose the result
                log.warning("processor failed name=%s execution=%s: %s", name, record["id"], exc,
                            exc_info=not isinstance(exc, OSError))
                problems.append(f"processor {name!r} failed: {exc}")
                continue
            if not forwarded(config):
                placeholders.append(str(text))
        record = dict(record)
        if placeholders:
            record.update(output="\n".join(placeholders), output_truncated=False)
        if problems:
            record["reason"] = "; ".join([record["reason"], *problems] if record.get("reason") else problems)
        return record

    def spawn(self, argv, data, what):
        self.errands.send(argv, data, what)

    def load(self, name):
        found = self.known.get(name)
        if isinstance(found, metadata.EntryPoint):
            found = self.known[name] = found.load()
        return found
