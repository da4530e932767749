"""The executor process's own standing, set once at its start: a lower niceness for its loop
(never for its jobs), and room in its file limit for the pipes of children forked ahead."""

from __future__ import annotations

import logging
import os
import resource

log = logging.getLogger(__name__)


def take(nice):
    """The executor starts runs at their time only if it gets the CPU then: on a node busy with
    Raft, the dispatcher and the jobs themselves, its timer waits behind them. It takes a lower
    niceness when it may (CAP_SYS_NICE, as root), and asks the kernel to give every process and
    thread it starts the normal one again (SCHED_RESET_ON_FORK): jobs do not inherit it, and
    neither does the fork-ahead thread, whose forks are background work. Measured in case (a) of
    `scripts/bench schedule` on 3 servers and 2 agents: p50 lateness 9 ms against 33-60."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice >= current:
        return current
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except (PermissionError, OSError) as exc:
        log.info("keeping niceness %d (asked for %d: %s)", current, nice, exc)
        return current
    return nice


def allow_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
