"""pykronctl: the terminal face of pykron, on the same ZeroMQ client library as the api.
Tables by default, Dkron's JSON with --json. Exit codes: 0 ok, 1 the job failed, 2 usage or
bad input, 3 not found, 4 cluster unavailable."""

from __future__ import annotations

import base64
import json
import os
import sys
import time

import yaml
from docopt import DocoptExit, docopt

from common import errors, models
from common.client import Client
from common.loop import now_ms

USAGE = """pykronctl: manage a pykron cluster.

Usage:
  pykronctl [options] jobs
  pykronctl [options] job NAME
  pykronctl [options] apply FILE...
  pykronctl [options] run NAME [--wait]
  pykronctl [options] delete NAME
  pykronctl [options] executions NAME [--limit N]
  pykronctl [options] members
  pykronctl [options] leave
  pykronctl [options] keyring (--list | --install=KEY | --use=KEY | --remove=KEY)
  pykronctl keygen
  pykronctl [options] leader
  pykronctl [options] tail NAME [--wait-start S]
  pykronctl [options] raft list-peers
  pykronctl [options] raft remove-peer ID
  pykronctl [options] raft transfer-leader [ID]
  pykronctl (-h | --help)

Options:
  -s ADDR, --server ADDR  Server: HOST, HOST:PORT (its raft client port) or a tcp:// endpoint
                          [default: $PYKRON_SERVER, else localhost].
  --json                  Print JSON (Dkron's shapes) instead of tables.
  --stale                 Read the server's local copy without asking the leader.
  --limit N               Most executions to show [default: 20].
  --wait                  Follow the run's output live; exit with its outcome.
  --wait-start S          How long tail waits for a run to start [default: 60].
  --timeout-ms MS         How long to wait for each reply [default: 5000].
  --list                  keyring: the gossip keys every member holds, and how many use each.
  --install=KEY           keyring: add KEY on every member (rotation step 1 of 3).
  --use=KEY               keyring: seal with KEY on every member (step 2; it must be installed).
  --remove=KEY            keyring: drop KEY on every member (step 3; not the one in use).
"""

OK, FAILED, USAGE_ERROR, NOT_FOUND, UNAVAILABLE = 0, 1, 2, 3, 4


class Ctl:
    def __init__(self, args, out=sys.stdout):
        self.args, self.out = args, out
        server = args["--server"]
        if server in (None, "$PYKRON_SERVER, else localhost"):
            server = os.environ.get("PYKRON_SERVER", "localhost")
        self.client = Client(server, timeout_ms=_positive(args["--timeout-ms"], "--timeout-ms"), sender="pykronctl")
        self.json = args["--json"]
        self.stale = args["--stale"]

    def run(self):
        if self.args["raft"]:
            return self.do_raft()
        for verb in ("jobs", "job", "apply", "run", "delete", "executions", "members", "leader", "tail", "leave",
                     "keyring", "keygen"):
            if self.args[verb]:
                return getattr(self, "do_" + verb)()
        raise DocoptExit()

    # -- verbs -----------------------------------------------------------------------------

    def do_jobs(self):
        jobs = [models.job_to_dkron(j, _next(j)) for j in self.client.jobs(stale=self.stale)]
        self.table(jobs, ("name", "schedule", "status", "last_success", "next", "success_count", "error_count",
                          "disabled"))

    def do_job(self):
        job = self.client.job(self.args["NAME"], stale=self.stale)
        self.show(models.job_to_dkron(job, _next(job)))

    def do_apply(self):
        for path in self.args["FILE"]:
            for doc in _read_jobs(path):
                job = self.client.put_job(doc)
                if self.json:
                    self.print(json.dumps(models.job_to_dkron(job, _next(job))))
                else:
                    self.print(f"applied {job['name']}")

    def do_delete(self):
        job = self.client.delete_job(self.args["NAME"])
        self.print(json.dumps(models.job_to_dkron(job)) if self.json else f"deleted {job['name']}")

    def do_run(self):
        name = self.args["NAME"]
        executions = self.client.run(name)
        if not self.args["--wait"]:
            rows = [models.execution_to_dkron(x) for x in executions]
            return self.table(rows, ("id", "node_name", "status"))
        return self.follow(name, executions)

    def do_tail(self):
        wait_s = _positive(self.args["--wait-start"], "--wait-start")
        name = self.args["NAME"]
        self.client.job(name)  # a typo gets "not found" now, not a minute of waiting
        return self.follow(name, None, wait_ms=wait_s * 1000)

    def do_executions(self):
        limit = _positive(self.args["--limit"], "--limit")
        rows = [models.execution_to_dkron(x) for x in self.client.executions(self.args["NAME"], limit, self.stale)]
        self.table(rows, ("id", "node_name", "status", "started_at", "finished_at", "exit_code", "output"))

    def do_members(self):
        rows = [{"name": x["name"], "addr": f"{x['addr']}:{x['port']}", "role": x["role"], "status": x["status"],
                 "executors": ",".join(x["executors"]),
                 "tags": ",".join(f"{k}={v}" for k, v in sorted(x["tags"].items()))} for x in self.client.members()]
        self.table(rows, ("name", "addr", "role", "status", "executors", "tags"))

    def do_leave(self):
        members = self.client.leave()
        me = self.client.node_info()["node"]
        self.print(json.dumps(members, indent=2) if self.json else f"{me} is leaving the cluster")

    def do_keygen(self):
        """A new gossip key for [security] gossip_key or `keyring --install` (AES-256, base64)."""
        self.print(base64.b64encode(os.urandom(32)).decode())

    def do_keyring(self):
        verb = next((v for v in ("install", "use", "remove") if self.args[f"--{v}"]), "list")
        done = self.client.keyring(verb, self.args[f"--{verb}"] or "")
        if self.json:
            self.print(json.dumps(done, indent=2))
        elif verb == "list":
            rows = [{"key": k, "members": f"{n}/{done['members']}", "primary": done["primary"].get(k, 0)}
                    for k, n in sorted(done["keys"].items())]
            self.table(rows, ("key", "members", "primary"))
        else:
            self.print(f"{verb}: done on {done['responded']}/{done['members']} members")
        for name, why in sorted(done["failed"].items()):
            print(f"pykronctl: {name}: {why}", file=sys.stderr)
        return UNAVAILABLE if done["failed"] else OK

    def do_leader(self):
        leader = self.client.leader()
        self.show({"name": leader["node"], "term": leader["term"], "ready": leader["ready"],
                   "raft": leader["addrs"].get("raft", "")})

    def do_raft(self):
        if self.args["list-peers"]:
            peers = self.client.raft_peers()["peers"]
            rows = [{"id": p["id"], "role": p["role"], "leader": p["leader"],
                     "address": (p.get("addrs") or {}).get("peer", "-"), "match": p.get("match")} for p in peers]
            return self.table(rows, ("id", "role", "leader", "address", "match"))
        if self.args["remove-peer"]:
            self.client.raft_remove_peer(self.args["ID"])
            return self.print(f"removed {self.args['ID']}")
        done = self.client.raft_transfer(self.args["ID"] or "")
        self.print(f"leadership moving to {done['to']}")

    # -- output ----------------------------------------------------------------------------

    def follow(self, name, executions, wait_ms=60_000):
        """Print output as it is written; exit 1 if any followed execution did not succeed."""
        outcome, seen = OK, 0
        waiting = lambda: print(f"pykronctl: waiting for a run of {name}", file=sys.stderr, flush=True)  # noqa: E731
        for event in self.client.tail(name, wait_ms=wait_ms, executions=executions, on_wait=waiting):
            if event[0] == "output":
                self.out.buffer.write(event[2]) if hasattr(self.out, "buffer") else self.out.write(event[2].decode())
                self.out.flush()
            else:
                seen += 1
                execution = event[1]
                if not execution["success"]:
                    outcome = FAILED
                print(f"pykronctl: {execution['id']} on {execution['node']}: {execution['status']}"
                      + (f" (exit {execution['exit_code']})" if execution.get("exit_code") is not None else "")
                      + (f": {execution['reason']}" if execution.get("reason") else ""), file=sys.stderr)
        if not seen:
            print(f"pykronctl: no execution of {name} started", file=sys.stderr)
            return UNAVAILABLE if executions is None else FAILED
        return outcome

    def show(self, doc):
        if self.json:
            return self.print(json.dumps(doc, indent=2))
        width = max(len(k) for k in doc)
        for key, value in doc.items():
            self.print(f"{key:<{width}}  {_cell(value)}")

    def table(self, rows, columns):
        if self.json:
            return self.print(json.dumps(rows, indent=2))
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        self.print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in cells:
            self.print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())

    def print(self, text):
        print(text, file=self.out)


def _next(job):
    try:
        return models.next_fire(job, now_ms())
    except errors.BadRequest:
        return None


def _cell(value):
    if value is None:
        return "-"
    text = " ".join(str(value).split()) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive(text, flag):
    if not str(text).isdigit() or int(text) <= 0:
        raise errors.BadRequest(f"{flag}: expected a positive whole number, got {text!r}")
    return int(text)


def _read_jobs(path):
    """A JSON (or YAML) file holding one job or a list of jobs."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        raise errors.BadRequest(f"{path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        doc = _yaml(text, path, exc)
    docs = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(d, dict) for d in docs):
        raise errors.BadRequest(f"{path}: expected a job object or a list of job objects")
    return docs


def _yaml(text, path, json_error):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"{path}: neither valid JSON ({json_error}) nor YAML ({exc})") from None


def main(argv=None):
    try:
        args = docopt(USAGE, argv=argv)
    except DocoptExit as exc:
        print(exc, file=sys.stderr)
        return USAGE_ERROR
    started = time.monotonic()
    try:
        return Ctl(args).run() or OK
    except errors.BadRequest as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return USAGE_ERROR
    except errors.NotFound as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return NOT_FOUND
    except errors.Conflict as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return USAGE_ERROR
    except errors.Error as err:
        print(f"pykronctl: cluster unavailable after {time.monotonic() - started:.1f}s: {err}", file=sys.stderr)
        return UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
