"""What the launcher (scripts/cluster.py) asks of this host: free ports, the processes under a
root or carrying a cluster's marks (read from /proc), signals, nftables, an HTTP probe, and
the TOML of a node's config."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import urllib.request


class ClusterError(Exception):
    pass


def to_toml(sections):
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def toml_value(value):
    """JSON's strings, numbers, booleans and lists are TOML too; tables are written inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def free_ports(count):
    """A block of consecutive ports free for TCP and UDP, from a random start below Linux's
    ephemeral range (32768 up), where a connection's own port could take one before its node
    binds it."""
    for _ in range(200):
        base = random.randrange(10000, 32768 - count)
        if all(port_free(p) for p in range(base, base + count)):
            return list(range(base, base + count))
    raise ClusterError(f"no block of {count} free ports")


def port_free(port):
    """Free on every address: nodes bind 127.0.0.x of their own, and a port a node of another
    cluster holds on 127.0.0.10 would still bind on 127.0.0.1."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def process_tree(root):
    """root and every descendant, read from /proc (supervisord gives each child its own group)."""
    if not root or root == 1 or root == os.getpid():
        return []  # a node that never started: nothing of it to signal (and never pid 0: everyone)
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def ancestry(pid):
    """pid and its parents up to init: the launcher's own command line names the cluster's dir."""
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def carrying(marks):
    """[(pid, command line)] of the processes running (but this one and its parents) whose
    command line or environment holds one of marks."""
    marks, mine, found = [m.encode() for m in marks], ancestry(os.getpid()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine or not pid_alive(int(entry)):
            continue
        carried = b""
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{entry}/{part}", "rb") as fh:
                    carried += fh.read() + b"\0"
            except OSError:
                pass
        if any(mark in carried for mark in marks):
            found.append((int(entry), cmdline(int(entry))))
    return sorted(found)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def nft(script, check=True):
    """Run an nft script; partitions need root and nftables (scripts/test installs it)."""
    if shutil.which("nft") is None:
        raise ClusterError("nft not found: partitions need nftables (apt-get install nftables), as root")
    done = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True)
    if check and done.returncode != 0:
        raise ClusterError(f"nft failed: {done.stderr.strip()}")


def http_ok(url, cafile=""):
    """GET url answers 200; an https one is checked against cafile (a test's own certificate)."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as resp:
            return resp.status == 200
    except OSError:
        return False
