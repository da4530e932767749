"""Integration tests run real nodes (every service a real process under supervisord) through
the launcher in scripts/cluster.py; one node is shared per test module."""

import pytest

from scripts.cluster import Cluster, wait_until


@pytest.fixture(scope="module")
def node():
    with Cluster(servers=1) as cluster:
        yield cluster


@pytest.fixture
def eventually():
    return wait_until
