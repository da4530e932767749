"""common/config.py: defaults from conf/node.toml, the node file over them, PYKRON_* variables over
both, and a ConfigError naming file (or variable), section, key and what was expected."""

import dataclasses
import os
import re
import tomllib

import pytest

from common import config
from common.errors import ConfigError


@pytest.fixture
def node_file(tmp_path):
    def write(text, name="node.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def refused(path=None, env=None):
    with pytest.raises(ConfigError) as err:
        config.load(path, env=env or {})
    return str(err.value)


def test_defaults_load():
    conf = config.load(env={})
    assert conf.raft.peer_port == 8190
    assert conf.dispatcher.run_port == 6868
    assert conf.executor.executors == ["shell", "http"]
    assert conf.node.role == "server" and conf.is_server
    assert conf.source == ""


def test_defaults_resolve_node_name_dirs_and_advertise():
    node = config.load(env={"PYKRON_NODE_BIND": '"10.1.2.3"'}).node
    assert node.name  # empty means the host name
    assert node.data_dir.startswith("/")
    assert node.run_dir.startswith("/tmp/pykron-")
    assert node.advertise == "10.1.2.3"
    assert config.load(env={"PYKRON_NODE_BIND": '"0.0.0.0"', "PYKRON_NODE_ADVERTISE": '"10.1.2.3"'}
                       ).node.advertise == "10.1.2.3"


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0", ""])
def test_a_bind_on_every_interface_without_advertise_is_refused_naming_what_to_set(node_file, bind):
    path = node_file(f'[node]\nbind = "{bind}"\n')
    message = refused(path)
    assert message.startswith(f'{path}: [node] bind = "{bind}" listens on every interface')
    assert "set [node] advertise" in message


def test_an_unspecified_advertise_is_refused_too(node_file):
    message = refused(node_file('[node]\nbind = "10.1.2.3"\nadvertise = "0.0.0.0"\n'))
    assert '[node] advertise: "0.0.0.0" is no address' in message
    assert "[node] bind" in refused(env={"PYKRON_NODE_BIND": '"::"'})


def test_node_file_overrides_defaults(node_file):
    path = node_file('[raft]\npeer_port = 9190\n[node]\nname = "web1"\ntags = {rack = "r1"}\n')
    conf = config.load(path, env={})
    assert conf.raft.peer_port == 9190
    assert conf.raft.client_port == 8191  # untouched keys keep their default
    assert conf.node.name == "web1" and conf.node.tags == {"rack": "r1"}
    assert conf.source == str(path.resolve())


def test_environment_overrides_node_file(node_file):
    path = node_file("[raft]\npeer_port = 9190\n")
    conf = config.load(path, env={"PYKRON_RAFT_PEER_PORT": "9290", "PYKRON_NODE_NAME": "web7",
                                  "PYKRON_EXECUTOR_EXECUTORS": '["shell", "http"]',
                                  "PYKRON_WIRE_RECONNECT_IVL_MAX_MS": "500"})
    assert conf.raft.peer_port == 9290
    assert conf.node.name == "web7"  # not a TOML value, so taken as a string
    assert conf.executor.executors == ["shell", "http"]
    assert conf.wire.reconnect_ivl_max_ms == 500


def test_unrelated_environment_is_ignored():
    conf = config.load(env={"HOME": "/root", "PYKRON_SERVER": "tcp://x:8191"})
    assert conf.api.port == 8080


def test_unknown_environment_variable():
    message = refused(env={"PYKRON_RAFT_PEERPORT": "1"})
    assert "PYKRON_RAFT_PEERPORT" in message and "PYKRON_<SECTION>_<KEY>" in message


def test_wrong_value_in_environment_names_the_variable():
    message = refused(env={"PYKRON_RAFT_PEER_PORT": "81x0"})
    assert message == 'PYKRON_RAFT_PEER_PORT: [raft] peer_port: expected int 1..65535, got "81x0"'


def test_unknown_section(node_file):
    path = node_file("[raftt]\npeer_port = 1\n")
    message = refused(path)
    assert str(path) in message and "[raftt]" in message and "unknown section" in message


def test_section_must_be_a_table(node_file):
    path = node_file("raft = 5\n")
    message = refused(path)
    assert str(path) in message and "[raft]" in message and "table" in message


def test_unknown_key(node_file):
    path = node_file("[raft]\npeer_prot = 9190\n")
    assert refused(path) == f"{path}: [raft] peer_prot: unknown key"


@pytest.mark.parametrize("text,expected", [
    ('[raft]\npeer_port = "81x0"\n', '[raft] peer_port: expected int 1..65535, got "81x0"'),
    ('[api]\nworkers = "2"\n', '[api] workers: expected int 1..64, got "2"'),
    ("[api]\nport = true\n", "[api] port: expected int 1..65535, got True"),  # a bool is no int
    ("[api]\nport = 80.5\n", "[api] port: expected int 1..65535, got 80.5"),
    ("[node]\nname = 5\n", "[node] name: expected string, got 5"),
    ('[node]\ntags = "rack=r1"\n', '[node] tags: expected a table, got "rack=r1"'),
    ('[executor]\nexecutors = "shell"\n', '[executor] executors: expected a list, got "shell"'),
    ("[wire]\nhwm = -1\n", "[wire] hwm: expected int 0..2147483647, got -1"),
    ("[wire]\nhwm = 99999999999999\n", "[wire] hwm: expected int 0..2147483647, got 99999999999999"),
    ("[node]\nname = \"" + "n" * 5000 + "\"\n", "[node] name: expected at most 4096 characters (and items), got 5000"),
])
def test_wrong_type(node_file, text, expected):
    path = node_file(text)
    assert refused(path) == f"{path}: {expected}"


@pytest.mark.parametrize("port", [0, 65536, 70000, -1])
def test_out_of_range_port(node_file, port):
    path = node_file(f"[raft]\npeer_port = {port}\n")
    assert refused(path) == f"{path}: [raft] peer_port: expected int 1..65535, got {port}"


@pytest.mark.parametrize("text,expected", [
    ('[node]\nrole = "leader"\n', '[node] role: expected one of server, agent, got "leader"'),
    ('[log]\nlevel = "verbose"\n', '[log] level: expected one of debug, info, warning, error, got "verbose"'),
])
def test_bad_choice(node_file, text, expected):
    path = node_file(text)
    assert refused(path) == f"{path}: {expected}"


def test_non_string_tag_values(node_file):
    path = node_file("[node]\ntags = {rack = 3}\n")
    assert refused(path) == f"{path}: [node] tags: expected string values, got rack = 3"


def test_non_string_executor_names(node_file):
    path = node_file("[executor]\nexecutors = [1]\n")
    assert refused(path) == f"{path}: [executor] executors: expected a list of strings, got 1"


def test_invalid_toml(node_file):
    path = node_file("[raft\npeer_port = \n")
    message = refused(path)
    assert message.startswith(f"{path}: not valid TOML")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    assert refused(path) == f"{path}: no such file"


def test_duplicate_ports_across_services_are_refused(node_file):
    path = node_file("[api]\nport = 8190\n")
    message = refused(path)
    assert "[api] port" in message and "[raft] peer_port" in message and "8190" in message


def test_duplicate_port_from_environment_is_refused():
    message = refused(env={"PYKRON_DISPATCHER_OUTPUT_PORT": "6871"})
    assert "[dispatcher] output_port" in message and "[executor] output_port" in message


def test_load_argv_takes_conf_and_log_level(node_file, monkeypatch):
    for name in [n for n in os.environ if n.startswith("PYKRON_")]:
        monkeypatch.delenv(name)
    path = node_file('[log]\nlevel = "warning"\n')
    assert config.load_argv(["-c", str(path)]).log.level == "warning"
    assert config.load_argv(["--conf", str(path), "--log-level", "debug"]).log.level == "debug"
    with pytest.raises(SystemExit):
        config.load_argv(["--port", "1"])


def test_endpoints_bind_ipc_and_tcp_when_other_hosts_need_the_role():
    conf = config.load(env={"PYKRON_NODE_RUN_DIR": '"/tmp/pk-x"'})
    assert config.endpoints(conf, "raft", "peer", 8190) == ["ipc:///tmp/pk-x/raft.peer", "tcp://127.0.0.1:8190"]
    assert config.endpoints(conf, "scheduler", "ctl") == ["ipc:///tmp/pk-x/scheduler.ctl"]


def node_toml_keys():
    return {(section, key) for section, keys in tomllib.loads(config.DEFAULTS.read_text()).items()
            for key in keys}


def test_every_node_toml_key_is_a_dataclass_field_and_vice_versa():
    fields = {(section, f.name) for section, cls in config._CLASSES.items() for f in dataclasses.fields(cls)}
    assert node_toml_keys() == fields
    assert set(config._CLASSES) == {f.name for f in dataclasses.fields(config.Conf)} - {"source"}


def test_dataclasses_have_no_defaults_node_toml_is_the_only_source():
    for cls in config._CLASSES.values():
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
            assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"


def test_every_node_toml_key_has_a_comment_on_its_line():
    seen, section = set(), None
    for line in config.DEFAULTS.read_text().splitlines():
        if head := re.match(r"\[(\w+)\]\s*$", line):
            section = head.group(1)
            continue
        if key := re.match(r"(\w+)\s*=", line):
            seen.add((section, key.group(1)))
            value_and_comment = line.split("=", 1)[1]
            assert re.search(r"\s#\s*\S", value_and_comment), f"no comment on: {line}"
    assert seen == node_toml_keys()


# -- the API's keys and the run dir -----------------------------------------------------


def test_certfile_and_keyfile_go_together(node_file):
    assert "set both" in refused(node_file('[api]\ncertfile = "/etc/pykron/api.pem"\n'))
    conf = config.load(node_file('[api]\ncertfile = "a.pem"\nkeyfile = "a.key"\n'), env={})
    assert (conf.api.certfile, conf.api.keyfile) == ("a.pem", "a.key")


@pytest.mark.parametrize("origin", ["ops.example.com", "https://ops.example.com/ui", "ftp://x", ""])
def test_cors_origins_are_scheme_and_host(node_file, origin):
    assert "[api] cors_origins" in refused(node_file(f'[api]\ncors_origins = ["{origin}"]\n'))


def test_the_run_dir_is_made_0700_and_a_readable_one_is_tightened(tmp_path):
    made = tmp_path / "run"
    config.make_run_dir(str(made))
    assert made.stat().st_mode & 0o777 == 0o700
    made.chmod(0o755)  # as an earlier release made it: nobody else could write in it
    config.make_run_dir(str(made))
    assert made.stat().st_mode & 0o777 == 0o700


def test_a_run_dir_others_may_write_to_is_refused(tmp_path):
    made = tmp_path / "run"
    made.mkdir()
    made.chmod(0o777)
    with pytest.raises(ConfigError, match="others may write to it"):
        config.make_run_dir(str(made))


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to give a directory away")
def test_a_run_dir_another_user_made_first_is_refused(tmp_path):
    """The default run dir is a predictable path under /tmp: a local user could make it first."""
    made = tmp_path / "run"
    made.mkdir(mode=0o700)
    os.chown(made, 65534, 65534)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        config.make_run_dir(str(made))


def test_gossip_needs_a_key_wherever_another_host_can_reach_it(node_file, tmp_path):
    def conf(text):
        return config.load(node_file(f'[node]\ndata_dir = "{tmp_path}/data"\n' + text), env={})

    with pytest.raises(ConfigError, match="gossip_key: required when \\[node\\] bind \\(10.1.2.3\\)"):
        config.check_gossip_key(conf('bind = "10.1.2.3"\n'))
    config.check_gossip_key(conf('bind = "127.0.0.5"\n'))
    config.check_gossip_key(conf('bind = "10.1.2.3"\n[security]\ngossip_key = "a2V5a2V5a2V5a2V5a2V5aw=="\n'))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gossip.keyring").write_text("[]")  # rotated keys live in the keyring file
    config.check_gossip_key(conf('bind = "10.1.2.3"\n'))
