"""`pykron recover-replica -c node.toml`: a server whose files are damaged sets them aside and
rejoins from its peers through a snapshot (the path a server whose data was wiped takes), once
the cluster is sure to keep its quorum without it while it catches up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from common import config, errors, keys, messages as m
from common.client import Client

FILES = ("state.db", "state.db-wal", "state.db-shm", "raft-log.db", "raft-log.db-wal", "raft-log.db-shm",
         "snapshots")


class Refused(Exception):
    """Recovery would do harm now; the message says why and what to do first."""


def quorum_check(conf):
    """(voters, the others alive) from the cluster's side; Refused when this server's absence
    while it catches up would leave the voters without a majority."""
    pair = keys.node_keypair(conf.node.data_dir)
    gossip = Client(config.ipc(conf, "gossip", "query"), keypair=pair, timeout_ms=3000)
    try:
        members = gossip.ask(gossip.endpoint, m.MemberList()).members
    except errors.Error as exc:
        raise Refused(f"this node's gossip does not answer ({exc}): start the node (`pykron node -c "
                      f"{conf.source}`) so that it sees its peers, then run this again") from None
    alive = {x["name"]: x for x in members if x["status"] == "alive" and x["role"] == "server"
             and x["name"] != conf.node.name}
    voters = None
    for name, member in sorted(alive.items()):
        peer = Client(member["addrs"]["raft"], keypair=pair, server_key=member["key"], timeout_ms=3000)
        try:
            voters = [p["id"] for p in peer.document(peer.endpoint, m.RaftPeers())["peers"] if p["role"] == "voter"]
            break
        except errors.Error:
            continue
    if voters is None:
        raise Refused("no other server answers: the cluster has no quorum to rebuild this one from; "
                      "bring the other servers back first")
    others = sorted(set(voters) & set(alive) - {conf.node.name})
    need = len(voters) // 2 + 1
    if conf.node.name in voters and len(others) < need:
        raise Refused(f"of the {len(voters)} voters ({', '.join(sorted(voters))}) only {len(others)} others are "
                      f"alive ({', '.join(others) or 'none'}); without this one while it catches up the cluster "
                      f"would have no quorum (it needs {need}): bring another server back first")
    return voters, others


def set_aside(data_dir, now=None):
    """Move the server's Raft files into a folder of their own (kept, for a post-mortem); its
    keys stay, so the cluster knows it again."""
    aside = os.path.join(data_dir, f"damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}")
    moved = []
    for name in FILES:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            os.makedirs(aside, mode=0o700, exist_ok=True)
            shutil.move(path, os.path.join(aside, name))
            moved.append(name)
    return aside, moved


def supervisorctl(conf, *args):
    """The node's own supervisord, when it runs: (exit code, output)."""
    path = os.path.join(conf.node.run_dir, "supervisord.conf")
    if not os.path.exists(os.path.join(conf.node.run_dir, "supervisor.sock")):
        return None, "supervisord is not running"
    done = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", path, *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def recover_replica(conf, out=sys.stderr):
    if not conf.is_server:
        raise Refused(f"{conf.node.name} is an agent: it holds no replica (an agent's executor.db that is "
                      f"damaged is moved aside by hand, as its line says)")
    voters, others = quorum_check(conf)
    print(f"{conf.node.name}: the cluster keeps its quorum without it ({len(others)} of {len(voters)} voters alive: "
          f"{', '.join(others)})", file=out)
    code, said = supervisorctl(conf, "stop", "pykron:raft")
    if code not in (None, 0) and "not running" not in said:  # a halted service is stopped already
        raise Refused(f"cannot stop this node's raft service: {said.strip()}")
    aside, moved = set_aside(conf.node.data_dir)
    print(f"set aside in {aside}: {', '.join(moved) or 'nothing (no Raft files)'}", file=out)
    code, said = supervisorctl(conf, "start", "pykron:raft")
    if code is None:
        print(f"start the node (`pykron node -c {conf.source}`): its raft service rejoins through a snapshot",
              file=out)
    elif code != 0:
        raise Refused(f"the files are set aside, but the raft service did not start: {said.strip()}")
    else:
        print("the raft service started again: the leader adds it as a learner, sends it a snapshot and the "
              "log, then makes it a voter again (`pykronctl raft list-peers` shows it)", file=out)
