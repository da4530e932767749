"""Integration tests run real nodes (every service a real process under supervisord) through
the launcher in scripts/cluster.py; one node is shared per test module."""

import time

import pytest

from scripts.cluster import Cluster


@pytest.fixture(scope="module")
def node():
    with Cluster(servers=1) as cluster:
        yield cluster


@pytest.fixture
def eventually():
    return wait_until


def wait_until(check, timeout=20, what="condition"):
    """Poll check() until it returns a truthy value or the deadline passes; returns the value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
