"""`pykron recover -c node.toml --peers NAME@HOST:PORT,...`: a surviving server after quorum loss
(Consul's peers.json, etcd's --force-new-cluster), run while its node is stopped. Its log gets a
configuration of the peers named, committed by fiat in a new term together with every entry it
holds (listed: they may never have been committed before); the servers left out are retired
in its state, so one that returns with its old data is refused (wiped, it joins as new)."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys

from common import config, errors, messages as m, schema, wire
from common.client import Client
from services.raft.raftlog import CONF, Entry, Membership
from services.raft.snapshots import StateFiles
from services.raft.state_schema import STATE
from services.raft.store import LogStore

USAGE_ERROR, REFUSED = 2, 4


def parse_peers(text):
    peers = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, _, addr = item.partition("@")
        host, _, port = addr.rpartition(":")
        if not name or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--peers: expected NAME@HOST:PORT, got {item!r}")
        peers[name] = {"peer": f"tcp://{host}:{port}"}
    if not peers:
        raise ValueError("--peers: name at least this server")
    return peers


def running(conf):
    """Whether this node's raft service answers on its ctl socket (recovery needs it stopped)."""
    client = Client(config.ipc(conf, "raft", "ctl"), timeout_ms=500)
    try:
        client.call(client.endpoint, m.CtlStatus(), timeout_ms=500)
        return True
    except errors.Error:
        return False
    finally:
        client.close()


def recover(conf, peers, out):
    if not conf.is_server:
        raise errors.BadRequest(f"{conf.node.name} is an agent: it holds no Raft log to recover from")
    if conf.node.name not in peers:
        raise errors.BadRequest(f"--peers must name this server ({conf.node.name}) among the voters")
    if running(conf):
        raise errors.Unavailable("this node's raft service is running: stop the node first")
    data = conf.node.data_dir
    files = StateFiles(data, conf.source)
    log_path = os.path.join(data, "raft-log.db")
    if not os.path.exists(log_path):
        raise errors.BadRequest(f"{log_path} does not exist: nothing to recover from")
    files.check()
    store = LogStore(log_path, files.recover_hint())
    try:
        (term, _vote, commit), snapshot, entries = store.load()
        last = entries[-1].index if entries else (snapshot.index if snapshot else 0)
        uncommitted = [e for e in entries if e.index > commit]
        print(f"{conf.node.name}: log up to index {last}, term {term}; committed up to {commit}", file=out)
        for e in uncommitted:
            what = "configuration" if e.kind == CONF else (wire.unpack(e.data) or {}).get("op", "?") if e.data else "empty"
            print(f"  committing index {e.index} (term {e.term}): {what}", file=out)
        conf_entry = Entry(last + 1, term + 1, wire.pack(Membership(peers, {}).to_plain()), CONF)
        store.save((term + 1, "", last + 1), [conf_entry])
        print(f"new configuration at index {last + 1}, term {term + 1}: voters {', '.join(sorted(peers))}", file=out)
    finally:
        store.close()
    retire(files.state_path, set(peers), out)


def retire(state_path, kept, out):
    """Every server the state knows but the peers kept: retired with its storage id."""
    conn = sqlite3.connect(state_path, isolation_level=None)
    try:
        schema.migrate(conn, state_path, STATE)
        rows = conn.execute("SELECT name, addrs FROM serverrow").fetchall()
        conn.execute("BEGIN IMMEDIATE")
        for name, addrs in rows:
            if name in kept:
                continue
            store = (json.loads(addrs) or {}).get("store", "")
            conn.execute("INSERT OR IGNORE INTO retiredrow (name, store) VALUES (?, ?)", (name, store))
            print(f"retired {name} (storage {store or 'unknown'}): it may join again only wiped", file=out)
        conn.execute("COMMIT")
    finally:
        conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pykron recover")
    parser.add_argument("-c", "--conf", default=None)
    parser.add_argument("--peers", required=True)
    args = parser.parse_args(argv)
    try:
        conf = config.load(args.conf)
        peers = parse_peers(args.peers)
        recover(conf, peers, sys.stdout)
    except (ValueError, errors.ConfigError, errors.BadRequest) as exc:
        print(f"pykron recover: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (errors.Error, errors.Halt) as exc:
        print(f"pykron recover: refused: {exc}", file=sys.stderr)
        return REFUSED
    print("start the node: it leads the new configuration alone; start new servers (wiped) to join it",
          file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
