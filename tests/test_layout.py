"""The layout rules of the README (Developing: Architecture, Core and shell, Layout), read from
the source with ast: services meet only over the wire (no service imports another), common/
imports no service, every core.py is pure (no sockets, clock, randomness, disk, processes or
threads), a shell never writes into its core's state (it steps the core), the simulators in
scripts/sim/ import no shell, and no file cites a document outside the repository."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"zmq", "socket", "time", "random", "os", "sqlite3", "peewee", "subprocess", "threading"}
MUTATORS = {"append", "appendleft", "extend", "extendleft", "insert", "remove", "pop", "popleft", "popitem",
            "clear", "update", "setdefault", "add", "discard", "sort", "reverse", "rotate", "difference_update",
            "intersection_update", "symmetric_difference_update"}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts)


def imports(source, module):
    """Every dotted name a module imports; `from a import b` yields both a and a.b, and
    relative imports are resolved against the module's package."""
    package = module.rsplit(".", 1)[0] if "." in module else ""  # for __init__, the package itself
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return found


def service_violations(source, module):
    """Imports of another service from services/<own>/...; any service import from common/."""
    parts = module.split(".")
    bad = []
    for name in imports(source, module):
        target = name.split(".")
        if target[0] != "services" or len(target) < 2:
            continue
        if parts[0] == "common" or (parts[0] == "services" and target[1] != parts[1]):
            bad.append(name)
    return bad


def io_violations(source, module):
    return sorted({name for name in imports(source, module) if name.split(".")[0] in IO_MODULES})


def core_writes(source):
    """Lines where a shell writes into its core: assigns to (or deletes) an attribute of
    `<x>.core` or an item of one, or calls a mutating method on one of its collections."""
    def into_core(node):
        """node is <x>.core.<attr>..., an attribute or item reached through the core."""
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr == "core":
                return True
            node = inner
        return False

    bad = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            targets = [node.func.value] if into_core(node.func) else []
        flat = [t for target in targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        bad += [node.lineno for t in flat if into_core(t)]
    return sorted(set(bad))


def shell_imports(source, module):
    return sorted({name for name in imports(source, module) if "shell" in name.split(".")})


def sources(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_tree_has_services_common_and_cores():
    assert {p.parent.name for p in sources("services") if p.name == "core.py"} >= {
        "raft", "scheduler", "dispatcher", "executor"}
    assert (ROOT / "common" / "wire.py").exists()


@pytest.mark.parametrize("path", sources("services"), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_service_imports_no_other_service(path):
    assert service_violations(path.read_text(), module_name(path)) == []


@pytest.mark.parametrize("path", sources("common"), ids=lambda p: str(p.relative_to(ROOT)))
def test_common_imports_no_service(path):
    assert service_violations(path.read_text(), module_name(path)) == []


@pytest.mark.parametrize("path", [p for p in sources("services") if p.name == "core.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_cores_import_no_io(path):
    assert io_violations(path.read_text(), module_name(path)) == []


# The checks themselves must be able to fail.

@pytest.mark.parametrize("source,module", [
    ("import services.raft.core", "services.scheduler.shell"),
    ("from services.raft import fsm", "services.dispatcher.core"),
    ("from services import raft", "services.api.app"),
    ("from ..raft.core import Raft", "services.scheduler.shell"),
    ("def f():\n    from services.executor import core\n", "services.dispatcher.shell"),
    ("from services.raft.core import Entry", "common.models"),
    ("import services.gossip", "common.client"),
])
def test_service_check_catches(source, module):
    assert service_violations(source, module)


@pytest.mark.parametrize("source,module", [
    ("from services.raft.core import Raft", "services.raft.shell"),
    ("from . import fsm", "services.raft.shell"),
    ("from .core import Raft", "services.raft.__init__"),
    ("from common import wire, messages as m", "services.raft.core"),
    ("import services", "services.raft.shell"),
])
def test_service_check_allows(source, module):
    assert service_violations(source, module) == []


@pytest.mark.parametrize("source", [
    "import zmq", "import os.path", "from os import path", "import time as clock", "from random import Random",
    "import socket", "import sqlite3", "import peewee as pw", "from subprocess import run", "import threading",
    "def f():\n    import time\n",
])
def test_io_check_catches(source):
    assert io_violations(source, "services.raft.core")


def test_io_check_allows_pure_modules():
    source = "import heapq\nimport shlex\nfrom dataclasses import dataclass\nfrom common import models\n"
    assert io_violations(source, "services.scheduler.core") == []


@pytest.mark.parametrize("path", [p for p in sources("services") if p.name == "shell.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_a_shell_never_writes_into_its_core(path):
    assert core_writes(path.read_text()) == []


@pytest.mark.parametrize("path", sources("scripts/sim"), ids=lambda p: str(p.relative_to(ROOT)))
def test_simulators_import_no_shell(path):
    assert shell_imports(path.read_text(), module_name(path)) == []


@pytest.mark.parametrize("source", [
    "self.core.runs.clear()", "self.core.members = members", "self.core.untagged = 'all'",
    "self.core.runs[key] = run", "del self.core.runs[key]", "self.core.seq += 1", "self.core.waiting.add(run)",
    "self.core.runs[key].state = 'x'", "self.core.claims['job'].append(claim)", "a, self.core.term = 1, 2",
])
def test_core_write_check_catches(source):
    assert core_writes(source)


@pytest.mark.parametrize("source", [
    "self.core = Dispatcher()", "self.core.step(env.msg, now)", "run = self.core.runs.get(key)",
    "n = len(self.core.runs)", "self.core.tick(now)", "self.runs.clear()", "self.held.pop(key, None)",
])
def test_core_write_check_allows(source):
    assert core_writes(source) == []


@pytest.mark.parametrize("source", [
    "from services.executor import shell", "import services.dispatcher.shell",
    "from services.dispatcher.shell import DispatcherShell", "from ...services.raft import shell as raft_shell",
])
def test_shell_import_check_catches(source):
    assert shell_imports(source, "scripts.sim.scheduler")


def test_shell_import_check_allows_cores():
    source = "from services.executor import core\nfrom services.raft.fsm import StateMachine\n"
    assert shell_imports(source, "scripts.sim.scheduler") == []


# The repository explains itself: code cites the README's sections, never a document it does not
# hold. A section sign is a paper's (Raft's, SWIM's, Lifeguard's) only in a file that names one.

# Each name has one letter in brackets, so that the pattern does not match its own line.
OUTSIDE_DOCUMENTS = re.compile(r"(?-i:\b(DESIG[N]|STYL[E])\b)|\b(design|style)\.md\b|\.\./shared\b|/wor[k]/shared\b|"
                               r"\bshare[d]/reference\b|\bdesign[ ]contract\b|\bhouse[ ]style\b", re.IGNORECASE)
PAPERS = re.compile(r"raft|paper|dissertation|swim|lifeguard", re.IGNORECASE)
EXPLAINED = ("services", "common", "scripts", "tests", "conf")


def outside_references(text):
    """(line, text) of each line that cites a document outside the repository."""
    lines = text.splitlines()
    found = [(n, line.strip()) for n, line in enumerate(lines, 1) if OUTSIDE_DOCUMENTS.search(line)]
    if not PAPERS.search(text):
        found += [(n, line.strip()) for n, line in enumerate(lines, 1) if "\u00a7" in line]
    return sorted(set(found))


def explained_files():
    return sorted(p for folder in EXPLAINED for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".db"))


@pytest.mark.parametrize("path", explained_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_cites_a_document_outside_the_repository(path):
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return  # not text: it cites nothing
    assert outside_references(text) == []


# The examples are spelled in pieces ("_" dropped, \u00a7 for the section sign) so that this
# file, which the check reads too, cites nothing itself.
@pytest.mark.parametrize("text", [
    "socket options are set here (STY_LE \u00a73)", "the layout rules of DES_IGN \u00a76",
    "see DES_IGN.md", "as in sty_le.md", "as ../sha_red/reference has it", "/work/sha_red/DES_IGN.md",
    "(sha_red/reference/dkron-notes)", "per the des_ign contract", "the hou_se style says so",
    "every core is pure (\u00a71)",
])
def test_outside_reference_check_catches(text):
    assert outside_references(text.replace("_", ""))


@pytest.mark.parametrize("text", [
    "# Raft \u00a75.4.2: only an entry of the current term", "SWIM \u00a74.1 piggybacking",
    "\"\"\"Lifeguard \u00a7IV.A\"\"\"\n# \u00a7IV.B: the timer shrinks", "the layout rules (README, Developing)",
    "one node is shared per test module", "STYLE_SHEET = 1", "the designed style of the table",
])
def test_outside_reference_check_allows(text):
    assert outside_references(text) == []
