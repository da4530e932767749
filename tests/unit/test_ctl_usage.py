"""pykronctl's usage text (common/ctl_usage.py) and what its tables and questions show a person
(common/terminal.py): every command of the docopt grammar has its line under Commands, and no
line describes a command that is gone; the exit codes are listed once, as the code returns them;
Go's zero time and blanks read "-" in a table; `confirm` asks only a terminal."""

import io
import re

import pytest
from docopt import docopt

from common import ctl_usage, errors, models
from common.terminal import Printer, confirm


def usage_commands(usage):
    """The commands of the docopt grammar: each pattern's leading literal words ("keys accept")."""
    patterns = usage.split("Usage:\n", 1)[1].split("\n\n", 1)[0]
    found = []
    for line in patterns.splitlines():
        words = line.split()[1:]
        if words[:1] == ["[options]"]:
            words = words[1:]
        literal = []
        for word in words:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            literal.append(word)
        if literal:
            found.append(" ".join(literal))
    return found


def described_commands(usage):
    """The commands the Commands section gives a line to, each with its description."""
    section = usage.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0] if "\nCommands:\n" in usage else ""
    found = {}
    for line in section.splitlines():
        match = re.fullmatch(r"  (\S+(?: \S+)*)\s{2,}(\S.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def undescribed(usage):
    described = described_commands(usage)
    return [c for c in usage_commands(usage) if not described.get(c)]


def test_every_command_has_its_line_and_no_line_is_left_over():
    commands = usage_commands(ctl_usage.USAGE)
    assert len(commands) == len(set(commands)) >= 40 and "acl token create" in commands and "leave" in commands
    assert undescribed(ctl_usage.USAGE) == []
    assert sorted(set(described_commands(ctl_usage.USAGE)) - set(commands)) == []


def test_the_check_fails_on_a_command_without_its_line():
    lacking = ctl_usage.USAGE.replace("  raft remove-peer        Remove a server from the Raft configuration.\n", "")
    assert lacking != ctl_usage.USAGE and undescribed(lacking) == ["raft remove-peer"]
    no_section = "Usage:\n  pykronctl [options] status\n  pykronctl [options] jobs [--tag K=V]...\n\nOptions:\n"
    assert undescribed(no_section) == ["status", "jobs"]


def test_the_exit_codes_are_listed_once_as_the_code_returns_them():
    section = ctl_usage.USAGE.split("\nExit codes:\n", 1)[1].split("\n\n", 1)[0]
    listed = [int(line.split()[0]) for line in section.splitlines()]
    assert listed == [0, 1, 2, 3, 4, 5] == [code for code, _ in ctl_usage.EXIT_CODES]
    assert (ctl_usage.OK, ctl_usage.FAILED, ctl_usage.USAGE_ERROR, ctl_usage.NOT_FOUND, ctl_usage.UNAVAILABLE,
            ctl_usage.DENIED) == (0, 1, 2, 3, 4, 5)
    assert ctl_usage.USAGE.count("Exit codes:") == 1


def test_the_grammar_still_parses_and_leave_takes_yes():
    assert docopt(ctl_usage.USAGE, argv=["leave", "--yes"])["--yes"] is True
    assert docopt(ctl_usage.USAGE, argv=["leave"])["--yes"] is False
    assert docopt(ctl_usage.USAGE, argv=["acl", "token", "create", "--policy", "a"])["--policy"] == ["a"]


def test_a_table_shows_zero_times_and_blanks_as_a_dash():
    out = io.StringIO()
    Printer(out, False).table([{"name": "a", "next": models.ZERO_TIME, "status": "", "last": None},
                               {"name": "b", "next": "2026-01-01T00:00:00Z", "status": "success", "last": 3}],
                              ("name", "next", "status", "last"))
    rows = [line.split() for line in out.getvalue().splitlines()]
    assert rows == [["NAME", "NEXT", "STATUS", "LAST"], ["a", "-", "-", "-"],
                    ["b", "2026-01-01T00:00:00Z", "success", "3"]]
    as_json = io.StringIO()
    Printer(as_json, True).table([{"next": models.ZERO_TIME}], ("next",))
    assert models.ZERO_TIME in as_json.getvalue()  # --json keeps Dkron's zero time


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_confirm_asks_a_terminal_and_goes_on_only_on_yes():
    for answer in ("y\n", "YES\n"):
        asked = io.StringIO()
        confirm("s1 will leave the cluster", "leave", stdin=Terminal(answer), stream=asked)
        assert asked.getvalue() == "pykronctl: s1 will leave the cluster. Go on? [y/N] "
    for answer in ("\n", "n\n", "yes please\n", ""):
        with pytest.raises(errors.BadRequest, match="leave: not confirmed, nothing done"):
            confirm("s1 will leave the cluster", "leave", stdin=Terminal(answer), stream=io.StringIO())


def test_confirm_refuses_without_a_terminal_naming_the_flag():
    with pytest.raises(errors.BadRequest, match="s1 will leave the cluster; stdin is not a terminal .*add --yes"):
        confirm("s1 will leave the cluster", "leave", stdin=io.StringIO("y\n"), stream=io.StringIO())
