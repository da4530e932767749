"""The client's retry pause after not_leader (common/client.py Backoff): at once toward a newly
named leader, else a short doubling pause bounded by half the shortest election timeout."""

from common import config
from common.client import Backoff


def test_a_newly_named_leader_is_tried_at_once_and_only_once():
    retry = Backoff()
    assert retry.pause("s2") == 0.0
    assert retry.pause("s2") == Backoff.FIRST_S  # named again: it was tried, so wait
    assert retry.pause("s3") == 0.0


def test_without_a_leader_the_pause_doubles_up_to_half_the_election_timeout():
    raft = config.defaults()["raft"]
    most = raft["tick_ms"] * raft["election_ticks"] / 2000
    retry = Backoff()
    pauses = [retry.pause() for _ in range(8)]
    assert pauses[:3] == [0.05, 0.1, 0.2]
    assert max(pauses) == most and pauses[-1] == most
    assert sum(pauses[:4]) < 1.0  # four tries within an election's second
