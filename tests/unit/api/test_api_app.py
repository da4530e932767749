"""services/api/app.py, __main__.py and conf/gunicorn.conf.py: the config comes from the file
PYKRON_CONF names, the client is made lazily in the process that uses it (again after a fork),
`python -m services.api` execs gunicorn as the Procfile does, and gunicorn reads the same config."""

import dataclasses
import logging
import os
import runpy
from pathlib import Path

import falcon.testing
import gunicorn.config
import pytest

from common import config, keys
from services.api import __main__ as api_main
from services.api import app as api_app

from fakeclient import FakeClient, make_conf

ROOT = Path(__file__).resolve().parents[3]
GUNICORN_CONF = ROOT / "conf" / "gunicorn.conf.py"


@pytest.fixture
def node_file(tmp_path, monkeypatch):
    # create_app() without a conf sets up logging as the gunicorn worker's; put the root back after.
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    for name in [n for n in os.environ if n.startswith("PYKRON_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "node.toml"
    path.write_text('[node]\nname = "fromfile"\nrun_dir = "/tmp/pk-unit"\nbind = "127.0.0.2"\n'
                    '[api]\nport = 18080\nworkers = 3\nthreads = 5\n[log]\nlevel = "debug"\n')
    return path


class RecordingClient(FakeClient):
    made = []

    def __init__(self, server, *, timeout_ms=None, sender="client", keypair=None, plain=False):
        super().__init__()
        self.server, self.timeout_ms, self.sender, self.keypair = server, timeout_ms, sender, keypair
        RecordingClient.made.append(self)


def test_create_app_loads_the_file_named_by_pykron_conf(node_file, monkeypatch):
    monkeypatch.setenv("PYKRON_CONF", str(node_file))
    api = falcon.testing.TestClient(api_app.create_app(client=FakeClient()))
    assert api.simulate_get("/health").headers["X-Whom"] == "fromfile"


def test_create_app_without_pykron_conf_uses_the_defaults(node_file, monkeypatch):
    monkeypatch.setenv("PYKRON_NODE_NAME", "envnode")  # environment still layers over the defaults
    api = falcon.testing.TestClient(api_app.create_app(client=FakeClient()))
    assert api.simulate_get("/health").headers["X-Whom"] == "envnode"


def test_config_load_ignores_pykron_conf_itself():
    assert config.load(None, env={"PYKRON_CONF": "/some/node.toml"}).source == ""


def test_the_client_is_made_on_first_use_for_the_raft_client_ipc_and_again_after_a_fork(monkeypatch, tmp_path):
    RecordingClient.made = []
    monkeypatch.setattr(api_app, "Client", RecordingClient)
    conf = make_conf(name="s7")
    conf = dataclasses.replace(conf, node=dataclasses.replace(conf.node, data_dir=str(tmp_path)))
    api = falcon.testing.TestClient(api_app.create_app(conf))
    assert RecordingClient.made == []  # gunicorn's master imports the app and must hold no context
    api.simulate_get("/health")
    api.simulate_get("/v1/jobs")
    assert len(RecordingClient.made) == 1
    made = RecordingClient.made[0]
    assert made.server == config.ipc(conf, "raft", "client") == f"ipc://{conf.node.run_dir}/raft.client"
    assert made.timeout_ms == conf.wire.call_timeout_ms and made.sender == "api:s7"
    assert made.keypair == keys.node_keypair(str(tmp_path))  # the api speaks as its node
    assert [c[0] for c in made.calls] == ["node_info", "jobs"]
    monkeypatch.setattr(api_app.os, "getpid", lambda: -1)  # as a forked worker sees it
    api.simulate_get("/health")
    assert len(RecordingClient.made) == 2 and RecordingClient.made[1].calls == [("node_info",)]


def test_python_m_services_api_execs_gunicorn_with_pykron_conf(node_file, monkeypatch):
    execs = []
    monkeypatch.setattr(os, "execvpe", lambda file, argv, env: execs.append((file, argv, env)))
    api_main.main(["--conf", str(node_file)])
    (file, argv, env), = execs
    assert file == argv[0]
    assert argv[1:] == ["-m", "gunicorn", "-c", str(GUNICORN_CONF), "services.api.app:create_app()"]
    assert env["PYKRON_CONF"] == str(node_file.resolve())
    assert env["PYKRON_LOG_LEVEL"] == "debug"


def test_python_m_services_api_refuses_a_bad_config_before_exec(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "execvpe", lambda *a: pytest.fail("exec'd with a bad config"))
    bad = tmp_path / "bad.toml"
    bad.write_text('[api]\nport = "80x0"\n')
    assert api_main.main(["--conf", str(bad)]) == 2
    assert "[api] port" in capsys.readouterr().err


def test_gunicorn_conf_reads_the_same_node_config(node_file, monkeypatch):
    monkeypatch.setenv("PYKRON_CONF", str(node_file))
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert settings["bind"] == "127.0.0.2:18080"
    assert settings["worker_class"] == "gthread"
    assert settings["workers"] == 3 and settings["threads"] == 5
    assert settings["errorlog"] == "-" and settings["loglevel"] == "debug" and settings["timeout"] >= 30
    # Access lines to stderr: the access logger's handler, since accesslog "-" would be stdout.
    logs = settings["logconfig_dict"]
    handler = logs["handlers"][logs["loggers"]["gunicorn.access"]["handlers"][0]]
    assert handler["stream"] == "ext://sys.stderr"
    assert settings["control_socket"] == "/tmp/pk-unit/gunicorn.ctl"  # per node, not per user


def test_gunicorn_conf_defines_only_gunicorn_settings(node_file, monkeypatch):
    # gunicorn applies every module-level name that is a setting: a stray `config` would replace
    # its config path, so the file's own names must be settings or private.
    monkeypatch.setenv("PYKRON_CONF", str(node_file))
    names = {k for k in runpy.run_path(str(GUNICORN_CONF)) if not k.startswith("_")}
    known = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
    assert names - known == {"os"}
