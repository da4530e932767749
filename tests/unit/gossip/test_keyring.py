"""The gossip keyring (AES-GCM, rotation, persistence) and the replay window, alone."""

import json

import pytest

from common import errors
from services.gossip import keyring as kr
from services.gossip.replay import MessageIds, ReplayWindow, message_id


def test_sealed_datagrams_open_with_any_installed_key_and_hide_the_plaintext(tmp_path):
    old, new = kr.new_key(), kr.new_key()
    a = kr.Keyring.load(str(tmp_path / "a"), old)
    b = kr.Keyring.load(str(tmp_path / "b"), old)
    sealed = a.seal(b"role=secret-tag")
    assert b"secret-tag" not in sealed and len(sealed) == len(b"role=secret-tag") + kr.OVERHEAD
    assert b.open(sealed) == b"role=secret-tag"
    b.install(new)
    b.use(new)                      # b seals with new, still opens old
    assert a.open(b.seal(b"x")) is None
    assert b.open(a.seal(b"y")) == b"y"


def test_a_wrong_key_or_altered_bytes_do_not_open():
    a, b = kr.Keyring([kr.decode_key(kr.new_key())]), kr.Keyring([kr.decode_key(kr.new_key())])
    sealed = a.seal(b"hello")
    assert b.open(sealed) is None
    assert a.open(sealed[:-1] + bytes([sealed[-1] ^ 1])) is None
    assert a.open(b"") is None and a.open(b"\x02" + sealed[1:]) is None


def test_rotation_rules_and_the_file_that_keeps_them(tmp_path):
    first, second = kr.new_key(), kr.new_key()
    path = tmp_path / "gossip.keyring"
    ring = kr.Keyring.load(str(path), first)
    with pytest.raises(errors.BadRequest):
        ring.use(second)            # not installed yet
    ring.install(second)
    with pytest.raises(errors.BadRequest):
        ring.remove(first)          # still the primary
    ring.use(second)
    ring.remove(first)
    assert json.loads(path.read_text()) == [second]
    second_id = kr.key_id(kr.decode_key(second))
    assert kr.Keyring.load(str(path), first).listing() == {"keys": [second_id], "primary": second_id}  # the file wins
    assert second not in json.dumps(ring.listing())  # a listing holds key ids, never keys


@pytest.mark.parametrize("text", ["not base64!", "YWJj"])
def test_bad_keys_are_refused(text):
    with pytest.raises(errors.BadRequest):
        kr.decode_key(text)


def test_no_key_means_no_encryption(tmp_path):
    assert not kr.Keyring.load(str(tmp_path / "k"), "").enabled


def test_replayed_or_earlier_boot_ids_are_refused_reordered_ones_taken():
    window = ReplayWindow(window=8)
    ids = MessageIds(boot=100)
    first, second, third = ids.next(), ids.next(), ids.next()
    assert window.accept("a", first) and window.accept("a", third)
    assert window.accept("a", second)           # late, within the window
    assert not window.accept("a", second)       # again
    assert not window.accept("a", message_id(99, 50))   # an earlier life of the sender
    assert window.accept("a", message_id(101, 1))       # a restart
    assert not window.accept("a", third)
    for seq in range(2, 40):
        window.accept("a", message_id(101, seq))
    assert not window.accept("a", message_id(101, 20))  # too old to tell
    assert not window.accept("a", b"short")
    assert window.accept("b", first)            # per sender
