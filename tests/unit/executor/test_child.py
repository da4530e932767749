"""services/executor/child.py with real children: a child forked ahead (held) runs nothing
until it is released, then is its command with the payload on stdin; discarded, or left
when its executor dies, it exits without running the command."""

import os
import select
import time

from services.executor.plans import Plan
from services.executor.child import ChildProcess, can_hold


def plan(tmp_path, script, stdin=None):
    return Plan(["/bin/sh", "-c", script], {"PATH": os.defpath, "MARK": str(tmp_path / "ran")}, stdin=stdin)


def output(child, seconds=10):
    chunks, deadline = [], time.monotonic() + seconds
    while not child.eof and time.monotonic() < deadline:
        select.select([child.fd], [], [], 0.1)
        data = child.read()
        if data:
            chunks.append(data)
    child.proc.wait(timeout=seconds)
    return b"".join(chunks)


def test_a_held_child_runs_its_command_only_once_released_and_reads_its_payload(tmp_path):
    child = ChildProcess(plan(tmp_path, 'touch "$MARK"; cat', stdin=b"payload\n"), held=True)
    time.sleep(0.3)
    assert not (tmp_path / "ran").exists() and child.poll() is None
    child.release()
    assert output(child) == b"payload\n" and child.poll() == 0 and (tmp_path / "ran").exists()


def test_a_released_child_is_the_command_itself_in_its_own_process_group(tmp_path):
    child = ChildProcess(plan(tmp_path, 'echo "$$ $(cut -d" " -f5 /proc/$$/stat)"'), held=True)
    child.release()
    pid, pgid = output(child).split()
    assert int(pid) == child.pid == int(pgid)


def test_a_discarded_child_never_runs_its_command(tmp_path):
    child = ChildProcess(plan(tmp_path, 'touch "$MARK"'), held=True)
    child.discard()
    time.sleep(0.2)
    assert child.poll() is not None and not (tmp_path / "ran").exists()


def test_a_held_child_whose_executor_is_gone_exits_without_running(tmp_path):
    child = ChildProcess(plan(tmp_path, 'touch "$MARK"'), held=True)
    child.proc.stdin.close()  # what the kernel does to the pipe when the executor dies
    assert child.proc.wait(timeout=10) == 125 and not (tmp_path / "ran").exists()


def test_only_a_command_exec_will_find_is_held(tmp_path):
    assert can_hold(Plan(["sh", "-c", "true"], {"PATH": os.defpath}))
    assert not can_hold(Plan(["no-such-command-here"], {"PATH": os.defpath}))
    assert not can_hold(Plan(["./missing.sh"], {"PATH": os.defpath}, cwd=str(tmp_path)))


def test_a_released_child_gets_the_plans_environment_unchanged(tmp_path):
    for env in ({"PATH": os.defpath, "A": "1"}, {"PATH": os.defpath, "PWD": "/somewhere"}):
        child = ChildProcess(Plan(["env"], env), held=True)
        child.release()
        assert dict(line.split("=", 1) for line in output(child).decode().splitlines()) == env
