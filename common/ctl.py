"""pykronctl: the terminal face of pykron, on the same ZeroMQ client library as the api.
Tables by default, Dkron's JSON with --json; its grammar, command lines and exit codes are in
common/ctl_usage.py."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import sys
import time

from docopt import DocoptExit, docopt

from common import access, backup, errors, models, preview, shell_syntax
from common.ctl_acl import AclCommands
from common.ctl_usage import DENIED, FAILED, NOT_FOUND, OK, UNAVAILABLE, USAGE, USAGE_ERROR
from common.loop import now_ms
from common.terminal import Printer, Progress, confirm, read_jobs, write_jobs

VERBS = ("acl", "audit", "status", "jobs", "job", "apply", "delete", "run", "kill", "toggle", "executions", "tail", "busy", "members",
         "leader", "leave", "pause", "unpause", "settings", "export", "import", "keyring", "keygen", "keys", "raft",
         "schedule", "snapshot")
JOB_COLUMNS = ("name", "schedule", "status", "last_success", "next", "success_count", "error_count", "disabled")
EXECUTION_COLUMNS = ("id", "node_name", "status", "started_at", "finished_at", "exit_code", "output")


class Ctl(AclCommands):
    def __init__(self, args, out=sys.stdout):
        self.args = args
        for option in ("--key", "--server-key", "--token"):
            if args.get(option, "").startswith("$PYKRON_"):
                args[option] = None  # docopt shows where the default comes from; access.connect reads it
        self.client = access.connect(args, _positive(args["--timeout-ms"], "--timeout-ms"))
        self.json, self.stale = args["--json"], args["--stale"]
        self.p = Printer(out, self.json)

    def run(self):
        verb = next((v for v in VERBS if self.args[v]), None)
        if verb is None:
            raise DocoptExit()
        return getattr(self, "do_" + verb)()

    # -- the node and the cluster ------------------------------------------------------------

    def do_status(self):
        """This node and what it sees of the cluster, in the shape of Dkron's GET /v1/."""
        info = self.client.node_info(refresh=True)
        try:
            members = self.client.members()
        except errors.Error:
            members = []  # gossip restarting: Raft's view still says something
        me = next((x for x in members if x["name"] == info["node"]), None)
        leader = info.get("leader") or {}
        counts = {s: sum(x["status"] == s for x in members) for s in ("alive", "failed", "left")}
        doc = {"agent": {"name": info["node"], "version": _version(), "role": info["role"]},
               "serf": {"members": str(len(members)), **{k: str(v) for k, v in counts.items()},
                        "leader": leader.get("node", ""), "term": str(leader.get("term", 0))},
               "tags": me["tags"] if me else {}}
        if self.json:
            return self.p.dump(doc)
        self.p.show({"node": info["node"], "role": info["role"], "version": doc["agent"]["version"],
                     "leader": leader.get("node") or "none", "term": leader.get("term", 0),
                     "members": f"{len(members)} ({counts['alive']} alive, {counts['failed']} failed, "
                                f"{counts['left']} left)", "replicas": _replicas(info.get("state_check")),
                     "tags": doc["tags"]})

    def do_members(self):
        rows = [{"name": x["name"], "addr": f"{x['addr']}:{x['port']}", "role": x["role"], "status": x["status"],
                 "executors": ",".join(x["executors"]), "version": x["tags"].get("version", ""),
                 "protocol": "{}..{}".format(*x.get("protocol", (1, 1))),
                 "tags": ",".join(f"{k}={v}" for k, v in sorted(x["tags"].items()))} for x in self.client.members()]
        self.p.table(rows, ("name", "addr", "role", "status", "version", "protocol", "executors", "tags"))

    def do_leader(self):
        leader = self.client.leader()
        self.p.show({"name": leader["node"], "term": leader["term"], "ready": leader["ready"],
                     "raft": leader["addrs"].get("raft", "")})

    def do_leave(self):
        """The server this talks to leaves: asked first, since it may be another host's, and a
        server that left rejoins only when restarted."""
        info = self.client.node_info()
        me = info["node"]
        if not self.args["--yes"]:
            confirm(f"{me} ({info['role']}, {info['addrs'].get('raft', 'this host')}) will leave the cluster",
                    "leave")
        members = self.client.leave()
        self.p.print(json.dumps(members, indent=2) if self.json else f"{me} is leaving the cluster")

    def do_busy(self):
        rows = [models.execution_to_dkron(x) for x in sorted(self.client.busy(), key=lambda x: x["group"])]
        self.p.table(rows, ("id", "job_name", "node_name", "status", "started_at", "output"))

    def do_pause(self):
        self.client.put_setting("paused", "true")
        self.p.show({"paused": True}) if self.json else self.p.print("paused: new job submissions are refused")

    def do_unpause(self):
        self.client.put_setting("paused", "false")
        self.p.show({"paused": False}) if self.json else self.p.print("unpaused: new job submissions are taken")

    def do_settings(self):
        key, value = self.args["KEY"], self.args["VALUE"]
        if value is not None:
            self.client.put_setting(key, value)
        settings = self.client.settings(stale=self.stale)
        if key is None:
            return self.p.show(settings)
        if key not in settings:
            raise errors.NotFound(f"no setting {key!r} (settings: {', '.join(sorted(settings))})")
        self.p.dump({key: settings[key]}) if self.json else self.p.print(settings[key])

    # -- jobs ------------------------------------------------------------------------------

    def do_jobs(self):
        wanted = [_tag(t) for t in self.args["--tag"]]
        jobs = [models.job_to_dkron(j, _next(j)) for j in self.client.jobs(stale=self.stale)
                if all((j["tags"].get(k) or "").partition(":")[0] == v for k, v in wanted)]
        self.p.table(jobs if self.json else [_human(j) for j in jobs], JOB_COLUMNS)

    def do_job(self):
        job = self.client.job(self.args["NAME"], stale=self.stale, secrets=self.args["--secrets"])
        doc = models.job_to_dkron(job, _next(job))
        self.p.show(doc if self.json else _human(doc))

    def do_apply(self):
        docs = [doc for path in self.args["FILE"] for doc in read_jobs(path)]  # every file read before any write
        self.refuse_when_paused()
        for doc in docs:
            job = self.client.put_job(doc)
            self.p.print(json.dumps(models.job_to_dkron(job, _next(job))) if self.json else f"applied {job['name']}")
            _warn_shell_syntax(doc)

    def do_delete(self):
        job = self.client.delete_job(self.args["NAME"])
        self.p.print(json.dumps(models.job_to_dkron(job)) if self.json else f"deleted {job['name']}")

    def do_toggle(self):
        job = self.client.job(self.args["NAME"])
        doc = models.job_to_dkron(job)
        doc["disabled"] = not doc["disabled"]
        job = self.client.put_job(doc)
        if self.json:
            return self.p.dump(models.job_to_dkron(job, _next(job)))
        self.p.print(f"{job['name']} {'disabled' if job['disabled'] else 'enabled'}")

    def do_export(self):
        jobs = sorted(self.client.jobs(stale=self.stale), key=lambda j: j["name"])
        path = self.args["FILE"][0]  # docopt gathers FILE from every pattern into one list
        write_jobs(path, [models.job_to_dkron(j) for j in jobs])
        if path != "-":
            print(f"pykronctl: exported {len(jobs)} jobs to {path}", file=sys.stderr)

    def do_import(self):
        """Dkron's restore: every job created or replaced, parents first; 2 if any was refused."""
        docs = read_jobs(self.args["FILE"][0])
        results = self.client.restore(docs)
        for name, error in results:
            line = f"success create {name}" if error is None else f"fail create {name}: {error}"
            self.p.print(json.dumps({"job": name, "error": error}) if self.json else line)
        for doc in docs:
            _warn_shell_syntax(doc)
        return USAGE_ERROR if any(error for _, error in results) else OK

    def refuse_when_paused(self):
        if self.client.settings().get("paused") == "true":
            raise errors.Unavailable("new job submissions are paused (pykronctl unpause resumes them)")

    # -- runs ------------------------------------------------------------------------------

    def do_run(self):
        name = self.args["NAME"]
        executions = self.client.run(name).executions
        if not self.args["--wait"]:
            return self.p.table([models.execution_to_dkron(x) for x in executions], ("id", "node_name", "status"))
        return self.follow(name, executions)

    def do_kill(self):
        self.client.job(self.args["NAME"])  # an unknown job is "not found", not "nothing running"
        done = self.client.kill(self.args["NAME"], self.args["ID"])
        if self.json:
            return self.p.dump(done)
        for execution_id in done.get("killed", []):
            self.p.print(f"killing {execution_id}")
        if not done.get("killed"):
            self.p.print(f"nothing of {self.args['NAME']} is running")

    def do_tail(self):
        wait_s = _positive(self.args["--wait-start"], "--wait-start")
        name = self.args["NAME"]
        self.client.job(name)  # a typo gets "not found" now, not a minute of waiting
        return self.follow(name, None, wait_ms=wait_s * 1000)

    def do_executions(self):
        limit = _positive(self.args["--limit"], "--limit")
        rows = [models.execution_to_dkron(x) for x in self.client.executions(self.args["NAME"], limit, self.stale)]
        self.p.table(rows, EXECUTION_COLUMNS)

    def follow(self, name, executions, wait_ms=60_000):
        """Print output as it is written; exit 1 if any followed execution did not succeed."""
        outcome, seen = OK, 0
        what = f"waiting for a run of {name}" if executions is None else (
            f"running {name}: " + ", ".join(f"{x['id']} on {x['node']}" for x in executions))
        progress = Progress(what)

        def waiting():  # shown until the first output or result arrives
            progress.__enter__()

        if executions is not None:
            waiting()
        for event in self.client.tail(name, wait_ms=wait_ms, executions=executions, on_wait=waiting):
            progress.done()
            if event[0] == "output":
                self.p.output(event[2])
                continue
            seen += 1
            execution = event[1]
            if not execution["success"]:
                outcome = FAILED
            if self.json:
                self.p.print(json.dumps({"finished": models.execution_to_dkron(execution)}))
            print(f"pykronctl: {execution['id']} on {execution['node']}: {execution['status']}"
                  + (f" (exit {execution['exit_code']})" if execution.get("exit_code") is not None else "")
                  + (f": {execution['reason']}" if execution.get("reason") else ""), file=sys.stderr)
        progress.done()
        if not seen:
            print(f"pykronctl: no execution of {name} started", file=sys.stderr)
            return UNAVAILABLE if executions is None else FAILED
        return outcome

    def do_snapshot(self):
        """save: a consistent copy of the replicated state into FILE (0600: it holds token
        hashes); inspect: what a saved FILE holds (counts only; no secret is shown), here."""
        path = self.args["FILE"][0]
        if self.args["inspect"]:
            doc = backup.inspect(path)
            return self.p.dump(doc) if self.json else self.p.show(
                {**{k: v for k, v in doc.items() if k != "counts"}, **doc["counts"]})
        if self.args["restore"]:
            header = self.client.snapshot_restore(path, force=self.args["--force"])
            print(f"pykronctl: restored the state saved at index {header['index']} of cluster {header['cluster']}",
                  file=sys.stderr)
            return None
        header = self.client.snapshot_save(path)
        print(f"pykronctl: saved the state at index {header['index']} (term {header['term']}, "
              f"{header['size']} bytes) to {path}", file=sys.stderr)

    def do_schedule(self):
        """The preview GET /v1/schedule answers, from the same function, computed here: it needs
        no cluster, so the cluster's default_timezone is not read (--tz gives the zone)."""
        doc = preview.preview(" ".join(self.args["EXPR"]), timezone=self.args["--tz"] or "",
                              name=self.args["--name"] or "", count=_positive(self.args["--count"], "--count"),
                              now=now_ms())
        if self.json:
            return self.p.dump(doc)
        for line in (doc["description"], doc["daylight_saving"]):  # whole sentences: a table would cut them
            if line:
                self.p.print(line)
        rows = [{"local": f"{t['local'][:19].replace('T', ' ')} {t['zone']}", "utc": t["at"]} for t in doc["next"]]
        self.p.table(rows, ("local", "utc")) if rows else self.p.print("no fire times to come")

    # -- raft and gossip -------------------------------------------------------------------

    def do_raft(self):
        if self.args["list-peers"]:
            peers = self.client.raft_peers()["peers"]
            rows = [{"id": p["id"], "role": p["role"], "leader": p["leader"],
                     "address": (p.get("addrs") or {}).get("peer", "-"), "match": p.get("match"),
                     "protocol": "{}..{}".format(*p.get("protocol", (1, 1)))} for p in peers]
            return self.p.table(rows, ("id", "role", "leader", "address", "match", "protocol"))
        if self.args["remove-peer"]:
            self.client.raft_remove_peer(self.args["ID"])
            return self.p.print(f"removed {self.args['ID']}")
        done = self.client.raft_transfer(self.args["ID"] or "")
        self.p.print(f"leadership moving to {done['to']}")

    def do_keygen(self):
        """A new gossip key for [security] gossip_key or `keyring --install` (AES-256, base64)."""
        self.p.print(base64.b64encode(os.urandom(32)).decode())

    def do_keys(self):
        args = self.args
        if args["new"]:
            path = args["FILE"][0]  # docopt gathers FILE from every pattern into one list
            made = access.new_client_key(path)
            return self.p.show({"file": path, "public": made.public.decode(), "id": made.id})
        if args["show"]:
            conf, pair = access.this_node_key()
            return self.p.show({"node": conf.node.name, "public": pair.public.decode(), "id": pair.id,
                                "server": f"{conf.node.advertise}:{conf.raft.client_port}"})
        if args["list"]:
            rows = self.client.keys_list(self.stale)
            return self.p.dump(rows) if self.json else self.p.table(rows, ("name", "kind", "status", "id", "key"))
        if args["reject"]:
            done = self.client.key_reject(args["NAME"], args["--public"] or "")
        elif args["add"]:
            done = self.client.key_accept(args["NAME"], args["KEY"], "client")
        else:
            done = self.client.key_accept(args["NAME"], args["--public"] or "", args["--kind"] or "")
        self.p.show(done)

    def do_keyring(self):
        verb = next((v for v in ("install", "use", "remove") if self.args[f"--{v}"]), "list")
        done = self.client.keyring(verb, self.args[f"--{verb}"] or "")
        if self.json:
            self.p.dump(done)
        elif verb == "list":
            rows = [{"key": k, "members": f"{n}/{done['members']}", "primary": done["primary"].get(k, 0)}
                    for k, n in sorted(done["keys"].items())]
            self.p.table(rows, ("key", "members", "primary"))
        else:
            self.p.print(f"{verb}: done on {done['responded']}/{done['members']} members")
        for name, why in sorted(done["failed"].items()):
            print(f"pykronctl: {name}: {why}", file=sys.stderr)
        return UNAVAILABLE if done["failed"] else OK


def _next(job):
    try:
        return models.next_fire(job, now_ms())
    except errors.BadRequest:
        return None


def _warn_shell_syntax(doc):
    """Stored as written (Dkron takes such a job too), but told: its runs would fail or differ."""
    text = shell_syntax.warning(doc)
    if text:
        print(f"pykronctl: warning: job {doc.get('name')}: {text}", file=sys.stderr)


def _human(job):
    """A job as a table shows it: a status never set (Dkron's "") reads "never"."""
    return {**job, "status": job["status"] or "never"}


def _tag(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise errors.BadRequest(f"--tag: expected K=V, got {text!r}")
    return key, value


def _replicas(check):
    """The newest snapshot point the replicas compared, as an operator reads it."""
    if not check:
        return "not compared yet"
    if check["agree"]:
        return f"agree at index {check['index']} ({', '.join(sorted(check['reports']))})"
    return (f"DIFFER at index {check['index']}: " + ", ".join(f"{s} {d[:12]}" for s, d in sorted(check["reports"].items()))
            + " (see the raft log; recover the odd one with `pykron recover-replica`)")


def _version():
    try:
        return importlib.metadata.version("pykron")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _positive(text, flag):
    if not str(text).isdigit() or int(text) <= 0:
        raise errors.BadRequest(f"{flag}: expected a positive whole number, got {text!r}")
    return int(text)


def main(argv=None):
    try:
        args = docopt(USAGE, argv=argv)
    except DocoptExit as exc:
        print(exc, file=sys.stderr)
        return USAGE_ERROR
    started = time.monotonic()
    try:
        return Ctl(args).run() or OK
    except (errors.BadRequest, errors.Conflict) as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return USAGE_ERROR
    except errors.NotFound as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return NOT_FOUND
    except (errors.Unauthenticated, errors.Forbidden) as err:
        print(f"pykronctl: {err}", file=sys.stderr)
        return DENIED
    except errors.Error as err:
        print(f"pykronctl: cluster unavailable after {time.monotonic() - started:.1f}s: {err}", file=sys.stderr)
        return UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
