"""common/keys.py: a node's keypair made once, 0600 in a 0700 folder, the same on every start;
a key file or folder that others may read, or that another user owns, refused with one line."""

import os

import pytest
import zmq

from common import keys
from common.errors import Halt


def test_a_node_keypair_is_made_private_and_kept(tmp_path):
    made = keys.node_keypair(str(tmp_path))
    path = tmp_path / "keys" / keys.NODE_KEY
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700 and path.stat().st_mode & 0o777 == 0o600
    assert zmq.curve_public(made.secret) == made.public and keys.is_public_key(made.public.decode())
    assert keys.node_keypair(str(tmp_path)) == made
    assert path.read_text().strip() == made.secret.decode()  # the secret only: the public key follows from it


@pytest.mark.parametrize("what, mode", [("file", 0o644), ("file", 0o640), ("folder", 0o755)])
def test_a_key_others_may_read_stops_the_node(tmp_path, what, mode):
    keys.node_keypair(str(tmp_path))
    target = tmp_path / "keys" / (keys.NODE_KEY if what == "file" else "")
    os.chmod(target, mode)
    with pytest.raises(Halt) as err:
        keys.node_keypair(str(tmp_path))
    assert "\n" not in str(err.value) and f"others may read the key {what}" in str(err.value)


def test_a_file_that_is_not_a_key_is_refused(tmp_path):
    path = tmp_path / "client.key"
    path.write_text("not a key")
    path.chmod(0o600)
    with pytest.raises(Halt, match="not a key file"):
        keys.read_keypair(str(path))


def test_a_new_client_key_never_overwrites_one(tmp_path):
    path = str(tmp_path / "client.key")
    made = keys.write_keypair(path)
    assert keys.read_keypair(path) == made
    with pytest.raises(FileExistsError):
        keys.write_keypair(path)
