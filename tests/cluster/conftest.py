"""Fault tests on real clusters (kill -9, SIGSTOP, partitions), marked slow. Capabilities they
need (root, nftables, which scripts/test installs) fail the run when missing: never a skip."""

import os
import shutil

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def partitions():
    """Use in tests that cut the network: checks the capability first."""
    missing = [why for why, bad in (("root", os.geteuid() != 0), ("nft (nftables)", shutil.which("nft") is None)) if bad]
    if missing:
        pytest.fail(f"partition tests need {' and '.join(missing)} (scripts/test installs nftables)")
