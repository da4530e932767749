"""The linearizability checker in tests/linearizability.py, on hand-made histories: it accepts
what a register may do and rejects a planted stale read."""

from tests.linearizability import UNKNOWN, Op, check, check_key


def w(value, call, ret, p=0, key="k"):
    return Op(p, "write", key, value, call, ret)


def r(value, call, ret, p=1, key="k"):
    return Op(p, "read", key, value, call, ret)


def test_sequential_history_is_linearizable():
    assert check_key([w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)])


def test_a_read_concurrent_with_a_write_may_see_either_value():
    assert check_key([w(1, 0, 1), w(2, 2, 6), r(1, 3, 4)])
    assert check_key([w(1, 0, 1), w(2, 2, 6), r(2, 3, 4)])


def test_a_planted_stale_read_is_not_linearizable():
    # x=2 was acknowledged before the read started, yet the read returns the older 1.
    assert not check_key([w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)])


def test_reads_cannot_go_back_in_time():
    assert not check_key([w(1, 0, 1), w(2, 2, 10), r(2, 3, 4, p=1), r(1, 5, 6, p=2)])


def test_a_write_of_unknown_outcome_may_happen_late_or_never():
    assert check_key([w(1, 0, UNKNOWN), r(None, 1, 2), r(1, 5, 6)])
    assert check_key([w(1, 0, UNKNOWN), r(None, 1, 2), r(None, 5, 6)])
    assert not check_key([w(1, 0, UNKNOWN), r(1, 1, 2), r(None, 5, 6)])


def test_keys_are_checked_independently():
    history = [w(1, 0, 1, key="a"), r(1, 2, 3, key="a"), w(1, 0, 1, key="b"), r(None, 2, 3, key="b")]
    assert check(history) == ["b"]
