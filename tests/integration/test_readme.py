"""The README as a test: its contents list its sections in the operators' order, its multi-host
configuration blocks are the files the hosts test starts, and every shell block it offers to paste
runs: ```sh on a node started by scripts/run, ```sh cluster on a server of a launched cluster."""

# How a block is run: with `bash -e -o pipefail` in the node's directory (its `node.toml` there,
# PYKRON_CONF naming it, HOME there too), `.venv/bin` on PATH, `localhost:8080` meaning that node's
# API; in the README's order but for the block that bootstraps the ACL, which runs last. A block
# that cannot run is named in NOT_RUN with the reason. ```text, ```toml, ```json and ```ini blocks
# are not run, and none may begin with a command.

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.cluster import PORT_KEYS, Cluster, free_ports, kill_quietly, pid_alive, process_tree, to_toml, wait_until

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "conf" / "examples"
# The README's top-level sections, in the order its readers need them.
SECTIONS = ["Contents", "Quick start", "Coming from Dkron", "Running a cluster", "Ports", "Security", "Operations",
            "Monitoring and troubleshooting", "Jobs reference", "API, UI and CLI reference", "How it works",
            "Developing"]
SHELL, CLUSTER = "sh", "sh cluster"
COMMAND = re.compile(r"^(curl|pykronctl|pykron|scripts/|\.venv/)")
# Blocks not run here, by their first line, each with why and where it is checked instead.
NOT_RUN = {
    "scripts/run": "stays in the foreground: this test starts its node with it and stops it with Ctrl-C's signal",
    "pykron recover-replica -c node.toml": "needs a server of three whose Raft files are damaged: "
                                           "tests/cluster/test_replica_repair.py",
}
ACL_ON = "pykronctl acl bootstrap"


def blocks():
    """(info string, first line number, text) of every fenced block."""
    found, lines, i = [], README.read_text().splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^(```+)(.*)$", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1)))
            found.append((fence.group(2).strip(), i + 1, "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return found


def headings(level):
    text = re.sub(r"^```.*?^```", "", README.read_text(), flags=re.S | re.M)
    return re.findall(rf"^{'#' * level} (.+)$", text, flags=re.M)


def anchor(title):
    """GitHub's anchor of a heading."""
    return "#" + re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_the_sections_come_in_the_operators_order_and_the_contents_list_each_one():
    assert headings(2) == SECTIONS
    contents = README.read_text().split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[(.+?)\]\((#.+?)\)$", contents, flags=re.M)
    assert [title for title, _ in listed] == SECTIONS[1:]
    assert all(link == anchor(title) for title, link in listed), listed


def test_the_multi_host_examples_are_the_files_the_hosts_test_starts():
    files = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.toml"))}
    assert set(files) == {"server.toml", "agent.toml"}
    tomls = [text for info, _, text in blocks() if info == "toml"]
    for name, text in files.items():
        assert tomls.count(text) == 1, f"the README shows conf/examples/{name} once, as it is"
    # tests/cluster/test_hosts.py checks that each of its nodes runs the file of its role.


def test_no_command_hides_in_a_block_that_is_not_run():
    hidden = [(info, line) for info, line, text in blocks()
              if info not in (SHELL, CLUSTER) and COMMAND.match(text.lstrip())]
    assert not hidden, f"blocks that start with a command must be ```sh or ```sh cluster (run here): {hidden}"
    assert all(info for info, _, _ in blocks()), "every block says its kind"


def test_every_block_not_run_is_still_in_the_readme():
    firsts = {text.splitlines()[0] for info, _, text in blocks() if info in (SHELL, CLUSTER)}
    assert set(NOT_RUN) <= firsts


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One node started as the quick start says: scripts/run (which installs, here already done)
    stays in the foreground, serves the API, and Ctrl-C's signal stops every service."""
    home = tmp_path_factory.mktemp("readme")
    sections = {"node": {"name": "readme", "data_dir": str(home / "data"), "run_dir": str(home / "run")}}
    for (section, key), port in zip(PORT_KEYS, free_ports(len(PORT_KEYS))):
        sections.setdefault(section, {})[key] = port
    (home / "node.toml").write_text(to_toml(sections))
    api = f"127.0.0.1:{sections['api']['port']}"
    run = subprocess.Popen([str(ROOT / "scripts" / "run"), "-c", str(home / "node.toml")], cwd=ROOT,
                           start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: _health(api), timeout=60, what="scripts/run serving /health")
        assert run.poll() is None, "scripts/run stays in the foreground"
        assert requests.get(f"http://{api}/v1/members", timeout=10).json()[0]["Name"] == "readme"
        yield home, api
        tree = process_tree(run.pid)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert run.wait(timeout=30) in (0, -signal.SIGINT, 130)
        wait_until(lambda: not any(pid_alive(p) for p in tree), timeout=20, what="every service stopped")
    finally:
        if run.poll() is None:
            for pid in process_tree(run.pid):
                kill_quietly(pid, signal.SIGKILL)
        print(run.stdout.read(), file=sys.stderr)


def _health(api):
    try:
        return requests.get(f"http://{api}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_every_shell_block_runs_against_a_node(node):
    home, api = node
    assert run_blocks(SHELL, home, api) >= 10


def test_every_cluster_block_runs_on_a_server_of_a_cluster():
    """Three servers and an agent tagged role=web, secure, the agent's key left for the README's
    commands to accept, as on hosts of their own (but on loopback)."""
    with Cluster(servers=3, agents=1, secure=True, accept_agents=False,
                 node_conf={"a1": {"node": {"tags": {"role": "web"}}}}) as cluster:
        s1 = cluster.nodes["s1"]

        def settle(first):
            # An agent accepted is let in by each server's gate within a second or two, and its
            # executor then follows the leader: what an operator waits out before a first run.
            if first.startswith("pykronctl keys list"):
                cluster.wait_targets(cluster.leader())

        assert run_blocks(CLUSTER, Path(s1.conf_path).parent, s1.api.split("://")[1], settle) >= 4
        done = [x for x in cluster.client().executions("where") if x["finished_at"]]
        assert [(x["node"], x["status"]) for x in done] == [("a1", "success")]


def run_blocks(kind, home, api, settle=lambda first: None):
    """Run the README's blocks of this kind in `home` (the node's directory), calling settle with
    each block's first line after it ran; how many ran."""
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
           "PYKRON_CONF": str(home / "node.toml"), "HOME": str(home)}
    for key in ("PYKRON_SERVER", "PYKRON_TOKEN", "PYKRON_KEY", "PYKRON_SERVER_KEY"):
        env.pop(key, None)
    ran = 0
    shell = [(line, text) for info, line, text in blocks() if info == kind and text.splitlines()[0] not in NOT_RUN]
    # The block that bootstraps the ACL changes the node for good (curl then needs a token): it runs last.
    shell.sort(key=lambda block: block[1].startswith(ACL_ON))
    for line, text in shell:
        first = text.splitlines()[0]
        script = text.replace("localhost:8080", api)
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=home, env=env, timeout=90,
                              capture_output=True, text=True)
        said = f"README.md line {line}:\n{text}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert done.returncode == 0, said
        settle(first)
        ran += 1
    return ran


CITATION = re.compile(r"README[ ,(]+([^)\"'\n]+)\)")


def test_every_section_the_code_cites_exists():
    """Code cites the README's sections as `(README, Developing: The wire)`: each one named is a heading."""
    titles = set(headings(2)) | set(headings(3))
    cited = {}
    for folder in ("services", "common", "scripts", "tests", "conf"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".toml", ".js", ".tmpl") and path != Path(__file__):
                for found in CITATION.finditer(path.read_text(errors="replace")):
                    for name in re.split(r"[:,]\s*", found.group(1)):
                        cited.setdefault(name.strip(), []).append(str(path.relative_to(ROOT)))
    assert cited, "the code cites the README somewhere"
    assert {name: where for name, where in cited.items() if name not in titles} == {}
