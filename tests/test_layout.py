"""The layout rules of DESIGN §6 and STYLE §1, read from the source with ast: services meet only
over the wire (no service imports another), common/ imports no service, and every core.py is
pure (no sockets, clock, randomness, disk, processes or threads)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"zmq", "socket", "time", "random", "os", "sqlite3", "peewee", "subprocess", "threading"}


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
