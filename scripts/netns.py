"""Hosts of their own for a test cluster: each node in a network namespace with its own address
on a bridge (not 127.0.0.x), reachable from this host through the bridge's address, and cut off
by taking its link down (as a cable pulled). Needs root and iproute2."""

from __future__ import annotations

import os
import shutil
import subprocess


class NetnsError(RuntimeError):
    pass


def ip(*args, check=True):
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def capable():
    """Why hosts cannot be made here, or "" when they can."""
    missing = [why for why, bad in (("root", os.geteuid() != 0), ("ip (iproute2)", shutil.which("ip") is None)) if bad]
    return " and ".join(missing)


class Network:
    """One bridge and a namespace per host, named after `tag` (a few characters unique to the
    cluster: interface names are at most 15 characters). Subnet 10.<a>.<b>.0/24 from the tag."""

    def __init__(self, tag):
        self.tag = tag
        seed = int.from_bytes(tag.encode(), "big") % 250
        self.prefix = f"10.201.{seed + 1}"
        self.bridge = f"pkb{tag}"
        self.hosts = {}  # name → (namespace, root-side veth, address)

    @property
    def gateway(self):
        return f"{self.prefix}.1"

    def up(self):
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name, number):
        ns, veth, address = f"pk{self.tag}{name}", f"pv{self.tag}{name}", f"{self.prefix}.{10 + number}"
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[name] = (ns, veth, address)
        return address

    def command(self, name, argv):
        """argv run inside the host's namespace."""
        return ["ip", "netns", "exec", self.hosts[name][0], *argv]

    def cut(self, name):
        ip("link", "set", self.hosts[name][1], "down")

    def restore(self, name):
        ip("link", "set", self.hosts[name][1], "up")

    def down(self):
        for ns, veth, _ in self.hosts.values():
            ip("link", "del", veth, check=False)
            ip("netns", "del", ns, check=False)
        ip("link", "del", self.bridge, check=False)
        self.hosts = {}

    def to_plain(self):
        return {"tag": self.tag, "hosts": {n: list(h) for n, h in self.hosts.items()}}

    @classmethod
    def from_plain(cls, plain):
        net = cls(plain["tag"])
        net.hosts = {n: tuple(h) for n, h in plain["hosts"].items()}
        return net
