"""One running execution: a child in its own process group (so a kill reaches everything it
started), its merged stdout/stderr read through the service loop's poller, never by blocking,
and the resident memory of its whole group, read from /proc for mem_limit."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess

READ_BYTES = 65536
PAGE_BYTES = resource.getpagesize()


# A held child is a shell that waits for one line on its stdin and then becomes the command.
# The shell reads a pipe a byte at a time, so a payload written after that line is left for
# the command; end of input instead of the line (its executor died) exits without running it.
# The shell exports a PWD of its own: put back as the plan's environment had it, or removed.
GATE = 'read -r _ || exit 125; PWD=$1; shift; exec "$@"'
GATE_NO_PWD = 'read -r _ || exit 125; unset PWD; shift; exec "$@"'


def can_hold(plan):
    """Only a command that exec will find is held: one that is not found fails at the start
    with the same clear error as any run's, not as a shell's exit 127 after it."""
    command = plan.argv[0]
    if "/" in command:
        return os.access(os.path.join(plan.cwd or os.getcwd(), command), os.X_OK)
    return shutil.which(command, path=plan.env.get("PATH", os.defpath)) is not None


class ChildProcess:
    """`held`: forked now, the command itself starts at release() (runs claimed ahead)."""

    def __init__(self, plan, held=False):
        self.payload = plan.stdin
        gate = GATE if "PWD" in plan.env else GATE_NO_PWD
        argv = ["/bin/sh", "-c", gate, "pykron-held", plan.env.get("PWD", ""), *plan.argv] if held else plan.argv
        self.proc = subprocess.Popen(
            argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if held or plan.stdin is not None else subprocess.DEVNULL,
            process_group=0, user=plan.user, group=plan.group)
        if not held:
            self.feed(b"")
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.eof = False

    def release(self):
        """Let a held child become its command."""
        self.feed(b"\n")

    def feed(self, line):
        if self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(line + (self.payload or b""))
        except BrokenPipeError:
            pass
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def discard(self):
        """A held child whose run never came: it exits without running anything."""
        self.kill()
        self.proc.wait()
        self.proc.stdout.close()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

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
