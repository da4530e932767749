"""common/errands.py: short-lived children sent off with a payload, reaped by one timer,
killed past their deadline, and refused beyond the limit."""

import logging
import sys

import pytest

from common.errands import Errands


class Timers:
    def __init__(self):
        self.pending = []

    def after(self, ms, fn):
        self.pending.append(fn)


def test_errands_are_reaped_by_one_timer_and_killed_past_their_deadline(caplog):
    caplog.set_level(logging.INFO)
    timers = Timers()
    errands = Errands(timers.after, limit=4, timeout_ms=60_000, kind="test")
    quick = errands.send([sys.executable, "-c", "import sys; sys.stdin.read()"], b"x" * 200_000, "quick")
    stuck = errands.send([sys.executable, "-c", "import time; time.sleep(60)"], b"", "stuck")
    assert len(timers.pending) == 1  # more than a pipe holds went in, and nothing waited
    quick.wait(30)
    errands.running[1][1] = 0  # the stuck one's deadline has passed
    timers.pending.pop()()
    assert [e[2] for e in errands.running] == ["stuck"] and errands.running[0][1] is None
    stuck.wait(30)
    timers.pending.pop()()
    assert errands.running == [] and not timers.pending and not errands.reaping
    assert "test done exit=0 quick" in caplog.text and "test timed out" in caplog.text
    assert "test failed exit=-9 stuck" in caplog.text


def test_beyond_the_limit_an_errand_is_refused():
    errands = Errands(Timers().after, limit=0, timeout_ms=1000, kind="test")
    with pytest.raises(OSError, match="0 test errands still running"):
        errands.send([sys.executable, "-c", "pass"], b"", "one too many")
