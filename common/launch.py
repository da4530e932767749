"""`pykron`: starts a node (every service of its role under supervisord, from one config file)
or one service. The SERVICES table is the single list of services, their roles, start order
and stop budgets; the supervisord template, the Procfile test and the launcher all read it."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from docopt import docopt

from common import config
from common.errors import ConfigError, Halt

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "conf" / "supervisord.conf.tmpl"
GUNICORN_CONF = ROOT / "conf" / "gunicorn.conf.py"

USAGE = """pykron: run a pykron node or one of its services.

Usage:
  pykron node [-c CONF] [--log-level LEVEL]
  pykron service NAME [-c CONF] [--log-level LEVEL]
  pykron render [-c CONF]
  pykron recover-replica [-c CONF]
  pykron recover [-c CONF] --peers PEERS
  pykron supervisorctl [-c CONF] [--] [ARGS...]
  pykron (-h | --help)

Commands:
  node      Start every service of this node's role under supervisord (foreground; Ctrl-C stops all).
  service   Run one service in the foreground, as supervisord does.
  render    Print the supervisord config `node` would use.
  recover-replica
            A server whose Raft files are damaged (its raft service stopped with exit 65 and
            says so in its log): set them aside and rejoin from the peers through a snapshot.
            Refused when the cluster would have no quorum without this server meanwhile.
  recover   After quorum loss, on a surviving server whose node is stopped: make PEERS
            (NAME@HOST:PEER_PORT,...) the voters, commit what its log holds, and retire the
            servers left out (one returning with its old data is refused).
  supervisorctl
            supervisorctl on this node's own supervisord (the configuration `node` wrote into
            its run_dir): `pykron supervisorctl status`, `pykron supervisorctl signal HUP
            pykron:gossip`. Put `--` before ARGS that start with a dash (`-- tail -f pykron:raft`).

Options:
  -c CONF, --conf CONF   Node config file (TOML), layered over conf/node.toml.
  --log-level LEVEL      debug, info, warning or error.
  --peers PEERS          recover: the voters of the new configuration, this server among them.
"""


@dataclass(frozen=True)
class Service:
    name: str
    servers_only: bool
    priority: int
    stopwaitsecs: int


SERVICES = (
    Service("gossip", False, 10, 10),
    Service("raft", True, 10, 10),
    Service("scheduler", True, 20, 10),
    Service("dispatcher", True, 20, 10),
    Service("executor", False, 30, 0),  # its budget is the drain time, from the config
    Service("api", True, 40, 15),
)


def services_for(conf):
    return [s for s in SERVICES if conf.is_server or not s.servers_only]


def command(service, conf_path, log_level=None):
    """The argv that runs one service: gunicorn for the api, `python -m services.NAME` otherwise."""
    if service == "api":
        return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "services.api.app:create_app()"]
    argv = [sys.executable, "-m", f"services.{service}"]
    if conf_path:
        argv += ["--conf", conf_path]
    if log_level:
        argv += ["--log-level", log_level]
    return argv


def environment(service, conf_path, log_level=None):
    env = {"PYTHONUNBUFFERED": "1"}
    if service == "api":
        env["PYKRON_CONF"] = conf_path or ""
        if log_level:
            env["PYKRON_LOG_LEVEL"] = log_level
    return env


def render(conf, log_level=None):
    """The supervisord config for this node, from conf/supervisord.conf.tmpl."""
    head, program = TEMPLATE.read_text().split(";; program\n")
    common_keys = {"run_dir": conf.node.run_dir, "cwd": os.getcwd(), "log_max_bytes": conf.log.max_bytes,
                   "log_backups": conf.log.backups}
    blocks = []
    for svc in services_for(conf):
        env = environment(svc.name, conf.source, log_level)
        wait = svc.stopwaitsecs or conf.executor.drain_ms // 1000 + 5
        blocks.append(program.format(
            name=svc.name, command=shlex.join(command(svc.name, conf.source, log_level)),
            priority=svc.priority, stopwaitsecs=wait, asgroup="true" if svc.name == "executor" else "false",
            environment=",".join(f'{k}="{v}"' for k, v in env.items()), **common_keys))
    names = ",".join(s.name for s in services_for(conf))
    return head.format(programs=names, **common_keys) + "\n" + "\n".join(blocks)


def run_node(conf, log_level=None):
    os.makedirs(os.path.join(conf.node.run_dir, "log"), exist_ok=True)
    os.makedirs(conf.node.data_dir, exist_ok=True)
    path = os.path.join(conf.node.run_dir, "supervisord.conf")
    with open(path, "w") as fh:
        fh.write(render(conf, log_level))
    print(f"pykron node {conf.node.name} ({conf.node.role}): data {conf.node.data_dir}, logs {conf.node.run_dir}/log",
          file=sys.stderr)
    if conf.is_server:
        scheme = "https" if conf.api.certfile else "http"
        print(f"pykron API and UI on {scheme}://{conf.node.advertise}:{conf.api.port}/", file=sys.stderr)
    os.execvp(sys.executable, [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", path])


def supervisorctl(conf, argv):
    """supervisorctl as the node's own supervisord serves it: bare, it reads the system's
    configuration and reaches another supervisord (or none) instead of this node's."""
    path = os.path.join(conf.node.run_dir, "supervisord.conf")
    if not os.path.isfile(path):
        print(f"pykron supervisorctl: no {path}: node {conf.node.name} has not been started from this config "
              f"(pykron node{' -c ' + conf.source if conf.source else ''})", file=sys.stderr)
        return 4
    os.execvp(sys.executable, [sys.executable, "-m", "supervisor.supervisorctl", "-c", path, *argv])


def main(argv=None):
    args = docopt(USAGE, argv=argv)
    try:
        conf = config.load(args["--conf"])
    except ConfigError as err:
        print(f"pykron: {err}", file=sys.stderr)
        return 2
    level = args["--log-level"]
    if level and level not in ("debug", "info", "warning", "error"):
        print(f"pykron: --log-level: expected debug, info, warning or error, got {level!r}", file=sys.stderr)
        return 2
    if args["render"]:
        print(render(conf, level))
        return 0
    if args["supervisorctl"]:
        return supervisorctl(conf, args["ARGS"])
    if args["recover"]:  # the raft service's own files: its module does it (common imports no service)
        argv = [sys.executable, "-m", "services.raft.recover", "--peers", args["--peers"]]
        os.execvp(argv[0], argv + (["-c", args["--conf"]] if args["--conf"] else []))
    if args["recover-replica"]:
        from common import recovery
        try:
            recovery.recover_replica(conf)
        except (recovery.Refused, Halt) as exc:
            print(f"pykron recover-replica: refused: {exc}", file=sys.stderr)
            return 4
        return 0
    try:
        config.check_gossip_key(conf)
        config.make_run_dir(conf.node.run_dir)
    except ConfigError as err:
        print(f"pykron: {err}", file=sys.stderr)
        return 2
    if args["service"]:
        name = args["NAME"]
        if name not in {s.name for s in SERVICES}:
            print(f"pykron: unknown service {name!r} (one of {', '.join(s.name for s in SERVICES)})", file=sys.stderr)
            return 2
        argv = command(name, conf.source, level)
        os.execvpe(argv[0], argv, {**os.environ, **environment(name, conf.source, level)})
    return run_node(conf, level)


if __name__ == "__main__":
    sys.exit(main())
