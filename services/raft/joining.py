"""How servers become members: founders whose logs are empty compare notes (raft.join) and
found the cluster only when every founder is fresh, so a server that lost its data never
founds a second cluster; the leader adds any server it does not know, or whose storage was
wiped, as a learner, and promotes it to voter once it has caught up (Raft dissertation §4.2.1).
Gossip reconciles too, as Dkron does through Serf: a server that left is removed, an alive one
that is not a member is added; a failed one stays, since it may come back, until it has been
failed for [raft] dead_server_timeout_ms (then it is removed, never below a quorum of the
configured size)."""

from __future__ import annotations

import logging

import zmq

from common import config, messages as m
from services.raft.core import LEADER, Membership

log = logging.getLogger(__name__)

CATCH_UP_SLACK = 16  # a learner this close to the leader's commit index is promoted
LEAVING = ("leaving", "left")


class Joining:
    def __init__(self, shell):
        self.shell, self.loop, self.name = shell, shell.loop, shell.name
        self.founders = config.raft_servers(shell.conf) or {self.name: config.tcp(shell.conf, shell.conf.raft.peer_port)}
        self.fresh_seen = {self.name}   # founders known to have empty logs
        self.cluster_exists = False
        self.knocking = {}              # (peer address, key) → DEALER used while not a member
        self.joiners = {}               # name → (store, addrs): servers asking the leader to join
        self.promote = set()            # learners the leader added for joining; voters once caught up
        self.added = {}                 # name → the storage id it had when this leader added it
        self.failed_since = {}          # voter → when this leader first saw gossip report it failed (ms)
        self.refused = set()            # retired servers refused (logged once each)

    # -- a server with an empty log --------------------------------------------------------

    def is_fresh(self):
        return self.shell.core.log.last_index() == 0

    def knock(self):
        """Tell every server we know of that we exist (and whether our log is empty)."""
        if not self.is_fresh() or self.shell.core.log.membership().voters:
            return self.hang_up()
        msg = m.RaftJoin(store=self.shell.store.store_id, addrs=config.addrs(self.shell.conf))
        for name, addr in self.targets():
            key = self.shell.admission.server_key(name)
            if key is None:
                continue  # not yet known by gossip (founding), or not accepted: knocked on later
            if (addr, key) not in self.knocking:
                self.knocking[addr, key] = self.loop.socket(zmq.DEALER, "join", connect=[(addr, key)],
                                                            on=self.shell.on_peer)
            self.loop.send(self.knocking[addr, key], msg)
        self.maybe_found()

    def targets(self):
        found = {(n, a) for n, a in self.founders.items() if n != self.name}
        return found | {(member["name"], member["addrs"]["peer"]) for member in self.alive_servers()}

    def alive_servers(self):
        """Other servers that gossip shows alive, with a peer address to reach them at."""
        for member in self.shell.members.values():
            if (member.get("role") == "server" and member["name"] != self.name and member.get("status") == "alive"
                    and member.get("addrs", {}).get("peer")):
                yield member

    def hang_up(self):
        for sock in self.knocking.values():
            self.loop.close(sock)
        self.knocking = {}

    def answered(self, env):
        """A raft.join_resp: learn whether the cluster exists already."""
        if env.msg.fresh:
            self.fresh_seen.add(env.sender)
        else:
            self.cluster_exists = True
        self.maybe_found()

    def maybe_found(self):
        if self.cluster_exists or self.name not in self.founders or not self.is_fresh():
            return
        expect = min(self.shell.conf.raft.bootstrap_expect or len(self.founders), len(self.founders))
        if len(self.fresh_seen & set(self.founders)) >= expect:
            if self.shell.core.bootstrap(Membership({n: {"peer": a} for n, a in self.founders.items()}, {})):
                log.info("founding the cluster voters=%s", sorted(self.founders))

    # -- any server: answering a knock ----------------------------------------------------

    def on_join(self, env):
        core = self.shell.core
        leader_peer = core.log.membership().voters.get(core.leader, {}).get("peer", "")
        self.loop.send(self.shell.peer_router, m.RaftJoinResp(fresh=self.is_fresh(), leader=core.leader,
                                                              leader_peer=leader_peer),
                       route=env.route, re=env.msg_id)
        if env.sender in self.founders and self.is_fresh():
            self.fresh_seen.add(env.sender)
            self.maybe_found()
        if core.role == LEADER and not self.is_fresh():
            self.joiners[env.sender] = (env.msg.store, env.msg.addrs)

    # -- the leader: adding, re-adding and promoting ---------------------------------------

    def reconcile(self):
        core = self.shell.core
        if core.role != LEADER or core.log.pending_conf(core.commit):
            return
        membership = core.log.membership()
        if self.remove_left(membership) or self.remove_dead(membership):
            return
        self.adopt_alive(membership)
        for name, (store, addrs) in list(self.joiners.items()):
            retired = self.shell.fsm.retired(name)
            if retired and (store is None or store in retired):
                # Left out by a recovery after quorum loss: its log may hold what the cluster no
                # longer does. It joins again only wiped (a new storage id, said in its knock).
                if name not in self.refused:
                    log.warning("refusing server %s: a recovery after quorum loss retired it; wipe its data "
                                "dir (keep keys/) to let it join as a new server", name)
                    self.refused.add(name)
                del self.joiners[name]
                continue
            self.refused.discard(name)
            known = self.shell.fsm.server(name) or {}
            member = name in membership.voters or name in membership.learners
            if member and store in (known.get("store"), self.added.get(name)) or member and not known:
                del self.joiners[name]  # a member restarting with its own data: nothing to do
                continue
            if member:
                log.info("server %s came back with wiped storage: removing it before adding it again", name)
                return self.change({k: v for k, v in membership.voters.items() if k != name},
                                   {k: v for k, v in membership.learners.items() if k != name})
            log.info("adding server %s as a learner", name)
            self.promote.add(name)
            self.added[name] = store
            del self.joiners[name]
            return self.change(dict(membership.voters), {**membership.learners, name: {"peer": addrs["peer"]}})
        progress = core.progress
        for name in sorted(self.promote & set(membership.learners)):
            match = progress[name].match if name in progress else 0
            if match > core.log.snapshot.index and match + CATCH_UP_SLACK >= core.commit:
                log.info("promoting learner %s to voter", name)
                self.promote.discard(name)
                voters = {**membership.voters, name: membership.learners[name]}
                return self.change(voters, {k: v for k, v in membership.learners.items() if k != name})

    def gossip_status(self, name):
        return self.shell.members.get(name, {}).get("status")

    def remove_left(self, membership):
        """One server that gossip reports as left is taken out of the configuration. The
        leader itself goes last: it hands leadership to the most caught-up voter that stays,
        which then removes it."""
        for name in sorted({**membership.voters, **membership.learners}):
            if self.gossip_status(name) not in LEAVING:
                continue
            if name == self.name:
                stay = [n for n in membership.voters if n != name and self.gossip_status(n) not in LEAVING]
                if stay:
                    progress = self.shell.core.progress
                    target = max(stay, key=lambda n: (progress[n].match if n in progress else 0, n))
                    log.info("this server left: handing leadership to %s", target)
                    self.shell.core.transfer_leader(target)
                    return True
                continue
            log.info("server %s left the cluster: removing it from the configuration", name)
            self.promote.discard(name)
            self.added.pop(name, None)
            self.change({k: v for k, v in membership.voters.items() if k != name},
                        {k: v for k, v in membership.learners.items() if k != name})
            return True
        return False

    def remove_dead(self, membership):
        """A voter gossip has reported failed for [raft] dead_server_timeout_ms is taken out
        (Nomad's autopilot cleanup_dead_servers), one at a time and never below a quorum of the
        configured size, so that a dead server stops counting against every commit's majority.
        If it comes back, it joins again as any server does."""
        timeout, now = self.shell.conf.raft.dead_server_timeout_ms, self.loop.now()
        for name in membership.voters:
            if self.gossip_status(name) == "failed" or name in self.failed_since and name not in self.shell.members:
                self.failed_since.setdefault(name, now)  # (a failed member gossip reaped stays failed)
            else:
                self.failed_since.pop(name, None)
        if not timeout:
            return False
        floor = max(len(self.founders), self.shell.conf.raft.bootstrap_expect) // 2 + 1
        for name, since in sorted(self.failed_since.items(), key=lambda x: x[1]):
            if name == self.name or now - since < timeout or len(membership.voters) - 1 < floor:
                continue
            log.warning("server %s has been failed for %ds: removing it from the voters (%d remain; it may "
                        "join again)", name, (now - since) // 1000, len(membership.voters) - 1)
            del self.failed_since[name]
            self.change({k: v for k, v in membership.voters.items() if k != name}, dict(membership.learners))
            return True
        return False

    def adopt_alive(self, membership):
        """An alive server that is no member (one that left and came back with its data, so it
        does not knock) joins as if it had knocked; its storage id is learnt from its knock, if any.
        Only with its accepted server key: gossip alone makes nobody a replica of the state."""
        for member in self.alive_servers():
            name = member["name"]
            if not member.get("key") or member.get("key") != self.shell.admission.server_key(name):
                continue
            if name not in membership.voters and name not in membership.learners and name not in self.joiners:
                self.joiners[name] = (None, member["addrs"])

    def change(self, voters, learners):
        error = self.shell.core.propose_membership(Membership(voters, learners))
        if error:
            log.warning("membership change refused: %s", error)
