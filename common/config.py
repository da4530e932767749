"""The one config loader: conf/node.toml holds every key and its default, a node's file is
layered over it, and PYKRON_<SECTION>_<KEY> variables override both. The result is a tree of
frozen dataclasses (conf.raft.peer_port); every error names the file, section, key and what was expected."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import ipaddress
import os
import socket
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common import models
from common.errors import BadRequest, ConfigError

DEFAULTS = Path(__file__).resolve().parent.parent / "conf" / "node.toml"


# What any key takes at most, unless it says less: an int a C int holds (ZeroMQ's options are
# C ints, and a timer of 2^31 ms is 24 days), a string of 4,096 characters.
INT_MAX = (1 << 31) - 1
TEXT_CHARS = 4096


def _spec(*, lo=None, hi=INT_MAX, choices=None):
    return field(metadata={"lo": lo, "hi": hi, "choices": choices})


def _port():
    return _spec(lo=1, hi=65535)


@dataclass(frozen=True)
class Node:
    name: str = _spec()
    role: str = _spec(choices=("server", "agent"))
    data_dir: str = _spec()
    run_dir: str = _spec()
    bind: str = _spec()
    advertise: str = _spec()
    tags: dict = _spec()
    min_free_bytes: int = _spec(lo=0)


@dataclass(frozen=True)
class Wire:
    max_message_bytes: int = _spec(lo=1024, hi=1 << 30)
    hwm: int = _spec(lo=0)
    linger_ms: int = _spec(lo=0)
    reconnect_ivl_ms: int = _spec(lo=1)
    reconnect_ivl_max_ms: int = _spec(lo=0)
    call_timeout_ms: int = _spec(lo=1)
    protocol_next: bool = _spec()
    plain_tcp: bool = _spec()


@dataclass(frozen=True)
class Security:
    token: str = _spec()
    gossip_key: str = _spec()
    auto_accept: str = _spec(choices=("", "gossip"))
    secret_keys: list = _spec()


@dataclass(frozen=True)
class Log:
    level: str = _spec(choices=("debug", "info", "warning", "error"))
    format: str = _spec(choices=("text", "json"))
    max_bytes: int = _spec(lo=0)
    backups: int = _spec(lo=0)


@dataclass(frozen=True)
class Gossip:
    port: int = _port()
    query_port: int = _port()
    refresh_ms: int = _spec(lo=10)
    join: list = _spec()
    retry_join: list = _spec()
    retry_interval_ms: int = _spec(lo=10)
    retry_max_ms: int = _spec(lo=10)
    probe_interval_ms: int = _spec(lo=10)
    probe_timeout_ms: int = _spec(lo=1)
    indirect_checks: int = _spec(lo=0, hi=16)
    suspicion_mult: int = _spec(lo=1, hi=100)
    suspicion_max_mult: int = _spec(lo=1, hi=100)
    awareness_max: int = _spec(lo=1, hi=100)
    retransmit_mult: int = _spec(lo=1, hi=100)
    gossip_interval_ms: int = _spec(lo=1)
    gossip_nodes: int = _spec(lo=1, hi=64)
    gossip_to_dead_ms: int = _spec(lo=0)
    push_pull_interval_ms: int = _spec(lo=0)
    stream_timeout_ms: int = _spec(lo=10)
    reconnect_interval_ms: int = _spec(lo=0)
    reconnect_timeout_ms: int = _spec(lo=0)
    tombstone_timeout_ms: int = _spec(lo=0)
    leave_propagate_ms: int = _spec(lo=0)
    leave_on_terminate: bool = _spec()
    packet_bytes: int = _spec(lo=512, hi=65000)
    lifeguard: bool = _spec()


@dataclass(frozen=True)
class Raft:
    peer_port: int = _port()
    client_port: int = _port()
    state_port: int = _port()
    tick_ms: int = _spec(lo=1)
    heartbeat_ticks: int = _spec(lo=1)
    election_ticks: int = _spec(lo=2)
    max_batch_entries: int = _spec(lo=1, hi=10_000)  # an append's entries are bounded so on the wire (messages.Entries)
    max_append_bytes: int = _spec(lo=4096, hi=1 << 30)
    batching: bool = _spec()
    servers: list = _spec()
    bootstrap_expect: int = _spec(lo=0, hi=99)
    snapshot_entries: int = _spec(lo=10)
    dead_server_timeout_ms: int = _spec(lo=0)
    backup_interval_ms: int = _spec(lo=0)
    backup_keep: int = _spec(lo=1, hi=10_000)
    backup_dir: str = _spec()


@dataclass(frozen=True)
class Scheduler:
    lead_ms: int = _spec(lo=0, hi=60_000)
    resync_ms: int = _spec(lo=100)


@dataclass(frozen=True)
class Dispatcher:
    run_port: int = _port()
    result_port: int = _port()
    output_port: int = _port()
    heartbeat_ms: int = _spec(lo=10)
    ack_timeout_ms: int = _spec(lo=10)
    run_attempts: int = _spec(lo=1)
    members_refresh_ms: int = _spec(lo=10)
    lease_ms: int = _spec(lo=100)


@dataclass(frozen=True)
class Executor:
    output_port: int = _port()
    executors: list = _spec()
    output_tail_bytes: int = _spec(lo=0)
    output_max_bytes: int = _spec(lo=0)
    result_retry_ms: int = _spec(lo=10)
    drain_ms: int = _spec(lo=0)
    heartbeat_ms: int = _spec(lo=10)
    max_concurrent_executions: int = _spec(lo=0)
    queue_size: int = _spec(lo=0)
    fork_ahead: int = _spec(lo=0)
    nice: int = _spec(lo=-20, hi=19)
    env_passthrough: list = _spec()
    run_as: str = _spec()


@dataclass(frozen=True)
class Api:
    port: int = _port()
    workers: int = _spec(lo=1, hi=64)
    threads: int = _spec(lo=1, hi=256)
    cors_origins: list = _spec()
    certfile: str = _spec()
    keyfile: str = _spec()
    max_job_bytes: int = _spec(lo=1024, hi=1 << 20)


@dataclass(frozen=True)
class Processors:
    log_dir: str = _spec()
    files_root: str = _spec()
    syslog_address: str = _spec()
    syslog_tag: str = _spec()
    fluent_address: str = _spec()
    fluent_tag: str = _spec()
    timeout_ms: int = _spec(lo=1)


@dataclass(frozen=True)
class Notify:
    timeout_ms: int = _spec(lo=1)
    attempts: int = _spec(lo=1)
    webhook_url: str = _spec()
    webhook_rule: str = _spec()
    webhook_body: str = _spec()
    webhook_headers: dict = _spec()
    smtp_address: str = _spec()
    smtp_username: str = _spec()
    smtp_password: str = _spec()
    smtp_tls: str = _spec(choices=("auto", "starttls", "ssl", "none"))
    mail_from: str = _spec()
    mail_to: list = _spec()
    mail_rule: str = _spec()
    mail_subject: str = _spec()
    mail_body: str = _spec()


@dataclass(frozen=True)
class Conf:
    node: Node
    wire: Wire
    security: Security
    log: Log
    gossip: Gossip
    raft: Raft
    scheduler: Scheduler
    dispatcher: Dispatcher
    executor: Executor
    api: Api
    processors: Processors
    notify: Notify
    source: str = ""  # the node's own file, passed on to the processes the node starts

    @property
    def is_server(self):
        return self.node.role == "server"

    def validate(self):
        """Checks across keys; each key's own type and range were checked while loading."""
        for entry in self.raft.servers:
            name, _, addr = entry.partition("@")
            host, _, port = addr.rpartition(":")
            if not name or not host or not port.isdigit():
                raise ConfigError(f"{self.source or DEFAULTS.name}: [raft] servers: expected \"name@host:port\", "
                                  f"got \"{entry}\"")
        ports = [(s, k, getattr(getattr(self, s), k)) for s, k in _port_keys()]
        seen = {}
        for section, key, port in ports:
            if port in seen:
                other = seen[port]
                raise ConfigError(f"{self.source or DEFAULTS.name}: [{section}] {key}: port {port} "
                                  f"is also [{other[0]}] {other[1]}")
            seen[port] = (section, key)
        self._validate_addresses()
        self._validate_api()
        self._validate_plain()
        return self

    def _validate_plain(self):
        if self.wire.plain_tcp and not is_loopback(self.node.bind):
            raise ConfigError(f"{self.source or DEFAULTS.name}: [wire] plain_tcp: a benchmark baseline for loopback "
                              f"only, never with [node] bind = {self.node.bind!r}")

    def _validate_api(self):
        where, api = self.source or DEFAULTS.name, self.api
        if bool(api.certfile) != bool(api.keyfile):
            raise ConfigError(f"{where}: [api] certfile and keyfile: set both (HTTPS) or neither (HTTP)")
        for origin in api.cors_origins:
            scheme, _, rest = str(origin).partition("://")
            if origin != "*" and not (scheme in ("http", "https") and rest and "/" not in rest):
                raise ConfigError(f'{where}: [api] cors_origins: expected origins such as "https://ops.example.com" '
                                  f'(scheme and host, no path) or "*", got {origin!r}')
        if not all(isinstance(k, str) and 0 < len(k) <= 128 for k in self.security.secret_keys):
            raise ConfigError(f"{where}: [security] secret_keys: expected a list of executor_config key names")

    def _validate_addresses(self):
        """Where processors and notifications send: checked here so a typo stops the node at start."""
        where = self.source or DEFAULTS.name
        for section, key, value in (("processors", "syslog_address", self.processors.syslog_address),
                                    ("processors", "fluent_address", self.processors.fluent_address),
                                    ("notify", "smtp_address", self.notify.smtp_address)):
            host, _, port = value.rpartition(":")
            if key == "syslog_address" and value.startswith("/"):
                continue  # a unix datagram socket, /dev/log by default
            if value and not (host and port.isdigit() and 0 < int(port) < 65536):
                raise ConfigError(f'{where}: [{section}] {key}: expected "host:port"'
                                  f'{" or a socket path" if key == "syslog_address" else ""}, got "{value}"')
        if self.notify.webhook_url and not self.notify.webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f'{where}: [notify] webhook_url: expected an http:// or https:// URL, '
                              f'got "{self.notify.webhook_url}"')
        for key in ("webhook_rule", "mail_rule"):
            try:
                models.split_rules(getattr(self.notify, key))
            except BadRequest as err:
                raise ConfigError(f"{where}: [notify] {key}: {err}") from None


_CLASSES = {"node": Node, "wire": Wire, "security": Security, "log": Log, "gossip": Gossip,
            "raft": Raft, "scheduler": Scheduler, "dispatcher": Dispatcher, "executor": Executor,
            "api": Api, "processors": Processors, "notify": Notify}


def _port_keys():
    for section, cls in _CLASSES.items():
        for f in dataclasses.fields(cls):
            if f.name == "port" or f.name.endswith("_port"):
                yield section, f.name


def load(path=None, env=None):
    """Defaults ← the node's file ← environment. Raises ConfigError with a precise message."""
    env = os.environ if env is None else env
    values = {s: dict(v) for s, v in _read(DEFAULTS).items()}
    origin = {(s, k): DEFAULTS.name for s in values for k in values[s]}
    if path:
        for section, keys in _read(Path(path)).items():
            if section not in _CLASSES:
                raise ConfigError(f"{path}: unknown section [{section}]")
            if not isinstance(keys, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            for key, value in keys.items():
                if key not in values[section]:
                    raise ConfigError(f"{path}: [{section}] {key}: unknown key")
                values[section][key] = value
                origin[section, key] = str(path)
    for name, raw in env.items():
        if not name.startswith("PYKRON_") or name in ("PYKRON_SERVER", "PYKRON_CONF", "PYKRON_REWRITE"):
            continue
        section, key = _env_key(name, values)
        values[section][key] = _env_value(raw)
        origin[section, key] = name
    sections = {}
    for section, cls in _CLASSES.items():
        kwargs = {}
        for f in dataclasses.fields(cls):
            kwargs[f.name] = _check(values[section].get(f.name, _MISSING), f, section,
                                    origin.get((section, f.name), DEFAULTS.name))
        sections[section] = cls(**kwargs)
    sections["node"] = _resolve_node(sections["node"], origin["node", "bind"], origin["node", "advertise"])
    return Conf(**sections, source=str(Path(path).resolve()) if path else "").validate()


def load_argv(argv=None, prog=None):
    """`--conf/-c PATH [--log-level L]`: the only arguments a pykron process takes."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-c", "--conf", default=None, help="node config file (TOML)")
    parser.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    conf = load(args.conf)
    if args.log_level:
        conf = dataclasses.replace(conf, log=dataclasses.replace(conf.log, level=args.log_level))
    return conf


def endpoints(conf, service, role, port=None):
    """Where a service's socket binds: always ipc under run_dir, plus tcp when other hosts need it."""
    found = [f"ipc://{conf.node.run_dir}/{service}.{role}"]
    if port is not None:
        found.append(f"tcp://{conf.node.bind}:{port}")
    return found


def raft_servers(conf):
    """The founding servers from [raft] servers: name → tcp address of its peer port."""
    found = {}
    for entry in conf.raft.servers:
        name, _, addr = entry.partition("@")
        found[name] = f"tcp://{addr}"
    return found


def ipc(conf, service, role):
    return f"ipc://{conf.node.run_dir}/{service}.{role}"


def tcp(conf, port):
    """The address other hosts (and pykronctl) dial for one of this node's ports."""
    return f"tcp://{conf.node.advertise}:{port}"


_MISSING = object()


@functools.cache
def defaults():
    """conf/node.toml as plain data: the defaults a client needs without a node config."""
    return _read(DEFAULTS)


def _read(path):
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _env_key(name, values):
    rest = name[len("PYKRON_"):].lower()
    for section in values:
        if rest.startswith(section + "_") and rest[len(section) + 1:] in values[section]:
            return section, rest[len(section) + 1:]
    raise ConfigError(f"{name}: no such setting (expected PYKRON_<SECTION>_<KEY>, e.g. PYKRON_API_PORT)")


def _env_value(raw):
    """Environment values are TOML values when they parse as one (8080, true, ["a"]), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _check(value, f, section, where):
    meta = f.metadata
    want = f.type if isinstance(f.type, type) else {"str": str, "int": int, "bool": bool,
                                                    "dict": dict, "list": list}[f.type]
    where = f"{where}: [{section}] {f.name}"
    if value is _MISSING:
        raise ConfigError(f"{where}: missing (not in {DEFAULTS})")
    ok = type(value) is want or (want is dict and isinstance(value, dict)) or (want is list and isinstance(value, list))
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(want, meta)}, got {_show(value)}")
    if want is int and ((meta["lo"] is not None and value < meta["lo"])
                        or (meta["hi"] is not None and value > meta["hi"])):
        raise ConfigError(f"{where}: expected {_describe(want, meta)}, got {value}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{where}: expected one of {', '.join(meta['choices'])}, got {_show(value)}")
    texts = [value] if want is str else list(value.items()) if want is dict else value if want is list else []
    if any(len(str(t)) > TEXT_CHARS for t in texts) or len(texts) > TEXT_CHARS:
        raise ConfigError(f"{where}: expected at most {TEXT_CHARS} characters (and items), got {len(str(value))}")
    if want is dict:
        for k, v in value.items():
            if not isinstance(v, str):
                raise ConfigError(f"{where}: expected string values, got {k} = {_show(v)}")
    if want is list:
        for v in value:
            if not isinstance(v, str):
                raise ConfigError(f"{where}: expected a list of strings, got {_show(v)}")
    return value


def _describe(want, meta):
    name = {str: "string", int: "int", bool: "true or false", dict: "a table", list: "a list"}[want]
    if want is int and (meta["lo"] is not None or meta["hi"] is not None):
        return f"int {meta['lo'] if meta['lo'] is not None else ''}..{meta['hi']}" if meta["hi"] is not None \
            else f"int >= {meta['lo']}"
    return name


def _show(value):
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _resolve_node(node, bind_from, advertise_from):
    """Names and directories filled in. An address bound on every interface says nothing other
    nodes can dial, so it needs [node] advertise: guessing 127.0.0.1 left a cluster whose members
    each announced loopback, and which never formed off this host."""
    if is_unspecified(node.advertise):
        raise ConfigError(f'{advertise_from}: [node] advertise: "{node.advertise}" is no address another node can '
                          f'dial; set it to this host\'s address on the network the nodes share')
    if not node.advertise and (not node.bind or is_unspecified(node.bind)):
        raise ConfigError(f'{bind_from}: [node] bind = "{node.bind}" listens on every interface, so [node] advertise '
                          f'must say which address the other nodes dial: set [node] advertise to this host\'s '
                          f'address on their network (e.g. advertise = "10.0.0.5"), or bind to that address')
    data_dir = str(Path(node.data_dir).expanduser().resolve())
    run_dir = node.run_dir or f"/tmp/pykron-{hashlib.sha1(data_dir.encode()).hexdigest()[:10]}"
    return dataclasses.replace(node, name=node.name or socket.gethostname(), data_dir=data_dir,
                               run_dir=run_dir, advertise=node.advertise or node.bind)


def is_unspecified(address):
    """0.0.0.0, ::, and their other spellings: a socket bound there listens on every interface."""
    try:
        return ipaddress.ip_address(address.strip("[]")).is_unspecified
    except ValueError:
        return False


def is_loopback(address):
    return address in ("localhost", "::1") or address.startswith("127.")


def check_gossip_key(conf):
    """Gossip is sealed by the keyring wherever another host can reach it: a node bound past
    loopback refuses to start without a key (one in its keyring file counts: rotations live there)."""
    if is_loopback(conf.node.bind) or conf.security.gossip_key:
        return
    if os.path.exists(os.path.join(conf.node.data_dir, "gossip.keyring")):
        return
    raise ConfigError(f"{conf.source or DEFAULTS.name}: [security] gossip_key: required when [node] bind "
                      f"({conf.node.bind}) is not loopback; make one with `pykronctl keygen` and give every node it")


def make_run_dir(path):
    """The node's run dir (ipc sockets, supervisord's files, logs), made 0700. One that another
    user owns, or that others may write to, is refused: the ipc sockets in it are plain, so
    whoever controls the directory could pose as a service or listen in."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"[node] run_dir {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"[node] run_dir {path}: not a directory")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"[node] run_dir {path}: owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}); "
                          f"remove it, or set [node] run_dir to a directory of this user's")
    if st.st_mode & 0o022:
        raise ConfigError(f"[node] run_dir {path}: others may write to it (mode {stat.S_IMODE(st.st_mode):o}); "
                          f"chmod 700 it, or set [node] run_dir")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def addrs(conf):
    """The tcp addresses of this node's services, as members and node.info announce them."""
    return {
        "raft": tcp(conf, conf.raft.client_port), "peer": tcp(conf, conf.raft.peer_port),
        "state": tcp(conf, conf.raft.state_port), "gossip": tcp(conf, conf.gossip.query_port),
        "run": tcp(conf, conf.dispatcher.run_port), "dispatcher": tcp(conf, conf.dispatcher.result_port),
        "output": tcp(conf, conf.dispatcher.output_port), "executor": tcp(conf, conf.executor.output_port),
    }
