"""One running execution: a child in its own process group (so a kill reaches everything it
started), its merged stdout/stderr read through the service loop's poller, never by blocking,
and the resident memory of its whole group, read from /proc for mem_limit."""

from __future__ import annotations

import os
import resource
import signal
import subprocess

READ_BYTES = 65536
PAGE_BYTES = resource.getpagesize()


class ChildProcess:
    def __init__(self, plan):
        self.proc = subprocess.Popen(
            plan.argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if plan.stdin is not None else subprocess.DEVNULL,
            start_new_session=True, user=plan.user, group=plan.group)
        if plan.stdin is not None:
            try:
                self.proc.stdin.write(plan.stdin)
            except BrokenPipeError:
                pass
            self.proc.stdin.close()
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.eof = False

    @property
    def pid(self):
        return self.proc.pid

    def read(self):
        """Bytes available now; b"" at end of output (sets eof); None when nothing is ready."""
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return None
        if not data:
            self.eof = True
            self.proc.stdout.close()
        return data

    def poll(self):
        """The exit code once the process has exited (negative: killed by that signal), else None."""
        return self.proc.poll()

    def kill(self):
        """SIGKILL the whole process group: children the job started die with it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def rss(self):
        """Resident bytes of every process in the group (Dkron samples the process tree too)."""
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.proc.pid:  # the process group
                total += int(fields[21]) * PAGE_BYTES
        return total
