"""How pykronctl reaches a cluster, and its key verbs. With no server named it talks to the node
of this host through its ipc sockets (the node's config from PYKRON_CONF, else the defaults),
as that node, with its own key; a server named by address is dialled over CURVE, with a client
key (--key / PYKRON_KEY) and that server's public key (--server-key / PYKRON_SERVER_KEY).
With an ACL token (--token / PYKRON_TOKEN) the key is the one its secret derives, and calls go
over tcp even to this host's node, so that the cluster judges them as the token's."""

from __future__ import annotations

import os

from common import acl, config, errors, keys
from common.client import Client

LOCAL_SERVERS = ("$PYKRON_SERVER, else this host's node", None)


def connect(args, timeout_ms):
    server = args["--server"]
    if server in LOCAL_SERVERS:
        server = os.environ.get("PYKRON_SERVER", "")
    keypair = _client_keypair(args)
    server_key = args.get("--server-key") or os.environ.get("PYKRON_SERVER_KEY") or None
    token = args.get("--token") or os.environ.get("PYKRON_TOKEN")
    if token:
        keypair = keys.token_keypair(acl.check_secret(token))
        local = None if server else _local_node()
        if local is not None:  # this host's node, over tcp, as the token
            server = f"{local.node.advertise}:{local.raft.client_port}"
            server_key = server_key or _local_server_key(local)
    if not server:
        local = _local_node()
        if local is not None:
            return Client(config.ipc(local, "raft", "client"), timeout_ms=timeout_ms, sender="pykronctl",
                          keypair=keypair or _node_keypair(local))
        server = "localhost"
    return Client(server, timeout_ms=timeout_ms, sender="pykronctl", keypair=keypair, server_key=server_key)


def _client_keypair(args):
    path = args.get("--key") or os.environ.get("PYKRON_KEY")
    if not path:
        return None
    try:
        return keys.read_keypair(path)
    except errors.Halt as exc:
        raise errors.BadRequest(f"--key: {exc}") from None


def _local_node():
    """This host's node, when its raft client socket is there to talk to."""
    try:
        conf = config.load(os.environ.get("PYKRON_CONF") or None)
    except errors.ConfigError:
        return None
    path = config.ipc(conf, "raft", "client")[len("ipc://"):]
    return conf if os.path.exists(path) else None


def _local_server_key(conf):
    """This host's node's public key, as its raft service tells it over ipc."""
    local = Client(config.ipc(conf, "raft", "client"), timeout_ms=conf.wire.call_timeout_ms, sender="pykronctl",
                   keypair=_node_keypair(conf))
    try:
        return local.node_info()["key"]
    finally:
        local.close()


def _node_keypair(conf):
    try:
        return keys.node_keypair(conf.node.data_dir)
    except (errors.Halt, OSError):
        return None  # not this node's user: ipc still works, tcp verbs will say what is missing


# -- the key verbs --------------------------------------------------------------------------


def new_client_key(path):
    """A client keypair in a new file (0600): its public key is what `keys add` accepts."""
    if os.path.exists(path):
        raise errors.Conflict(f"{path} exists: a key file is never overwritten")
    try:
        return keys.write_keypair(path)
    except OSError as exc:
        raise errors.BadRequest(f"{path}: {exc.strerror}") from None


def this_node_key():
    """The public key of this host's node (from its config), to give remote clients."""
    conf = config.load(os.environ.get("PYKRON_CONF") or None)
    return conf, keys.node_keypair(conf.node.data_dir)
