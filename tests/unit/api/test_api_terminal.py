"""common/terminal.py, pykronctl's output: tables and JSON, the spinner on a terminal (a plain
progress line elsewhere), and job files in and out."""

import io
import json
import time

import pytest

from common import errors
from common.terminal import Printer, Progress, read_jobs, write_jobs


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_tables_and_json_say_the_same():
    rows = [{"name": "a", "n": 1, "tags": {"k": "v"}}, {"name": "bb", "n": None, "tags": {}}]
    out = io.StringIO()
    Printer(out, False).table(rows, ("name", "n", "tags"))
    assert out.getvalue().splitlines() == ["NAME  N  TAGS", 'a     1  {"k": "v"}', "bb    -  {}"]
    out = io.StringIO()
    Printer(out, True).table(rows, ("name",))
    assert json.loads(out.getvalue()) == rows


def test_the_spinner_turns_on_a_terminal_and_clears_its_line():
    stream = Tty()
    with Progress("waiting for a run of x", stream) as progress:
        deadline = time.monotonic() + 5
        while "waiting" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        progress.done()
    assert stream.getvalue().startswith("\r") and "waiting for a run of x" in stream.getvalue()
    assert stream.getvalue().endswith("\r\033[K")


def test_without_a_terminal_one_progress_line():
    stream = io.StringIO()
    with Progress("running x", stream):
        pass
    assert stream.getvalue() == "pykronctl: running x\n"


def test_job_files_json_yaml_and_errors(tmp_path):
    path = tmp_path / "jobs.json"
    write_jobs(str(path), [{"name": "a"}])
    assert read_jobs(str(path)) == [{"name": "a"}]
    (tmp_path / "one.yaml").write_text("name: b\nschedule: '@daily'\n")
    assert read_jobs(str(tmp_path / "one.yaml")) == [{"name": "b", "schedule": "@daily"}]
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(errors.BadRequest, match="job object"):
        read_jobs(str(tmp_path / "bad.yaml"))
    with pytest.raises(errors.BadRequest, match="No such file"):
        read_jobs(str(tmp_path / "missing.json"))
