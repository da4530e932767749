"""One running shell job: a child in its own process group (so a kill reaches everything it
started), its merged stdout/stderr read through the service loop's poller, never by blocking."""

from __future__ import annotations

import os
import signal
import subprocess

READ_BYTES = 65536


class ShellProcess:
    def __init__(self, argv, *, env, cwd=None, stdin_data=None):
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd or None, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            start_new_session=True)
        if stdin_data is not None:
            try:
                self.proc.stdin.write(stdin_data)
            except BrokenPipeError:
                pass
            self.proc.stdin.close()
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.eof = False

    def read(self):
        """Bytes available now; b"" at end of output (sets eof)."""
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
