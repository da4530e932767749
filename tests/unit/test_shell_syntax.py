"""common/shell_syntax.py: a shell job's command that needs a shell it will not get (no
"shell": "true") is told apart from one that runs as written, quotes and escapes read as shlex
reads them; and the Warning header the api sends quotes the sentence as RFC 7234 asks."""

import pytest

from common.shell_syntax import command_syntax, shell_syntax, warning
from services.api.jobs import http_warning


@pytest.mark.parametrize("command,found", [
    ("for i in 1 2 3; do echo $i; done", ["'for'", "';'", "'$VAR'"]),
    ("echo $(hostname)", ["'$(...)'"]),
    ("echo `date`", ["'`...`'"]),
    ("echo ${HOME}", ["'${...}'"]),
    ("ps aux | grep x", ["'|'"]),
    ("make && make install || echo failed", ["'&&'", "'||'"]),
    ("backup > /var/log/backup.log 2>&1", ["'>'"]),
    ("sort < in.txt", ["'<'"]),
    ("run &>log", ["'>'"]),
    ("rm /tmp/app/*.gz", ["'*'"]),
    ("if test -f x; then y; fi", ["'if'", "';'"]),
    ("cd /srv && ./run", ["'cd'", "'&&'"]),
    ("a; export X=1", ["';'", "'export'"]),
    ("FOO=bar ./job", ["'VAR=value'"]),
    ("sleep 60 &", ["'&'"]),
    ("~/bin/report", ["'~'"]),
    ('echo "$HOME"', ["'$VAR'"]),  # a shell expands it in double quotes; shlex does not
    ("echo done # why", ["'#'"]),
])
def test_shell_syntax_outside_quotes_is_found(command, found):
    assert command_syntax(command) == found


@pytest.mark.parametrize("command", [
    "echo hello", "/usr/local/bin/backup --all", "sh -c 'for i in 1 2; do echo $i | wc; done'",
    "echo 'a;b|c>d *'", 'echo "a;b|c>d *"', "echo \\$HOME \\| \\;", "curl https://x.example/?a=1&b=2",
    "cmd --opt=a=b", 'python3 -c "print(1)"', "echo a~b a#b", "grep -c x file",
])
def test_plain_words_and_quoted_syntax_are_not(command):
    assert command_syntax(command) == []


def test_only_a_shell_job_without_shell_true_is_judged():
    job = {"name": "j", "executor": "shell", "executor_config": {"command": "echo $(hostname)"}}
    assert shell_syntax(job) == ["'$(...)'"]
    for shell in ("true", "TRUE", "1", "yes"):
        assert shell_syntax({**job, "executor_config": {**job["executor_config"], "shell": shell}}) == []
    assert shell_syntax({**job, "executor_config": {**job["executor_config"], "shell": "false"}})
    assert shell_syntax({**job, "executor": "http"}) == []
    assert shell_syntax({**job, "executor": ""}) == []
    for broken in (None, [], "job", {"executor": "shell"}, {"executor": "shell", "executor_config": "x"},
                   {"executor": "shell", "executor_config": {"command": 5}}):
        assert shell_syntax(broken) == []  # bad input is the validation's to refuse, not this


def test_the_warning_says_what_to_set_and_the_header_quotes_it():
    text = warning({"executor": "shell", "executor_config": {"command": "a | b"}})
    assert text.startswith("executor_config.command has shell syntax ('|') but runs without a shell")
    assert 'add "shell": "true" to executor_config' in text
    assert warning({"executor": "shell", "executor_config": {"command": "a b"}}) is None
    assert http_warning('say "hi" \\ there') == '299 - "say \\"hi\\" \\\\ there"'
    assert http_warning(text).isascii()
