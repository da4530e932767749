"""pykronctl's ACL verbs (a part of common/ctl.Ctl, kept apart for size): bootstrap, tokens and
policies, in the shapes of the HTTP API (Dkron's policy, Consul's token) with --json."""

from __future__ import annotations

import json
import sys

from common import acl, errors
from common.loop import now_ms
from common.terminal import read_text

TOKEN_COLUMNS = ("AccessorID", "Type", "Policies", "Description", "ExpirationTime")


class AclCommands:
    """Mixed into Ctl: uses its args, client and printer."""

    def do_acl(self):
        args = self.args
        if args["bootstrap"]:
            token, secret = self.client.acl_bootstrap()
            return self.show_token(acl.token_json(token, secret))
        if args["token"]:
            if args["create"]:
                token, secret = self.client.token_create(args["--type"] or "client", args["--policy"],
                                                         args["--description"] or "", _ttl(args["--ttl"]))
                return self.show_token(acl.token_json(token, secret))
            if args["delete"]:
                return self.show_token(acl.token_json(self.client.token_delete(args["ACCESSOR"])))
            rows = [acl.token_json(t) for t in self.client.tokens(self.stale)]
            if self.json:
                return self.p.dump(rows)
            return self.p.table([{**r, "Policies": ",".join(p["Name"] for p in r["Policies"])} for r in rows],
                                TOKEN_COLUMNS)
        if args["apply"]:
            rules = read_text(args["FILE"][0])  # docopt gathers FILE from every pattern into a list
            acl.parse_rules(rules)  # refused here, with the reason, before anything is sent
            done = self.client.policy_put(args["NAME"], rules, args["--description"] or "")
        elif args["delete"]:
            done = self.client.policy_delete(args["NAME"])
        else:
            rows = [acl.policy_json(p["name"], p["rules"], p["description"]) for p in self.client.policies(self.stale)]
            return self.p.dump(rows) if self.json else self.p.table(rows, ("Name", "Description", "Rules"))
        doc = acl.policy_json(done["name"], done["rules"], done["description"])
        return self.p.dump(doc) if self.json else self.p.show(doc)

    def do_audit(self):
        """The audit trail, newest first (writes of jobs, settings, keys, policies and tokens)."""
        before, limit = str(self.args["--before"]), str(self.args["--limit"])
        if not before.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise errors.BadRequest("audit: --before is a seq (0: the newest), --limit 1 to 1000")
        entries, total = self.client.audit(int(before), int(limit), self.stale)
        if self.json:
            return self.p.dump(entries)
        self.p.table([{**e, "change": json.dumps(e["change"])} for e in entries],
                     ("seq", "at", "who", "op", "target", "change"))
        print(f"{len(entries)} of {total}", file=sys.stderr)

    def show_token(self, doc):
        if self.json:
            return self.p.dump(doc)
        self.p.show({**doc, "Policies": ",".join(p["Name"] for p in doc["Policies"])})


def _ttl(text):
    return now_ms() + acl.ttl_ms(text, "--ttl") if text else 0
