"""The launcher for tests and people: starts nodes of real processes on loopback, each under its
own supervisord as production runs it, waits on every service's ctl socket and the api's
/health against a deadline, and offers kill/restart. `scripts/cluster` is its command line;
tests use `with Cluster(servers=1) as c:`. Whatever it started it stops, even when it fails
midway; nftables is needed only to draw a partition."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import config, errors, keys, messages as m, wire  # noqa: E402
from common.client import Client  # noqa: E402
from common.launch import services_for  # noqa: E402
from scripts import netns  # noqa: E402
from scripts.host import (ClusterError, carrying, cmdline, free_ports, http_ok, kill_quietly,  # noqa: E402,F401
                          nft, pid_alive, process_tree, reap, to_toml)

PORT_KEYS = (("gossip", "port"), ("gossip", "query_port"), ("raft", "peer_port"), ("raft", "client_port"),
             ("raft", "state_port"), ("dispatcher", "run_port"), ("dispatcher", "result_port"),
             ("dispatcher", "output_port"), ("executor", "output_port"), ("api", "port"))
START_TIMEOUT_S = 45
NFT_TABLE = "pykron_partition"


@dataclass
class Node:
    name: str
    role: str
    conf_path: str
    conf: object
    pid: int = 0
    proc: object = None  # the Popen when this process started it (so it can be reaped)

    @property
    def key(self):
        """The node's public key (made before its first start, so that clients know it)."""
        return keys.node_keypair(self.conf.node.data_dir).public.decode()

    @property
    def api(self):
        scheme = "https" if self.conf.api.certfile else "http"
        return f"{scheme}://{self.conf.node.advertise}:{self.conf.api.port}"

    @property
    def server(self):
        """The address pykronctl and Client take for this node."""
        return f"{self.conf.node.advertise}:{self.conf.raft.client_port}"


class Cluster:
    def __init__(self, servers=1, agents=0, dir=None, *, env=None, conf=None, node_conf=None, keep=False,
                 secure=False, plain=False, accept_agents=True, hosts=False):
        """conf: sections layered over every node's config; node_conf: {node name: sections}.
        secure: gossip encrypted with a key of the cluster's own, no key accepted but by the
        launcher's `keys accept` (else every node that joins gossip is accepted: auto_accept),
        and the ACL bootstrapped: the launcher's clients use the management token it printed.
        plain: the benchmark baseline, TCP without CURVE ([wire] plain_tcp). accept_agents=False
        (secure only): the agents' keys are left pending, for an operator (a test) to decide.
        hosts: each node a host of its own, a network namespace with its own address on a bridge
        (scripts/netns.py; root), cut off by cut(name); secure only, as off loopback it must be."""
        if hosts and not secure:
            raise ClusterError("a cluster of hosts binds off loopback, where gossip needs its key: secure=True")
        if hosts and netns.capable():
            raise ClusterError(f"a cluster of hosts needs {netns.capable()}")
        if servers < 1 or agents < 0 or servers + agents > 200:
            raise ClusterError("need at least one server, and at most 200 nodes")
        self.servers, self.agents = servers, agents
        self.dir = Path(dir or tempfile.mkdtemp(prefix="pk-cluster-"))
        self.run_root = Path(tempfile.mkdtemp(prefix="pk-", dir="/tmp"))  # short: ipc paths are limited
        self.env = {**os.environ, **(env or {})}
        self.extra = conf or {}
        self.node_extra = node_conf or {}
        self.ctl_error = None
        self.paused = {}
        self.keep = keep
        self.secure, self.plain = secure, plain
        self.accepted = None if accept_agents else {f"s{i + 1}" for i in range(servers)}
        self.gossip_key = base64.b64encode(os.urandom(32)).decode() if secure else ""
        self.partitioned = False  # a partition drawn and not healed: only then is there nft to undo
        self.management_token = ""  # the ACL's bootstrap secret, in a secure cluster
        self.network = netns.Network(os.urandom(2).hex()[:3]) if hosts else None
        self.nodes = {}

    # -- life cycle --------------------------------------------------------------------------

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.print_logs()
            try:
                self.down()
            except ClusterError as err:  # said, and the failure of up is the one raised
                print(f"cluster: {err}", file=sys.stderr)
            raise
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.print_logs()
        self.down()

    def up(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        names = [f"s{i + 1}" for i in range(self.servers)] + [f"a{i + 1}" for i in range(self.agents)]
        ports = free_ports(len(PORT_KEYS) * len(names))
        blocks = {n: ports[i * len(PORT_KEYS):(i + 1) * len(PORT_KEYS)] for i, n in enumerate(names)}
        # Each node has its own loopback address, so a partition can be drawn between nodes (or,
        # as hosts, its own namespace and address on a bridge).
        if self.network:
            self.network.up()
            self.save()
            hosts = {n: self.network.add_host(n, i) for i, n in enumerate(names)}
        else:
            hosts = {n: f"127.0.0.{10 + i}" for i, n in enumerate(names)}
        founders = [f"{n}@{hosts[n]}:{blocks[n][PORT_KEYS.index(('raft', 'peer_port'))]}" for n in names[:self.servers]]
        join = [f"{hosts[n]}:{blocks[n][0]}" for n in names[:self.servers]]
        for name in names:
            role = "server" if name.startswith("s") else "agent"
            self.nodes[name] = self.write_node(name, role, blocks[name], hosts[name], founders, join)
        self.client_keypair()
        for node in self.nodes.values():
            self.start(node)
            self.save()  # at once: a launcher that dies now leaves what `down` and `status` need
        for node in self.nodes.values():
            self.wait_ready(node)
        leader = self.leader(timeout=START_TIMEOUT_S)
        self.accept_keys(self.accepted)
        self.wait_targets(leader, self.accepted)
        if self.secure:
            self.bootstrap_acl()
        self.save()
        return self

    def client_keypair(self):
        """The launcher's client key (accepted in every cluster it starts), in the cluster's dir."""
        path = self.dir / "client.key"
        return keys.read_keypair(str(path)) if path.exists() else keys.write_keypair(str(path))

    def accept_keys(self, names=None, timeout=START_TIMEOUT_S):
        """Accept the launcher's client key and, in a secure cluster, each node's (they are
        pending once gossip shows them), through a server's ipc socket as an operator on its host."""
        server = next(n for n in self.nodes.values() if n.role == "server" and pid_alive(n.pid))
        local = Client(config.ipc(server.conf, "raft", "client"), keypair=keys.node_keypair(server.conf.node.data_dir))
        try:
            wanted = {"launcher": (self.client_keypair().public.decode(), "client")}
            if self.secure:
                wanted.update({n.name: (n.key, n.role) for n in self.nodes.values()
                               if names is None or n.name in names})
            deadline = time.monotonic() + timeout
            while wanted:
                known = {k["key"]: k for k in local.keys_list()}
                for name, (key, kind) in list(wanted.items()):
                    if known.get(key, {}).get("status") == "accepted":
                        del wanted[name]
                    elif kind == "client" or key in known:
                        local.key_accept(name, key, kind)
                if wanted and time.monotonic() > deadline:
                    raise ClusterError(f"keys not accepted within {timeout}s: {sorted(wanted)}")
                time.sleep(0.1 if wanted else 0)
        finally:
            local.close()

    def bootstrap_acl(self):
        """The ACL's one bootstrap, through a server's ipc socket as an operator on its host: its
        management token is what the launcher's clients use from then on, and is printed."""
        server = next(n for n in self.nodes.values() if n.role == "server" and pid_alive(n.pid))
        local = Client(config.ipc(server.conf, "raft", "client"), keypair=keys.node_keypair(server.conf.node.data_dir))
        try:
            _, self.management_token = local.acl_bootstrap()
        finally:
            local.close()
        print(f"management token: {self.management_token}", flush=True)

    def client_key(self):
        """The keypair the launcher's clients dial with: the management token's once the ACL is on."""
        return keys.token_keypair(self.management_token) if self.management_token else self.client_keypair()

    def wait_targets(self, leader, names=None, timeout=START_TIMEOUT_S):
        """Up means jobs can be sent anywhere: the leader's dispatcher, which targets what gossip
        reports alive, sees every node (a run asked for before that finds no target), and every
        executor hears it (its key let in by the run PUB: a run sent before would wait a re-send)."""
        deadline = time.monotonic() + timeout
        # ...and every server has registered the protocol it speaks, so the leader's claims of
        # this release's commands pass its version gate.
        while self.ctl(leader, "dispatcher").get("alive") != len(self.nodes) \
                or self.ctl(leader, "raft").get("protocol", 1) < wire.PROTOCOL:
            if time.monotonic() > deadline:
                raise ClusterError(f"the dispatcher of {leader} does not see all {len(self.nodes)} nodes alive, or "
                                   f"not every server has registered protocol {wire.PROTOCOL}, within {timeout}s: "
                                   f"{self.ctl(leader, 'dispatcher')}")
            time.sleep(0.05)
        for name in names or self.nodes:
            while self.ctl(name, "executor").get("dispatcher") != leader:
                if time.monotonic() > deadline:
                    raise ClusterError(f"the executor of {name} does not follow {leader} within {timeout}s: "
                                       f"{self.ctl(name, 'executor')}")
                time.sleep(0.05)

    def write_node(self, name, role, ports, host, founders, join):
        node_dir = self.dir / name
        node_dir.mkdir(parents=True, exist_ok=True)
        here = {"name": name, "data_dir": str(node_dir / "data"), "run_dir": str(self.run_root / name), "bind": host}
        if self.network:
            # Hosts start from the README's example files, with what differs per host filled in.
            sections = example_conf(role)
            sections["node"].update(here)
            sections["gossip"]["retry_join"] = join
            sections["security"]["gossip_key"] = self.gossip_key
            if role == "server":
                sections["raft"]["servers"] = founders
            sections["api"] = {"workers": 1, "threads": 8}
        else:
            sections = {"node": {**here, "role": role},
                        "api": {"workers": 1, "threads": 8},
                        "raft": {"servers": founders, "bootstrap_expect": len(founders)},
                        "gossip": {"join": [j for j in join if not j.startswith(host + ":")]},
                        "security": ({"gossip_key": self.gossip_key} if self.secure else {"auto_accept": "gossip"}),
                        "wire": {"plain_tcp": self.plain}}
        if self.secure and os.geteuid() == 0:
            # With the ACL on, no job runs as the node's own user (its ipc sockets obey that user).
            sections.setdefault("executor", {})["run_as"] = "nobody"
        for (section, key), port in zip(PORT_KEYS, ports):
            sections[section] = {**sections.get(section, {}), key: port}
        for extra in (self.extra, self.node_extra.get(name, {})):
            for section, values in extra.items():
                sections.setdefault(section, {}).update(values)
        path = node_dir / "node.toml"
        path.write_text(to_toml(sections))
        node = Node(name, role, str(path), config.load(str(path), env={}))
        keys.node_keypair(node.conf.node.data_dir)  # made now, so that the launcher knows it
        return node

    def start(self, node):
        log = open(self.dir / node.name / "supervisord.out", "ab")
        argv = [sys.executable, "-m", "common.launch", "node", "-c", node.conf_path]
        proc = subprocess.Popen(self.network.command(node.name, argv) if self.network else argv,
                                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        node.pid, node.proc = proc.pid, proc
        log.close()

    def wait_ready(self, node, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        services = [s.name for s in services_for(node.conf)]
        pending = list(services)
        while pending:
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node.name}: not ready within {timeout}s: {pending}")
            if not pid_alive(node.pid):
                raise ClusterError(f"node {node.name}: supervisord exited")
            name = pending[0]
            if (name == "api" and http_ok(f"{node.api}/health", node.conf.api.certfile)
                    or name != "api" and self.ctl(node.name, name, 500).get("ready")):
                pending.pop(0)
            else:
                time.sleep(0.05)

    def down(self):
        """Stop everything of this cluster, whatever fails on the way (a missing nft, a node
        that will not stop): every node is stopped, then every process of its own left running
        (one whose supervisord died first) is killed; ClusterError says what failed after."""
        problems = []
        try:
            self.heal()
        except ClusterError as err:
            problems.append(str(err))
        for node in self.nodes.values():
            try:
                self.resume_quietly(node)
                self.stop(node)
            except (OSError, subprocess.SubprocessError) as err:
                problems.append(f"{node.name}: {err}")
        for pid, _ in self.processes():
            kill_quietly(pid, signal.SIGCONT)
            kill_quietly(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            problems.append("still running: " + ", ".join(str(pid) for pid, _ in left))
        if self.network:
            self.network.down()
        if not self.keep:
            shutil.rmtree(self.run_root, ignore_errors=True)
        if problems:
            raise ClusterError("; ".join(problems))

    def processes(self):
        """[(pid, command line)] of every process of this cluster still running, found by what
        each carries: a node's config path or the run dir in its command line or environment."""
        return carrying([n.conf_path for n in self.nodes.values()] + [f"{self.run_root}/"])

    def resume_quietly(self, node):
        for pid in process_tree(node.pid):
            kill_quietly(pid, signal.SIGCONT)

    def stop(self, node, timeout=20):
        """TERM supervisord (it stops every service), then KILL whatever is left."""
        tree = process_tree(node.pid)
        if pid_alive(node.pid):
            os.kill(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in tree):
            time.sleep(0.05)
            reap(node.pid)
        for pid in tree:
            kill_quietly(pid, signal.SIGKILL)
        reap(node.pid)
        if node.proc is not None:
            node.proc.wait()

    # -- faults ------------------------------------------------------------------------------

    def kill(self, name, service=None):
        """SIGKILL every process of a node (its supervisord first, so nothing restarts), or one
        service, which its supervisord then restarts from durable state."""
        node = self.nodes[name]
        if service is None:
            tree = process_tree(node.pid)
            for pid in tree:
                kill_quietly(pid, signal.SIGKILL)
            reap(node.pid)
            if node.proc is not None:
                node.proc.wait()
            return tree
        pid = self.service_pid(name, service)
        kill_quietly(pid, signal.SIGKILL)
        return [pid]

    def restart(self, name, conf=None):
        """Stop the node (TERM, as an operator would) and start it again; conf: sections layered
        over its file first (an upgrade, say)."""
        node = self.nodes[name]
        if pid_alive(node.pid):
            self.stop(node)
        if conf:
            sections = tomllib.loads(Path(node.conf_path).read_text())
            for section, values in conf.items():
                sections.setdefault(section, {}).update(values)
            Path(node.conf_path).write_text(to_toml(sections))
            node.conf = config.load(node.conf_path, env={})
        self.start(node)
        self.wait_ready(node)
        self.leader(timeout=START_TIMEOUT_S)
        self.save()

    def pause(self, name, service=None):
        """SIGSTOP a node (every process) or one service: alive to the kernel, silent to peers."""
        pids = process_tree(self.nodes[name].pid) if service is None else [self.service_pid(name, service)]
        for pid in pids:
            kill_quietly(pid, signal.SIGSTOP)
        self.paused[(name, service)] = pids  # a stopped service cannot tell its pid any more
        return pids

    def resume(self, name, service=None):
        pids = self.paused.pop((name, service), None) or process_tree(self.nodes[name].pid)
        for pid in pids:
            kill_quietly(pid, signal.SIGCONT)
        return pids

    def cut(self, name):
        """Take a host's link down (a cluster of hosts): nothing reaches it, nor leaves it."""
        self.network.cut(name)

    def reconnect(self, name):
        self.network.restore(name)

    def partition(self, *groups):
        """Cut every path between nodes of different groups (both ways), with nftables rules
        on the nodes' own loopback addresses. Nodes in no group keep every path."""
        hosts = [[self.nodes[n].conf.node.bind for n in group] for group in groups]
        rules = [f"ip saddr {a} ip daddr {b} drop" for i, ga in enumerate(hosts) for j, gb in enumerate(hosts)
                 if i != j for a in ga for b in gb]
        self.heal()
        table = self.nft_table
        script = [f"add table inet {table}",
                  f"add chain inet {table} out {{ type filter hook output priority 0; }}"]
        script += [f"add rule inet {table} out {rule}" for rule in rules]
        self.partitioned = True  # before nft runs: a table half made is undone by heal too
        self.save()
        nft("\n".join(script))

    def heal(self):
        """Undo the partition this cluster drew; nothing (and no nft needed) when it drew none."""
        if not self.partitioned:
            return
        nft(f"delete table inet {self.nft_table}", check=False)
        self.partitioned = False
        self.save()

    @property
    def nft_table(self):
        """This cluster's own table: clusters running side by side draw and heal their own."""
        return NFT_TABLE + "_" + "".join(c if c.isalnum() else "_" for c in self.run_root.name)

    def service_pid(self, name, service):
        node = self.nodes[name]
        if service == "api":
            children = [p for p in process_tree(node.pid) if "gunicorn" in cmdline(p)]
            return min(children) if children else 0
        status = self.ctl(name, service)
        if "pid" not in status:
            raise ClusterError(f"{name}/{service} does not answer on its ctl socket: {self.ctl_error}")
        return status["pid"]

    # -- inspection --------------------------------------------------------------------------

    def ctl(self, name, service, timeout_ms=2000):
        """ctl.status of one service; {} when it does not answer."""
        node = self.nodes[name]
        client = Client(config.ipc(node.conf, service, "ctl"), timeout_ms=timeout_ms)
        try:
            return client.call(client.endpoint, m.CtlStatus(), timeout_ms=timeout_ms)
        except errors.Error as err:
            self.ctl_error = err
            return {}
        finally:
            client.close()

    def check_node(self, name):
        if name not in self.nodes:
            raise ClusterError(f"no node {name!r} (nodes: {', '.join(self.nodes)})")
        return name

    def leader(self, timeout=15):
        """The name of the node every reachable server agrees leads, once one is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, node in self.nodes.items():
                if node.role == "server" and pid_alive(node.pid):
                    status = self.ctl(name, "raft", 300)
                    if status.get("role") == "leader" and status.get("leader_ready"):
                        return name
            time.sleep(0.05)
        raise ClusterError(f"no ready leader within {timeout}s")

    def client(self, name="s1"):
        node = self.nodes[name]
        return Client(node.server, keypair=self.client_key(), server_key=node.key, plain=self.plain)

    def dial(self, sock, name, endpoint, as_node=None):
        """Connect a raw socket to one of node `name`'s tcp endpoints, as the launcher's client
        key (or as node `as_node`, with its key): for tests that send what a Client would not."""
        pair = keys.node_keypair(self.nodes[as_node].conf.node.data_dir) if as_node else self.client_keypair()
        sock.curve_secretkey, sock.curve_publickey = pair.secret, pair.public
        sock.curve_serverkey = self.nodes[name].key.encode()
        sock.connect(endpoint)

    def ctl_env(self, name="s1"):
        """What pykronctl needs in its environment to talk to node `name` as the launcher."""
        node = self.nodes[name]
        return {**os.environ, "PYKRON_SERVER": node.server, "PYKRON_KEY": str(self.dir / "client.key"),
                "PYKRON_SERVER_KEY": node.key, **({"PYKRON_TOKEN": self.management_token} if self.management_token else {})}

    def api(self, name="s1"):
        return self.nodes[name].api

    def log(self, name, service):
        path = Path(self.nodes[name].conf.node.run_dir) / "log" / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def print_logs(self, lines=30):
        for node in self.nodes.values():
            for svc in services_for(node.conf):
                text = self.log(node.name, svc.name).splitlines()[-lines:]
                print(f"----- {node.name}/{svc.name} (last {len(text)} lines) -----", file=sys.stderr)
                print("\n".join(text), file=sys.stderr)

    def save(self):
        state = {"run_root": str(self.run_root), "secure": self.secure, "partitioned": self.partitioned,
                 "management_token": self.management_token,
                 "network": self.network.to_plain() if self.network else None, "nodes": {
            n.name: {"role": n.role, "conf": n.conf_path, "pid": n.pid, "api": n.api, "server": n.server}
            for n in self.nodes.values()}}
        (self.dir / "cluster.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, dir):
        path = Path(dir) / "cluster.json"
        if not path.exists():
            raise ClusterError(f"no cluster in {dir} (run `scripts/cluster up --dir {dir}` first)")
        state = json.loads(path.read_text())
        self = cls.__new__(cls)
        self.dir, self.run_root, self.env, self.keep = Path(dir), Path(state["run_root"]), dict(os.environ), False
        self.extra, self.node_extra, self.ctl_error, self.paused = {}, {}, None, {}
        self.secure, self.plain, self.gossip_key = state.get("secure", False), False, ""
        self.partitioned = state.get("partitioned", False)
        self.management_token = state.get("management_token", "")
        self.network = netns.Network.from_plain(state["network"]) if state.get("network") else None
        self.nodes = {name: Node(name, n["role"], n["conf"], config.load(n["conf"], env={}), n["pid"])
                      for name, n in state["nodes"].items()}
        return self


EXAMPLES = ROOT / "conf" / "examples"


def example_conf(role):
    """The README's example configuration of a server or an agent on a host of its own."""
    return tomllib.loads((EXAMPLES / f"{role}.toml").read_text())


def wait_until(check, timeout=20, what="condition", every=0.1):
    """Poll check() until it returns a truthy value or the deadline passes; returns the value.
    An exception from check() counts as not yet (a cluster in the middle of a fault errs)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (errors.Error, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


USAGE = """scripts/cluster: start and break pykron nodes on loopback.

Usage:
  cluster up [--servers N] [--agents M] [--secure] --dir D
  cluster down --dir D
  cluster status --dir D
  cluster kill NODE [SERVICE] --dir D
  cluster restart NODE --dir D
  cluster pause NODE [SERVICE] --dir D
  cluster resume NODE [SERVICE] --dir D
  cluster partition GROUP... --dir D
  cluster heal --dir D

Options:
  --servers N   Server nodes [default: 1].
  --agents M    Agent nodes [default: 0].
  --dir D       Where node configs, data and the cluster state live.
  --secure      Gossip encrypted, and every key accepted by the launcher, none automatically.

GROUP is a comma-separated list of node names: `partition s1,s2 s3` cuts s3 off from s1 and s2.
"""


def main(argv=None):
    from docopt import docopt

    args = docopt(USAGE, argv=argv)
    try:
        if args["up"]:
            cluster = Cluster(int(args["--servers"]), int(args["--agents"]), args["--dir"], keep=True,
                              secure=args["--secure"])
            try:
                cluster.up()
            except BaseException:  # a failure, or Ctrl-C: nothing it started is left running
                cluster.print_logs()
                cluster.keep = False
                cluster.down()
                raise
            for node in cluster.nodes.values():
                print(f"{node.name}\t{node.role}\t{node.api}\t{node.server}\t{node.key}")
            print(f"client key (accepted): {cluster.dir / 'client.key'}")
            return 0
        cluster = Cluster.load(args["--dir"])
        if args["down"]:
            cluster.down()
            shutil.rmtree(cluster.run_root, ignore_errors=True)
            (cluster.dir / "cluster.json").unlink(missing_ok=True)
        elif args["status"]:
            for node in cluster.nodes.values():
                states = {s.name: ("up" if (http_ok(f"{node.api}/health", node.conf.api.certfile) if s.name == "api"
                                            else cluster.ctl(node.name, s.name, 500).get("ready")) else "down")
                          for s in services_for(node.conf)}
                print(node.name, node.role, " ".join(f"{k}={v}" for k, v in states.items()))
            running = cluster.processes()
            print(f"{len(running)} processes of this cluster running" + (":" if running else ""))
            for pid, line in running:
                print(f"  {pid}\t{line}")
            if cluster.partitioned:
                print(f"partitioned (nft table {cluster.nft_table}; `heal` undoes it)")
        elif args["kill"]:
            print("killed", " ".join(map(str, cluster.kill(cluster.check_node(args["NODE"]), args["SERVICE"]))))
        elif args["restart"]:
            cluster.restart(args["NODE"])
        elif args["pause"] or args["resume"]:
            verb = cluster.pause if args["pause"] else cluster.resume
            print("signalled", " ".join(map(str, verb(cluster.check_node(args["NODE"]), args["SERVICE"]))))
        elif args["partition"]:
            groups = [g.split(",") for g in args["GROUP"]]
            for name in (n for g in groups for n in g):
                cluster.check_node(name)
            cluster.partition(*groups)
        elif args["heal"]:
            if not cluster.partitioned:
                print("no partition drawn: nothing to heal")
            cluster.heal()
    except ClusterError as err:
        print(f"cluster: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
