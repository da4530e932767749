"""The README's first command: scripts/run installs (already done here), starts one node in
the foreground under supervisord, serves the API, and Ctrl-C stops every service."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from scripts.cluster import PORT_KEYS, free_ports, kill_quietly, pid_alive, process_tree, to_toml

ROOT = Path(__file__).resolve().parents[2]


def test_scripts_run_serves_the_api_and_ctrl_c_stops_everything(tmp_path, eventually):
    sections = {"node": {"name": "solo", "data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")}}
    for (section, key), port in zip(PORT_KEYS, free_ports(len(PORT_KEYS))):
        sections.setdefault(section, {})[key] = port
    conf = tmp_path / "node.toml"
    conf.write_text(to_toml(sections))
    api = f"http://127.0.0.1:{sections['api']['port']}"
    run = subprocess.Popen([str(ROOT / "scripts" / "run"), "-c", str(conf)], cwd=ROOT, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        eventually(lambda: _health(api), timeout=60, what="scripts/run serving /health")
        assert requests.get(f"{api}/v1/members", timeout=10).json()[0]["Name"] == "solo"
        tree = process_tree(run.pid)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert run.wait(timeout=30) == 0 or run.returncode in (-signal.SIGINT, 130)
        eventually(lambda: not any(pid_alive(p) for p in tree), timeout=20, what="every service stopped")
    finally:
        if run.poll() is None:  # the test failed half way: leave no service behind
            for pid in process_tree(run.pid):
                kill_quietly(pid, signal.SIGKILL)
        print(run.stdout.read(), file=sys.stderr)


def _health(api):
    try:
        return requests.get(f"{api}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False
