"""services/executor/processors.py: Dkron's log, files, syslog and fluent processors with their
`forward` key, against real receivers (a file system, a unix and a UDP syslog socket, a TCP
forward input); a missing or failing processor noted in the reason, never losing the result."""

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import msgpack
import pytest

from common import config, models
from services.executor import processors
from services.executor.outcome import Output, final_record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NOW = 1_767_225_600_000


@pytest.fixture
def short_dir():
    """A short directory: unix socket paths are limited to ~107 bytes."""
    path = tempfile.mkdtemp(prefix="pkp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def conf(tmp_path):
    return config.load(env={"PYKRON_NODE_NAME": '"web1"', "PYKRON_NODE_DATA_DIR": json.dumps(str(tmp_path)),
                            "PYKRON_PROCESSORS_FILES_ROOT": json.dumps(str(tmp_path))})


def with_settings(conf, **settings):
    return dataclasses.replace(conf, processors=dataclasses.replace(conf.processors, **settings))


class Timers:
    """The executor loop's `after`, held for the test to fire."""

    def __init__(self):
        self.pending = []

    def after(self, ms, fn):
        self.pending.append(fn)


def finished(data=b"hello\nworld\n", exit_code=0, id_="17-web1"):
    output = Output(max_bytes=1 << 20, tail_bytes=8)
    output.add(data)
    execution = dict(models.new_execution("backup", "web1", group=17, scheduled_at=NOW), id=id_, status="running")
    return final_record(execution, started_at=NOW, finished_at=NOW + 5, exit_code=exit_code, output=output), output


def run(conf, procs, data=b"hello\nworld\n", exit_code=0, spawn=None, limit=None):
    record, output = finished(data, exit_code)
    chain = processors.Processors(conf, Timers().after)
    if limit is not None:
        chain.errands.limit = limit
    if spawn is not None:
        chain.spawn = spawn
    return chain.run({"name": "backup", "processors": procs}, record, output.head)


# -- forward and placeholders ------------------------------------------------------------------

def test_log_prints_the_full_output_to_the_executor_log_and_stores_dkrons_placeholder(conf, caplog):
    caplog.set_level(logging.INFO, logger="services.executor.processors")
    got = run(conf, {"log": {}})
    assert got["output"] == "Output in dkron log"
    assert got["success"] is True and got["status"] == "success" and got["reason"] == ""
    assert "----- BEGIN OUTPUT job=backup execution=17-web1 -----\nhello\nworld\n" in caplog.text
    assert caplog.records[-1].levelno == logging.INFO


def test_log_of_a_failed_run_is_a_warning(conf, caplog):
    caplog.set_level(logging.INFO, logger="services.executor.processors")
    got = run(conf, {"log": {"forward": "false"}}, exit_code=2)
    assert got["success"] is False and got["output"] == "Output in dkron log"
    assert caplog.records[-1].levelno == logging.WARNING


@pytest.mark.parametrize("flag", ["true", "True", "TRUE", "1", "t"])
def test_forward_keeps_the_output_in_the_stored_execution(conf, flag):
    record, _ = finished()
    got = run(conf, {"log": {"forward": flag}})
    assert got["output"] == record["output"] and got["output_truncated"] is True


@pytest.mark.parametrize("flag", ["false", "", "yes", "on"])
def test_anything_but_gos_true_does_not_forward(conf, flag):
    assert run(conf, {"log": {"forward": flag}})["output"] == "Output in dkron log"


def test_several_processors_that_do_not_forward_leave_their_placeholders_in_order(conf, short_dir):
    spawned = []
    sock, path = listen_unix(short_dir)
    with sock:
        got = run(with_settings(conf, syslog_address=path), {"log": {}, "syslog": {}, "fluent": {}},
                  spawn=lambda *a: spawned.append(a))
    assert got["output"] == "Output in dkron log\nOutput in syslog\nOutput sent to Fluent"
    assert got["output_truncated"] is False and got["reason"] == ""
    assert len(spawned) == 1


def test_a_job_without_processors_and_a_skipped_run_are_untouched(conf):
    record, output = finished()
    chain = processors.Processors(conf, Timers().after)
    assert chain.run({"name": "backup", "processors": {}}, record, output.head) is record
    skipped = dict(record, status="skipped")
    assert chain.run({"name": "backup", "processors": {"log": {}}}, skipped, output.head) is skipped


# -- files -------------------------------------------------------------------------------------

def test_files_writes_the_full_output_to_log_dir_and_stores_the_path(conf, tmp_path):
    data = b"".join(b"line %d\n" % i for i in range(3000))  # far past the 8-byte tail of the record
    got = run(conf, {"files": {"log_dir": str(tmp_path / "out")}}, data=data)
    path = tmp_path / "out" / "17-web1.log"
    assert got["output"] == str(path)
    assert path.read_bytes() == data


def test_files_with_forward_writes_and_keeps_the_output(conf, tmp_path):
    record, _ = finished()
    got = run(conf, {"files": {"log_dir": str(tmp_path), "forward": "true"}})
    assert got["output"] == record["output"]
    assert (tmp_path / "17-web1.log").read_bytes() == b"hello\nworld\n"


def test_files_defaults_to_the_configured_dir_then_logs_under_the_data_dir(conf, tmp_path):
    assert run(conf, {"files": {}})["output"] == os.path.join(conf.node.data_dir, "logs", "17-web1.log")
    got = run(with_settings(conf, log_dir="job-output"), {"files": {}})
    assert got["output"] == os.path.join(conf.node.data_dir, "job-output", "17-web1.log")
    assert open(got["output"], "rb").read() == b"hello\nworld\n"


@pytest.mark.parametrize("log_dir", ["../escape", "/etc", "logs/../../escape"])
def test_files_writes_only_under_files_root(conf, tmp_path, log_dir):
    """By default (no files_root) a job may not choose where the executor's user writes."""
    record, _ = finished()
    got = run(with_settings(conf, files_root=""), {"files": {"log_dir": log_dir}})
    assert got["output"] == record["output"] and "outside [processors] files_root" in got["reason"]
    assert not (tmp_path.parent / "escape").exists() and not os.path.exists("/etc/17-web1.log")


def test_a_link_out_of_files_root_is_followed_and_refused(conf, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "out").symlink_to("/tmp")
    got = run(with_settings(conf, files_root=""), {"files": {"log_dir": "logs/out"}})
    assert "outside [processors] files_root" in got["reason"] and not os.path.exists("/tmp/17-web1.log")


def test_a_failing_processor_is_noted_in_the_reason_and_the_result_is_kept(conf, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    record, _ = finished()
    got = run(conf, {"files": {"log_dir": str(blocker)}, "log": {"forward": "true"}})
    assert got["success"] is True and got["status"] == "success"
    assert got["output"] == record["output"]  # nothing replaced it: the file was never written
    assert got["reason"].startswith("processor 'files' failed:")


def test_an_unknown_processor_is_noted_and_the_others_still_run(conf, tmp_path):
    record, _ = finished(exit_code=3)
    got = run(conf, {"teleport": {}, "files": {"log_dir": str(tmp_path)}}, exit_code=3)
    assert got["reason"] == "processor 'teleport' is not installed on web1"
    assert got["output"] == str(tmp_path / "17-web1.log") and got["exit_code"] == 3


# -- syslog ------------------------------------------------------------------------------------

def listen_unix(directory):
    path = os.path.join(directory, "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock, path


def test_syslog_sends_one_datagram_to_the_local_socket_at_cron_info(conf, short_dir):
    sock, path = listen_unix(short_dir)
    with sock:
        got = run(with_settings(conf, syslog_address=path), {"syslog": {}})
        message = sock.recv(65536).decode()
    assert got["output"] == "Output in syslog"
    assert message.startswith("<78>")  # facility cron (9) * 8 + info (6)
    assert f" pykron[{os.getpid()}]: job=backup execution=17-web1 status=success: hello\nworld\n" in message
    assert " web1 " not in message  # the local socket adds the host itself


def test_syslog_over_udp_names_the_host_and_marks_a_failure_as_err(conf):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        got = run(with_settings(conf, syslog_address=address, syslog_tag="cron-jobs"),
                  {"syslog": {"forward": "true"}}, exit_code=1)
        message = sock.recv(65536).decode()
    assert got["output"] != "Output in syslog"
    assert message.startswith("<75>")  # cron (9) * 8 + err (3)
    assert " web1 cron-jobs[" in message and "job=backup" in message


def test_syslog_keeps_the_tail_of_a_long_output(conf, short_dir):
    sock, path = listen_unix(short_dir)
    data = b"x" * 20_000 + b"THE END\n"
    with sock:
        run(with_settings(conf, syslog_address=path), {"syslog": {}}, data=data)
        message = sock.recv(65536)
    assert message.endswith(b"THE END\n") and len(message) < processors.SYSLOG_MAX_BYTES + 200


def test_syslog_without_a_listener_fails_the_processor_only(conf, short_dir):
    got = run(with_settings(conf, syslog_address=os.path.join(short_dir, "nobody")), {"syslog": {}})
    assert got["reason"].startswith("processor 'syslog' failed:")
    assert got["success"] is True and got["output"] != "Output in syslog"


# -- fluent ------------------------------------------------------------------------------------

def test_fluent_hands_dkrons_record_to_a_sender_child(conf, monkeypatch):
    monkeypatch.setenv("FLUENTBIT_HOST", "10.1.2.3")
    monkeypatch.setenv("FLUENTBIT_PORT", "24225")
    monkeypatch.setenv("FLUENTBIT_TAG", "dkron.jobs")
    spawned = []
    got = run(conf, {"fluent": {}}, spawn=lambda argv, data, what: spawned.append((argv, json.loads(data))))
    assert got["output"] == "Output sent to Fluent"
    argv, payload = spawned[0]
    assert argv == [sys.executable, "-m", "services.executor.fluent"]
    assert payload["address"] == "10.1.2.3:24225" and payload["tag"] == "dkron.jobs"
    assert payload["record"] == {"host": "web1", "job_name": "backup", "message": "hello\nworld\n",
                                 "execution": "17-web1", "status": "success"}


def test_fluent_config_keys_win_over_the_environment(conf, monkeypatch):
    monkeypatch.setenv("FLUENTBIT_HOST", "10.1.2.3")
    spawned = []
    run(with_settings(conf, fluent_address="127.0.0.1:5170", fluent_tag="mine"), {"fluent": {}},
        spawn=lambda argv, data, what: spawned.append(json.loads(data)))
    assert (spawned[0]["address"], spawned[0]["tag"]) == ("127.0.0.1:5170", "mine")


class ForwardInput:
    """A Fluent forward input: accepts connections and decodes msgpack messages."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.messages = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.server.accept()
        unpacker = msgpack.Unpacker(raw=False)
        with conn:
            while data := conn.recv(65536):
                unpacker.feed(data)
        self.messages.extend(unpacker)


def fluent_child(payload):
    return subprocess.run([sys.executable, "-m", "services.executor.fluent"], input=json.dumps(payload).encode(),
                          cwd=ROOT, capture_output=True, timeout=30)


def test_the_fluent_sender_posts_one_forward_message():
    receiver = ForwardInput()
    record = {"host": "web1", "job_name": "backup", "message": "hi\n"}
    done = fluent_child({"address": f"127.0.0.1:{receiver.port}", "tag": "pk", "record": record, "timeout_ms": 5000})
    receiver.thread.join(10)
    receiver.server.close()
    assert done.returncode == 0, done.stderr
    [(tag, stamp, got)] = receiver.messages
    assert tag == "pk" and isinstance(stamp, int) and got == record


def test_the_fluent_sender_fails_with_a_message_when_nobody_listens():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    done = fluent_child({"address": f"127.0.0.1:{port}", "tag": "pk", "record": {}, "timeout_ms": 2000})
    assert done.returncode == 1 and b"fluent: sending to" in done.stderr
    assert fluent_child({"nonsense": 1}).returncode == 2


# -- senders: timed out and reaped by timers ----------------------------------------------------

def test_too_many_senders_drop_the_record_and_say_so(conf):
    got = run(conf, {"fluent": {}}, limit=0)
    assert "processor 'fluent' failed: 0 processor errands still running" in got["reason"]
    assert got["output"] != "Output sent to Fluent"
