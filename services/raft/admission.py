"""Which keys the cluster lets in (Salt's model, in the replicated state): the leader lists the
key of each member gossip shows as pending, and accepts it only when an operator says so
(`pykronctl keys accept`), under [security] auto_accept = "gossip", or, at founding, for the
founders named in [raft] servers. Every server writes the accepted keys to its run dir's book,
which each process of the node reads (common/curve.py)."""

from __future__ import annotations

import logging

from common import curve, errors, keys, messages as m

log = logging.getLogger(__name__)

PROPOSE_AGAIN_MS = 3000  # a key proposal not seen applied by then is proposed again


class Admission:
    def __init__(self, shell):
        self.shell, self.loop, self.name = shell, shell.loop, shell.name
        self.founders = set(shell.joining.founders)
        self.auto_accept = shell.conf.security.auto_accept == "gossip"
        self.proposed = {}  # key → when it was last proposed
        self.written = None

    # -- keys for the node's sockets -------------------------------------------------------

    def server_key(self, name):
        """The key to dial server `name` with: its accepted one; for a founder the book has never
        heard of (a cluster being founded), the one gossip announces for it."""
        keys_of = [k for k in self.shell.fsm.keys() if k["name"] == name]
        accepted = next((k["key"] for k in keys_of if k["status"] == "accepted" and k["kind"] == "server"), None)
        if accepted or keys_of or name not in self.founders:
            return accepted
        return self.shell.members.get(name, {}).get("key") or None

    def founding_keys(self):
        """Founders' keys as gossip announces them, for the founders the book has not heard of:
        until the first leader has accepted them all, the founders reach one another by these
        (cutting one off half way would leave the leader without the acks that commit the rest)."""
        known = {k["name"] for k in self.shell.fsm.keys()}
        return {x["key"]: x["name"] for x in self.shell.members.values()
                if x["name"] in self.founders and x["name"] not in known and keys.is_public_key(x.get("key"))}

    def refresh(self):
        """Every few hundred ms: the book, the peer port's founding keys, and the leader's work."""
        self.write_book()
        self.loop.gate.allow("raft.peer", self.founding_keys())
        self.shell.sync_peers(again=True)  # peers whose key has become known
        if self.shell.leader_ready():
            self.reconcile()

    def write_book(self):
        # Tokens' keys too: pykronctl with a token dials with the key its secret derives.
        book = curve.Book({**{key: (name, "client") for key, name in self.shell.fsm.token_keys().items()},
                           **{k["key"]: (k["name"], k["kind"]) for k in self.shell.fsm.keys("accepted")}})
        if book != self.written:
            curve.write_book(self.shell.conf.node.run_dir, book)
            self.written = book
            # Read back at once: a founding key the gate stops allowing must already be in its book.
            self.loop.check_book()

    # -- the leader ------------------------------------------------------------------------

    def reconcile(self):
        """Each alive member's key: listed as pending the first time it is seen, or accepted
        when it is a founder's at founding, this leader's own, or under auto_accept."""
        now = self.loop.now()
        fsm = self.shell.fsm
        for member in list(self.shell.members.values()):
            key, name = member.get("key"), member["name"]
            if member.get("status") != "alive" or not keys.is_public_key(key) or fsm.key(key) is not None:
                continue
            if now - self.proposed.get(key, 0) < PROPOSE_AGAIN_MS:
                continue
            kind = "server" if member.get("role") == "server" else "agent"
            founding = name in self.founders and kind == "server" and not any(k["name"] == name for k in fsm.keys())
            accept = self.auto_accept or founding or (name == self.name and key == self.loop.keypair.public.decode())
            try:
                self.shell.propose(None, "key.accept" if accept else "key.pending", key=key, name=name, kind=kind)
            except errors.Error as err:  # not every server speaks protocol 2 yet, or no leader now
                log.debug("key of %s not proposed: %s", name, err)
                return
            self.proposed[key] = now
            log.info("key %s of %s: %s", keys.key_id(key), name, "accepting" if accept else "listed as pending")

    # -- verbs from pykronctl ----------------------------------------------------------------

    def on_verb(self, env, msg):
        fsm = self.shell.fsm
        if isinstance(msg, m.KeysList):
            return self.shell.read(env, msg.stale, lambda: {"keys": fsm.keys()})
        if isinstance(msg, m.KeyAccept):
            key, kind = self.resolve(msg.name, msg.key, ("pending",), done="accepted")
            kind = msg.kind or kind
            if kind is None:
                raise errors.BadRequest("a key the cluster has not seen needs its kind (server, agent or client)")
            return self.shell.propose(env, "key.accept", key=key, name=msg.name, kind=kind)
        if isinstance(msg, m.KeyReject):
            key, _ = self.resolve(msg.name, msg.key, ("pending", "accepted"), done="rejected")
            return self.shell.propose(env, "key.reject", key=key)
        raise errors.BadRequest(f"not a key verb: {env.type}")

    def resolve(self, name, key, statuses, done):
        """(key, kind) a verb names: the key given, or the one key of `name` in one of `statuses`;
        else the one already `done` (the verb asked again, as a client does when the reply to
        its first try was lost, answers as the first did)."""
        if key:
            if not keys.is_public_key(key):
                raise errors.BadRequest("key: expected a 40-character Z85 CURVE public key")
            known = self.shell.fsm.key(key)
            return key, known["kind"] if known else None
        found = [k for k in self.shell.fsm.keys() if k["name"] == name and k["status"] in statuses]
        if not found:
            found = [k for k in self.shell.fsm.keys() if k["name"] == name and k["status"] == done]
            found = found if len(found) == 1 else []
        if not found:
            raise errors.NotFound(f"no {' or '.join(statuses)} key of {name!r}")
        if len(found) > 1:
            raise errors.Conflict(f"{len(found)} keys of {name!r} ({', '.join(k['id'] for k in found)}): "
                                  f"name the one you mean with --key")
        return found[0]["key"], found[0]["kind"]
