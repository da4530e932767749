"""Seeded fuzzing: every test here draws from hypothesis under one seed, PYKRON_FUZZ_SEED (a
fresh one each run unless given), printed with the command that repeats a failure."""

import os
import random

import pytest

SEED = int(os.environ.get("PYKRON_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))


def pytest_report_header(config):
    return f"fuzz seed: PYKRON_FUZZ_SEED={SEED}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "tests/fuzz/" in str(item.fspath):
        report.sections.append(("fuzz seed", f"repeat with: PYKRON_FUZZ_SEED={SEED} .venv/bin/python -m pytest "
                                             f"-p no:cacheprovider -q '{item.nodeid}'"))
