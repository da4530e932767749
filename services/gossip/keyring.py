"""The gossip keyring: AES-GCM keys (the `cryptography` package); the first seals, every one is
tried when opening, so keys rotate across a running cluster without downtime (install on all,
use on all, remove on all). Persisted in {data_dir}/gossip.keyring, primary key first."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common import errors

VERSION = 1                 # first byte of a sealed datagram, as memberlist's encryption version
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
KEY_BYTES = (16, 24, 32)    # AES-128, -192, -256


def new_key():
    return base64.b64encode(os.urandom(32)).decode()


def decode_key(text):
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise errors.BadRequest(f"gossip key {text!r} is not base64") from None
    if len(key) not in KEY_BYTES:
        raise errors.BadRequest(f"gossip key must be 16, 24 or 32 bytes, got {len(key)}")
    return key


def key_id(key):
    """A gossip key's id: what `keyring --list` shows, and `key_id(decode_key(text))` finds."""
    return hashlib.sha256(b"pykron gossip key " + key).hexdigest()[:16]


def encode_key(key):
    return base64.b64encode(key).decode()


class Keyring:
    def __init__(self, keys=(), path=None):
        self.path = path
        self.keys = list(keys)
        self.ciphers = {k: AESGCM(k) for k in self.keys}

    @classmethod
    def load(cls, path, initial=""):
        """The file wins once it exists (rotations live there); else the configured key seeds it."""
        if os.path.exists(path):
            with open(path) as fh:
                keys = [decode_key(k) for k in json.load(fh)]
            return cls(keys, path)
        ring = cls([decode_key(initial)] if initial else [], path)
        if ring.keys:
            ring.save()
        return ring

    @property
    def enabled(self):
        return bool(self.keys)

    def seal(self, data):
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far past any gossip volume
        return bytes([VERSION]) + nonce + self.ciphers[self.keys[0]].encrypt(nonce, data, None)

    def open(self, data):
        """The plaintext, or None when no key of ours sealed it (or it was altered)."""
        if len(data) < OVERHEAD or data[0] != VERSION:
            return None
        nonce, sealed = bytes(data[1:1 + NONCE_BYTES]), bytes(data[1 + NONCE_BYTES:])
        for key in self.keys:
            try:
                return self.ciphers[key].decrypt(nonce, sealed, None)
            except InvalidTag:
                continue
        return None

    # -- rotation (Serf's keys: install, use, remove) -----------------------------------------

    def install(self, text):
        key = decode_key(text)
        if key not in self.ciphers:
            self.keys.append(key)
            self.ciphers[key] = AESGCM(key)
            self.save()

    def use(self, text):
        key = decode_key(text)
        if key not in self.ciphers:
            raise errors.BadRequest("install a key on every member before using it")
        self.keys.remove(key)
        self.keys.insert(0, key)
        self.save()

    def remove(self, text):
        key = decode_key(text)
        if self.keys and key == self.keys[0]:
            raise errors.BadRequest("the primary key cannot be removed: use another one first")
        if key in self.ciphers:
            self.keys.remove(key)
            del self.ciphers[key]
            self.save()

    def listing(self):
        """Key ids, never keys: a reply must not carry what would let its reader into gossip."""
        return {"keys": [key_id(k) for k in self.keys], "primary": key_id(self.keys[0]) if self.keys else ""}

    def save(self):
        if self.path is None:
            return
        tmp = f"{self.path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump([encode_key(k) for k in self.keys], fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
