"""The scenario transcripts in testdata/*.txt (README, Developing: Tests): each is replayed through
interaction.py and must print exactly what the file says. After a deliberate change of behaviour,
regenerate them with `pytest tests/unit/raft --rewrite` (or PYKRON_REWRITE=1) and review the diff."""

import difflib
import os
from pathlib import Path

import pytest

from .interaction import parse, replay

TESTDATA = Path(__file__).parent / "testdata"
REQUIRED = {"campaign.txt", "replicate.txt", "prevote_partition.txt", "membership.txt", "transfer.txt",
            "snapshot.txt"}


def rewriting(config):
    return config.getoption("rewrite", default=False) or os.environ.get("PYKRON_REWRITE") == "1"


def test_every_required_transcript_is_there():
    assert REQUIRED <= {p.name for p in TESTDATA.glob("*.txt")}


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.name)
def test_transcript(path, request):
    expected = path.read_text()
    actual = replay(expected)
    if actual == expected:
        return
    if rewriting(request.config):
        path.write_text(actual)
        return
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        f"{path.name} (expected)", f"{path.name} (actual)"))
    pytest.fail(f"{path.name} differs from what the core does now; if the change is intended, run "
                f"PYKRON_REWRITE=1 pytest tests/unit/raft/test_transcripts.py and review the diff:\n{diff}",
                pytrace=False)


def test_parse_keeps_comments_and_commands_in_order():
    items = parse("# a comment\n\nstatus\n----\nn1: follower\n\nheal\n----\nhealed\n")
    assert items == [("text", "# a comment"), ("text", ""), ("command", 3, "status", "n1: follower"),
                     ("command", 7, "heal", "healed")]


def test_a_wrong_expectation_fails():
    text = "add-nodes 1\n----\nn1: something else\n"
    assert replay(text) != text


def test_a_command_without_separator_is_an_error():
    with pytest.raises(ValueError, match="expected '----'"):
        parse("status\nn1: follower\n")
