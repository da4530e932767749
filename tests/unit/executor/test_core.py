"""The executor core's pure parts: whether a run is this node's (core.py), runs waiting for
their start time (waiting.py), the shell executor's command line and environment from Dkron's
keys (plans.py), output caps and the final execution record (outcome.py). The core's decisions
are in test_executor_core.py."""

import pytest

from common import models
from common.errors import BadRequest
from services.executor.core import DUPLICATE, NEW, NOT_MINE, classify
from services.executor.outcome import Output, final_record
from services.executor.plans import shell_command, shell_env
from services.executor.waiting import Waiting

NOW = 1_767_225_600_000


def execution(node="web1", id_="5-web1"):
    return dict(models.new_execution("backup", node, group=5, scheduled_at=NOW), id=id_, status="running")


def test_classify_new_run():
    assert classify(execution(), "web1", set()) == NEW


def test_classify_re_sent_run_is_a_duplicate():
    assert classify(execution(), "web1", {"5-web1"}) == DUPLICATE


def test_waiting_runs_come_due_at_their_tick_plus_jitter_in_start_order():
    waiting = Waiting()
    late = dict(execution(id_="a"), scheduled_at=NOW, jitter_ms=700)
    early = dict(execution(id_="b"), scheduled_at=NOW + 500)
    assert waiting.add(late, "job") and waiting.add(early, "job")
    assert not waiting.add(dict(late), "job")  # the same run.start again
    assert waiting.deadline() == NOW + 500 and len(waiting) == 2
    assert waiting.due(NOW + 499) == []
    assert [x["id"] for x, _ in waiting.due(NOW + 500)] == ["b"]
    assert waiting.deadline() == NOW + 700 and "a" in waiting
    assert [x["id"] for x, _ in waiting.due(NOW + 10_000)] == ["a"]
    assert waiting.deadline() is None and waiting.due(NOW + 20_000) == []


def test_a_run_taken_out_of_waiting_never_comes_due():
    waiting = Waiting()
    waiting.add(dict(execution(id_="a"), scheduled_at=NOW), "job")
    waiting.add(dict(execution(id_="b"), scheduled_at=NOW + 5), "job")
    assert waiting.take("a")[0]["id"] == "a" and waiting.take("a") is None
    assert waiting.deadline() == NOW + 5
    assert [x["id"] for x, _ in waiting.due(NOW + 5)] == ["b"]


def test_classify_run_of_another_node():
    # Topics are a prefix filter; a frame for web10 must never start a run on web1.
    assert classify(execution(node="web10", id_="5-web10"), "web1", set()) == NOT_MINE
    assert classify({"id": "x"}, "web1", set()) == NOT_MINE


def test_command_without_shell_is_split_and_executed_directly():
    assert shell_command({"command": "echo 'a b' c"}) == ["echo", "a b", "c"]
    assert shell_command({"command": "ls -l", "shell": "false"}) == ["ls", "-l"]


@pytest.mark.parametrize("flag", ["true", "TRUE", "True", "1", "yes"])
def test_command_with_shell_runs_under_sh(flag):
    assert shell_command({"command": "echo $HOME | wc -c", "shell": flag}) == ["/bin/sh", "-c", "echo $HOME | wc -c"]


@pytest.mark.parametrize("config", [{}, {"command": ""}, {"command": "   "}, {"command": "", "shell": "true"}])
def test_empty_command_is_refused(config):
    with pytest.raises(BadRequest) as err:
        shell_command(config)
    assert "command is empty" in str(err.value)


def test_unbalanced_quotes_are_refused():
    with pytest.raises(BadRequest) as err:
        shell_command({"command": "echo 'oops"})
    assert "cannot split command" in str(err.value)


def test_env_is_appended_to_the_base_environment():
    base = {"PATH": "/bin", "KEEP": "1"}
    env = shell_env({"env": "K1=v1, K2=v2,EMPTY=,URL=a=b"}, "backup", base)
    assert env == {"PATH": "/bin", "KEEP": "1", "ENV_JOB_NAME": "backup", "K1": "v1", "K2": "v2",
                   "EMPTY": "", "URL": "a=b"}
    assert base == {"PATH": "/bin", "KEEP": "1"}  # the executor's own environment is not touched


def test_env_may_override_the_base_and_may_be_absent():
    assert shell_env({"env": "PATH=/opt/bin"}, "j", {"PATH": "/bin"})["PATH"] == "/opt/bin"
    assert shell_env({}, "j", {}) == {"ENV_JOB_NAME": "j"}
    assert shell_env({"env": " , ,"}, "j", {}) == {"ENV_JOB_NAME": "j"}


@pytest.mark.parametrize("pairs", ["NOEQUALS", "A=1,B", "=value"])
def test_env_pair_without_key_and_equals_is_refused(pairs):
    with pytest.raises(BadRequest) as err:
        shell_env({"env": pairs}, "j", {})
    assert "is not KEY=value" in str(err.value)


def test_output_add_returns_offsets_and_counts_every_byte():
    out = Output(max_bytes=100)
    assert out.add(b"hello ") == 0
    assert out.add(b"world") == 6
    assert out.size == 11
    assert out.read(0, 100) == b"hello world" and out.read(6, 3) == b"wor"


def test_output_keeps_the_head_up_to_max_bytes():
    out = Output(max_bytes=8, tail_bytes=4)
    out.add(b"0123456")
    out.add(b"789abc")
    assert bytes(out.head) == b"01234567"
    assert out.size == 13
    assert out.read(4, 100) == b"4567"
    assert out.read(20, 5) == b""


def test_output_keeps_the_tail_up_to_tail_bytes():
    out = Output(max_bytes=0, tail_bytes=4)
    out.add(b"0123456")
    out.add(b"78")
    assert bytes(out.tail) == b"5678" and bytes(out.head) == b""


def test_final_record_of_a_success():
    out = Output(max_bytes=100)
    out.add(b"done\n")
    rec = final_record(execution(), started_at=NOW, finished_at=NOW + 50, exit_code=0, output=out)
    assert (rec["status"], rec["success"], rec["exit_code"], rec["output"]) == ("success", True, 0, "done\n")
    assert (rec["started_at"], rec["finished_at"], rec["output_size"], rec["output_truncated"]) == (
        NOW, NOW + 50, 5, False)
    assert rec["id"] == "5-web1" and rec["job"] == "backup" and rec["reason"] == ""


def test_final_record_of_a_non_zero_exit():
    rec = final_record(execution(), started_at=NOW, finished_at=NOW + 5, exit_code=3, output=Output(max_bytes=10))
    assert (rec["status"], rec["success"], rec["exit_code"]) == ("failed", False, 3)


def test_final_record_with_a_reason_fails_and_appends_it():
    out = Output(max_bytes=100)
    out.add(b"partial")
    rec = final_record(execution(), started_at=NOW, finished_at=NOW + 5, exit_code=0, output=out,
                       reason="killed after timeout 1s")
    assert (rec["status"], rec["success"]) == ("failed", False)
    assert rec["output"] == "partial\nkilled after timeout 1s"
    assert rec["reason"] == "killed after timeout 1s"
    empty = final_record(execution(), started_at=NOW, finished_at=NOW, exit_code=None, output=Output(max_bytes=1),
                         reason="command not found")
    assert empty["output"] == "command not found"


def test_final_record_keeps_only_the_tail_and_says_so():
    out = Output(max_bytes=1000, tail_bytes=4)
    out.add(b"abcdefgh")
    rec = final_record(execution(), started_at=NOW, finished_at=NOW, exit_code=0, output=out)
    assert rec["output"] == "efgh" and rec["output_truncated"] is True and rec["output_size"] == 8


def test_final_record_decodes_broken_utf8_without_failing():
    out = Output(max_bytes=100)
    out.add("é".encode()[:1] + b"ok")
    rec = final_record(execution(), started_at=NOW, finished_at=NOW, exit_code=0, output=out)
    assert rec["output"].endswith("ok")
