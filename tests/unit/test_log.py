"""common/log.py: a service's lines are written by a thread of their own, so a stderr that is
not read (supervisord lagging) never holds the service loop, and every line arrives, in order."""

import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import logging, sys, time
from common import log
log.setup("executor", "info", "text", behind=True)
begun = time.monotonic()
for i in range(20000):
    logging.getLogger("x").info("line %d %s", i, "y" * 100)
print(f"done {time.monotonic() - begun:.3f}", flush=True)
"""


def test_lines_go_out_in_order_and_an_unread_stderr_does_not_hold_the_caller():
    # 20,000 lines of ~170 bytes are far more than a pipe holds (64 KiB): written on the
    # caller's thread, the child could not print "done" before its stderr is read.
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 20)
        assert ready, "the child's logging waited for its stderr to be read"
        done = child.stdout.readline().decode()
        assert done.startswith("done"), done
        lines = child.stderr.read().decode().splitlines()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    numbers = [int(line.split("line ")[1].split()[0]) for line in lines if " line " in line]
    assert numbers == list(range(20000))
    assert all(" INFO executor x: line " in line for line in lines)
