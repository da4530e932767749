"""CURVE keys (ZeroMQ's Curve25519, Z85 text): each node's keypair in {data_dir}/keys, made at
its first start, and client keypairs for pykronctl and scripts. A secret key file, or the folder
that holds it, that others may read is refused: whoever reads it can pose as the node."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

import zmq
from zmq.utils import z85

from common.errors import Halt

NODE_KEY = "node.key"
KEY_CHARS = 40  # Z85 of 32 bytes


@dataclass(frozen=True)
class Keypair:
    public: bytes
    secret: bytes

    @property
    def id(self):
        return key_id(self.public)


def key_id(public):
    """A short fingerprint to show and to name a key by (no key material in any reply)."""
    if isinstance(public, str):
        public = public.encode()
    return hashlib.sha256(public).hexdigest()[:16]


def is_public_key(text):
    """A Z85 Curve25519 public key as text: 40 characters that decode."""
    if not isinstance(text, str) or len(text) != KEY_CHARS:
        return False
    try:
        return len(z85.decode(text.encode())) == 32
    except (ValueError, KeyError, IndexError):
        return False


def token_keypair(secret):
    """The CURVE keypair of an ACL token, derived from its secret: pykronctl with a token dials
    with it, and the cluster knows only its public key (the book lets it in as the token)."""
    seed = hashlib.sha256(b"pykron token key\x00" + secret.encode()).digest()
    secret_key = z85.encode(seed)
    return Keypair(zmq.curve_public(secret_key), secret_key)


def node_keypair(data_dir):
    """The node's keypair, made (0600 in a 0700 folder) when there is none yet."""
    folder = os.path.join(data_dir, "keys")
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    _private(folder, "folder")
    path = os.path.join(folder, NODE_KEY)
    if not os.path.exists(path):
        return write_keypair(path)
    return read_keypair(path)


def write_keypair(path):
    """A new keypair in a new file, readable by its owner only; the file holds the secret key."""
    public, secret = zmq.curve_keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.decode() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return Keypair(public, secret)


def read_keypair(path):
    """The keypair of a key file (its secret key; the public one follows from it), refused when
    others may read the file."""
    try:
        _private(path, "file")
        with open(path) as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise Halt(f"{path}: cannot read the key file: {exc.strerror}") from None
    if len(text) != KEY_CHARS:
        raise Halt(f"{path}: not a key file (expected the {KEY_CHARS}-character Z85 secret key)")
    try:
        secret = text.encode()
        return Keypair(zmq.curve_public(secret), secret)
    except (ValueError, zmq.ZMQError):
        raise Halt(f"{path}: not a key file (the secret key does not decode)") from None


def _private(path, what):
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise Halt(f"{path}: the key {what} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise Halt(f"{path}: others may read the key {what} (mode {stat.S_IMODE(st.st_mode):o}); "
                   f"chmod {'700' if what == 'folder' else '600'} it")
