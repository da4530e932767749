"""Shell syntax in a shell executor's command that runs without a shell (Dkron's rule: the
command is split into words and exec'd unless executor_config says "shell": "true"). One pure
judgement, read by `pykronctl apply` and the api's job writes, which warn and store the job."""

from __future__ import annotations

# Words a shell understands and no program on the PATH is: without a shell the run fails with
# "No such file or directory: 'for'" (or runs something else than meant).
SHELL_WORDS = {"for", "if", "while", "until", "case", "function", "cd", "export", "source", "[[", "{", "(("}
WORD_END = " \t\n;&|<>()"  # where an unquoted word ends


def shell_syntax(doc) -> list[str]:
    """What a job in Dkron's shape (a dict) would need a shell for, in the order met: empty when
    it is no shell job, says "shell": "true", or its command is plain words."""
    if not isinstance(doc, dict) or doc.get("executor") != "shell":
        return []
    config = doc.get("executor_config")
    if not isinstance(config, dict) or not isinstance(config.get("command"), str):
        return []
    if str(config.get("shell", "false")).lower() in ("true", "1", "yes"):
        return []
    return command_syntax(config["command"])


def command_syntax(command: str) -> list[str]:
    """Shell syntax outside quotes (which shlex keeps as text, as a shell would in single quotes;
    in double quotes a shell still expands $ and backticks, shlex does not)."""
    found = []

    def note(what):
        if what not in found:
            found.append(what)

    quote, word_start, command_start, i = "", True, True, 0
    while i < len(command):
        c, rest = command[i], command[i:]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1  # the next character is literal, in and out of double quotes
            word_start = command_start = False
        elif c == "$" and rest[1:2] == "(":
            note("'$(...)'")
        elif c == "$" and rest[1:2] == "{":
            note("'${...}'")
        elif c == "$" and (rest[1:2].isalpha() or rest[1:2] == "_"):
            note("'$VAR'")
        elif c == "`":
            note("'`...`'")
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in " \t":
            word_start = True
        elif c in ";|(\n" or (c == "&" and (rest.startswith(("&&", "&>")) or _alone(command, i))):
            if rest.startswith(("&&", "||")):
                note(f"'{rest[:2]}'")
                i += 1
            elif c == "|":
                note("'|'")
            elif c == ";":
                note("';'")
            elif c == "&" and rest.startswith("&>"):
                note("'>'")
                i += 1
            elif c == "&":
                note("'&'")
            word_start = command_start = True
        else:
            if word_start:
                word = _word(command, i)
                if command_start and word in SHELL_WORDS:
                    note(f"'{word}'")
                elif command_start and "=" in word and word.partition("=")[0].isidentifier():
                    note("'VAR=value'")
                elif c == "~":
                    note("'~'")
                elif c == "#":
                    note("'#'")
                word_start = command_start = False
            if c in "'\"":
                quote = c
            elif c in "<>":
                note(f"'{c}'")
            elif c == "*":
                note("'*'")
        i += 1
    return found


def warning(doc) -> str | None:
    """The sentence both faces give, or None. It names no job: pykronctl adds the name."""
    found = shell_syntax(doc)
    if not found:
        return None
    return (f"executor_config.command has shell syntax ({', '.join(found)}) but runs without a shell, "
            f'split into words; add "shell": "true" to executor_config to run it with /bin/sh -c')


def _word(command, i):
    end = i
    while end < len(command) and command[end] not in WORD_END:
        end += 1
    return command[i:end]


def _alone(command, i):
    """A lone & (a word of its own, or the last character): background, not part of a URL."""
    before = command[i - 1] if i else " "
    after = command[i + 1] if i + 1 < len(command) else " "
    return before in " \t" and after in " \t\n"
