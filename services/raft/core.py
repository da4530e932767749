"""The Raft consensus core, pure in the style of etcd-io/raft: no sockets, no clock, no disk,
no randomness of its own. The shell feeds it messages (step) and time (tick) and carries out
each Ready in order (carry_out): persist and fsync, send, apply, then advance. Section marks
cite the Raft paper (§5.x) and Ongaro's dissertation (§4.x membership, §6.4 reads, §9.6 PreVote)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import messages as m, wire
from services.raft.progress import Progress
from services.raft.raftlog import CONF, NORMAL, Entry, Membership, RaftLog, Snapshot

__all__ = ["Raft", "Config", "Ready", "Entry", "Snapshot", "Membership", "carry_out", "CONF", "NORMAL"]

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = "follower", "pre-candidate", "candidate", "leader"
MAX_TICKS_PER_CALL = 64  # after a long stall (SIGSTOP), catch up this many ticks, not thousands
MAX_INFLIGHT = 8         # append messages in flight per follower (pipelining, bounded)
SNAPSHOT_RESEND_ROUNDS = 6  # election timeouts a snapshot may go unanswered before it is sent again


@dataclass
class Config:
    node_id: str
    tick_ms: int = 50
    heartbeat_ticks: int = 2
    election_ticks: int = 10
    max_batch_entries: int = 512
    # An append's entries are cut by bytes too (etcd's MaxSizePerMsg): a count alone let a
    # batch of large entries pass the frame limit, and a follower behind it never caught up.
    # One entry always goes, however large: the shell proposes none larger than this.
    max_append_bytes: int = 1 << 20
    pre_vote: bool = True
    check_quorum: bool = True


@dataclass
class PendingRead:
    """A ReadIndex round (§6.4): answered with `index` once a quorum has acked heartbeats of
    round `seq` or later."""

    seq: int
    index: int
    acks: set
    requester: str
    ctx: int


@dataclass
class Ready:
    """Effects to carry out in this order: install snapshot and persist (hard_state, entries
    from entries[0].index on, replacing what was there) with one fsync; send messages; apply
    committed entries; answer read_states once applied ≥ index."""

    hard_state: tuple | None = None
    entries: list = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list = field(default_factory=list)     # (to, msg, term)
    committed: list = field(default_factory=list)
    read_states: list = field(default_factory=list)  # (ctx, index); index 0: refused
    soft_state: tuple | None = None                  # (role, leader, term) when it changed

    def empty(self):
        return not (self.hard_state or self.entries or self.snapshot or self.messages or self.committed
                    or self.read_states or self.soft_state)


class Raft:
    def __init__(self, conf, *, rng, hard_state=(0, "", 0), entries=(), snapshot=None, now=0, applied=0):
        """`applied`: the index the state machine has applied already (a restart applies
        nothing twice); never below the snapshot's."""
        self.conf, self.id, self.rng = conf, conf.node_id, rng
        self.log = RaftLog(snapshot or Snapshot(0, 0, Membership({}, {})), entries, wire.unpack)
        self.term, self.vote, self.commit = hard_state
        self.applied = max(applied, self.log.snapshot.index)
        self.role, self.leader = FOLLOWER, ""
        self.votes = {}
        self.progress = {}
        self.pending_reads = []  # PendingReads, oldest first
        # Read contexts start at random, so an answer to a read sent before a restart cannot
        # be taken for the answer to a new read with the same number (a stale read).
        self.read_seq = rng.getrandbits(48)
        self.leader_start = 0    # index of this leader's first entry of its term
        self.transferee, self.transfer_elapsed = "", 0
        self.msgs, self.read_states = [], []
        self.to_replicate = set()  # followers owed an append of new entries, sent once per ready()
        self.pending_snapshot = None
        self.hs_saved, self.soft_saved = hard_state, None
        self.elapsed = self.heartbeat_elapsed = self.quorum_elapsed = 0
        self.commit_sent = self.commit
        self.next_tick_at = now + conf.tick_ms
        self.reset_timeout()

    # -- the core API ----------------------------------------------------------------------

    def deadline(self):
        return self.next_tick_at

    def tick(self, now):
        ticks = 0
        while now >= self.next_tick_at and ticks < MAX_TICKS_PER_CALL:
            self.next_tick_at += self.conf.tick_ms
            ticks += 1
            self.tick_leader() if self.role == LEADER else self.tick_election()
        if now >= self.next_tick_at:
            self.next_tick_at = now + self.conf.tick_ms

    def step(self, env, now=0):
        msg, term, sender = env.msg, env.term, env.sender
        if isinstance(msg, m.RaftProp):
            return self.step_prop(msg)
        if isinstance(msg, m.RaftReadIndex):
            return self.step_read_index(sender, msg)
        if term > self.term and not self.step_higher_term(msg, term, sender):
            return
        if term < self.term:
            return self.step_lower_term(msg, sender)
        if isinstance(msg, m.RaftVote):
            self.step_vote(sender, msg, term)
        elif isinstance(msg, m.RaftVoteResp):
            self.step_vote_resp(sender, msg)
        elif isinstance(msg, m.RaftAppend):
            self.step_append(sender, msg)
        elif isinstance(msg, m.RaftSnapshot):
            self.step_snapshot(sender, msg)
        elif isinstance(msg, m.RaftAppendResp) and self.role == LEADER:
            self.step_append_resp(sender, msg)
        elif isinstance(msg, m.RaftTimeoutNow) and self.is_voter():
            self.campaign(force=True)
        elif isinstance(msg, m.RaftReadIndexResp):
            self.read_states.append((msg.ctx, msg.index))

    def step_higher_term(self, msg, term, sender):
        """§5.1 a higher term wins, with PreVote's and CheckQuorum's exceptions (§9.6)."""
        if isinstance(msg, m.RaftVote):
            if self.in_lease() and not msg.force:
                return False  # a leader is alive: a removed or partitioned server must not disrupt it
            if msg.pre:
                return True   # answering a pre-vote changes nothing here
        if isinstance(msg, m.RaftVoteResp) and msg.pre and msg.granted:
            return True
        leader = sender if isinstance(msg, (m.RaftAppend, m.RaftSnapshot)) else ""
        self.become_follower(term, leader)
        return True

    def step_lower_term(self, msg, sender):
        if isinstance(msg, (m.RaftAppend, m.RaftSnapshot)):
            # Tells a deposed leader its term is over (it steps down on our higher term).
            self.send(sender, m.RaftAppendResp(success=False, match=0))
        elif isinstance(msg, m.RaftVote):
            self.send(sender, m.RaftVoteResp(granted=False, pre=msg.pre))

    def bootstrap(self, membership):
        """Start a new cluster: every founding server writes the same first entry, so it is
        committed by construction (etcd's bootstrap). Only on an empty log."""
        if self.log.last_index() != 0 or self.term != 0:
            return False
        self.term = 1
        self.log.append([Entry(1, 1, wire.pack(membership.to_plain()), CONF)])
        self.commit = 1
        return True

    def propose(self, datas, kind=NORMAL):
        """Append on the leader or forward to it; False when no leader can take it now."""
        if self.role == LEADER:
            if self.transferee:
                return False  # §3.10: proposals stop while leadership moves
            self.append_new([(d, kind) for d in datas])
            return True
        if self.leader:
            entries = [[d, kind] for d in datas]
            to, last, term = self.msgs[-1] if self.msgs else ("", None, 0)
            # Proposals taken in one round go to the leader as one message (etcd's MsgProp takes
            # many): only onto the last message queued, so that nothing overtakes anything.
            if (to == self.leader and term == self.term and type(last) is m.RaftProp
                    and len(last.entries) + len(entries) <= self.conf.max_batch_entries
                    and _size(last.entries) + _size(entries) <= self.conf.max_append_bytes):
                last.entries.extend(entries)
            else:
                self.send(self.leader, m.RaftProp(entries=entries))
            return True
        return False

    def propose_membership(self, membership):
        """A single-server change (§4.1): add or remove one voter or learner, or promote one.
        Returns an error text, or None once the change is appended."""
        if self.role != LEADER:
            return "not the leader"
        if self.log.pending_conf(self.commit):
            return "a membership change is still in progress"
        if self.log.term(self.commit) != self.term:
            # §4.1 (the fix to the single-server change bug, raft-dev 2015): not before an entry
            # of this term is committed, or a deposed leader's uncommitted change could win later.
            return "no entry of this term committed yet"
        old = self.log.membership()
        # A promotion (or demotion) changes one server: it appears in both differences.
        changed = (set(old.voters) ^ set(membership.voters)) | (set(old.learners) ^ set(membership.learners))
        if len(changed) > 1 or not membership.voters:
            return "only one server may change at a time, and one voter must remain"
        self.append_new([(wire.pack(membership.to_plain()), CONF)])
        return None

    def transfer_leader(self, target):
        """§3.10: bring target up to date, then tell it to campaign at once."""
        if self.role != LEADER or target == self.id or target not in self.log.membership().voters:
            return False
        self.transferee, self.transfer_elapsed = target, 0
        if self.progress[target].match == self.log.last_index():
            self.send(target, m.RaftTimeoutNow())
        else:
            self.send_append(target)
        return True

    def read_index(self):
        """A linearizable read (§6.4): a ctx that read_states later answers with the index to
        wait for (0: refused, retry). None when no leader is known."""
        self.read_seq += 1
        ctx = self.read_seq  # start_read numbers its heartbeat round from the same counter
        if self.role == LEADER:
            self.start_read(self.id, ctx)
        elif self.leader:
            self.send(self.leader, m.RaftReadIndex(ctx=ctx))
        else:
            return None
        return ctx

    def compact(self, index, term):
        """The state machine took a snapshot at index: the log before it can go."""
        self.log.compact(Snapshot(index, term, self.membership_at(index)))

    def ready(self):
        rd = Ready()
        if self.role == LEADER:
            self.maybe_commit()
            carried = self.replicate()
            if self.commit > self.commit_sent:
                self.broadcast_commit(carried)
        hs = (self.term, self.vote, self.commit)
        if hs != self.hs_saved:
            rd.hard_state = hs
        rd.snapshot = self.pending_snapshot
        rd.entries = self.log.unstable()
        rd.messages, self.msgs = self.msgs, []
        upto = min(self.commit, self.log.stable)  # apply only what is durable here too
        if upto > self.applied and self.pending_snapshot is None:
            rd.committed = self.log.slice(max(self.applied + 1, self.log.offset + 1), upto + 1)
        rd.read_states, self.read_states = self.read_states, []
        soft = (self.role, self.leader, self.term)
        if soft != self.soft_saved:
            rd.soft_state = soft
        return rd

    def advance(self, rd):
        """The shell carried out rd: nothing was stepped in between, so the log still ends as it did."""
        if rd.hard_state:
            self.hs_saved = rd.hard_state
        if rd.snapshot:
            self.applied = max(self.applied, rd.snapshot.index)
            self.pending_snapshot = None
        if rd.entries:
            self.log.stabilize(rd.entries[-1].index)
        if rd.committed:
            self.applied = rd.committed[-1].index
        if rd.soft_state:
            self.soft_saved = rd.soft_state
        if self.role == LEADER:
            self.progress[self.id].match = self.log.stable
            self.maybe_commit()

    # -- roles and elections (§5.2, §9.6) --------------------------------------------------

    def is_voter(self):
        return self.id in self.log.membership().voters

    def in_lease(self):
        return self.conf.check_quorum and self.leader != "" and self.elapsed < self.conf.election_ticks

    def reset_timeout(self):
        self.elapsed = 0
        self.timeout = self.conf.election_ticks + self.rng.randrange(self.conf.election_ticks)

    def tick_election(self):
        self.elapsed += 1
        if self.elapsed >= self.timeout and self.is_voter():
            self.pre_campaign() if self.conf.pre_vote else self.campaign()

    def pre_campaign(self):
        """PreVote: ask whether we could win before bumping the term, so a server back from a
        partition does not depose a healthy leader."""
        self.role, self.leader = PRE_CANDIDATE, ""
        self.reset_timeout()
        self.request_votes(pre=True)

    def campaign(self, force=False):
        self.role, self.leader = CANDIDATE, ""
        self.term += 1
        self.vote = self.id
        self.reset_timeout()
        self.request_votes(pre=False, force=force)

    def request_votes(self, pre, force=False):
        self.votes = {self.id: True}
        if self.has_quorum(self.votes):
            return self.campaign() if pre else self.become_leader()
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for peer in sorted(self.log.membership().voters):
            if peer != self.id:
                self.msgs.append((peer, m.RaftVote(last_index=last_index, last_term=last_term, pre=pre, force=force),
                                  self.term + 1 if pre else self.term))

    def step_vote(self, sender, msg, term):
        # §5.4.1: only a candidate whose log is at least as up to date gets the vote; one vote
        # per term, and none while this server follows a live leader of the term.
        up_to_date = (msg.last_term, msg.last_index) >= (self.log.last_term(), self.log.last_index())
        can_vote = self.vote == sender or (self.vote == "" and self.leader == "") or (msg.pre and term > self.term)
        granted = can_vote and up_to_date
        if msg.pre:
            # A granted pre-vote carries the candidate's future term; nothing changes here.
            self.msgs.append((sender, m.RaftVoteResp(granted=granted, pre=True), term if granted else self.term))
            return
        if granted:
            self.vote = sender
            self.reset_timeout()
        self.send(sender, m.RaftVoteResp(granted=granted))

    def step_vote_resp(self, sender, msg):
        if (msg.pre and self.role != PRE_CANDIDATE) or (not msg.pre and self.role != CANDIDATE):
            return
        self.votes[sender] = msg.granted
        if self.has_quorum({k for k, v in self.votes.items() if v}):
            self.campaign() if msg.pre else self.become_leader()
        elif self.has_quorum_against():
            self.become_follower(self.term, "")

    def has_quorum_against(self):
        voters = self.log.membership().voters
        return sum(1 for k, v in self.votes.items() if not v and k in voters) > len(voters) // 2

    def become_follower(self, term, leader):
        if term != self.term:
            self.term, self.vote = term, ""
        self.role, self.leader = FOLLOWER, leader
        self.transferee = ""
        self.pending_reads = []
        self.to_replicate.clear()
        self.reset_timeout()

    def become_leader(self):
        self.role, self.leader = LEADER, self.id
        self.progress = {}
        self.sync_progress()
        self.heartbeat_elapsed = self.quorum_elapsed = 0
        # §8: an empty entry of the new term commits everything before it and lets reads start.
        self.append_new([(b"", NORMAL)])
        self.leader_start = self.log.last_index()

    def tick_leader(self):
        self.heartbeat_elapsed += 1
        self.quorum_elapsed += 1
        if self.transferee:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= self.conf.election_ticks:
                self.transferee = ""  # the target did not take over in time: keep leading
        if self.quorum_elapsed >= self.conf.election_ticks:
            self.quorum_elapsed = 0
            if self.conf.check_quorum and not self.quorum_active():
                return self.become_follower(self.term, "")  # CheckQuorum: cut off, step down
        if self.heartbeat_elapsed >= self.conf.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self.broadcast_heartbeat(resync=True)

    def quorum_active(self):
        active = {self.id} | {p for p, pr in self.progress.items() if pr.active}
        for pr in self.progress.values():
            pr.active = False
            pr.snapshot_unanswered(SNAPSHOT_RESEND_ROUNDS)
        return self.has_quorum(active)

    # -- replication (§5.3) ----------------------------------------------------------------

    def append_new(self, items):
        first = self.log.last_index() + 1
        self.log.append([Entry(first + i, self.term, data, kind) for i, (data, kind) in enumerate(items)])
        self.sync_progress()
        self.to_replicate.update(self.peers())

    def replicate(self):
        """The appends owed since the last ready(): batches of max_batch_entries for everything
        proposed in between (not one append per proposal), as many as the in-flight window
        takes. Returns the followers that got the commit index with entries."""
        carried = set()
        for peer in sorted(self.to_replicate):
            pr = self.progress.get(peer)
            while pr is not None and self.send_append(peer):
                carried.add(peer)
                if pr.paused(MAX_INFLIGHT):
                    break
        self.to_replicate.clear()
        return carried

    def sync_progress(self):
        """Followers to replicate to: every voter and learner of the latest configuration."""
        members = self.log.membership().names() | {self.id}
        for name in members - set(self.progress):
            self.progress[name] = Progress(next=self.log.last_index() + 1)
        for name in set(self.progress) - members:
            del self.progress[name]
        self.progress[self.id].match = self.log.stable

    def broadcast_heartbeat(self, resync=False):
        self.commit_sent = self.commit
        ctx = self.pending_reads[-1].seq if self.pending_reads else 0
        for peer in self.peers():
            pr = self.progress[peer]
            # Appends still in flight, none acked for a whole interval: lost on the way.
            stuck = not pr.inflight or not pr.acked_lately
            if resync and stuck and pr.next > pr.match + 1:
                # Once a heartbeat interval: appends that were lost are sent again.
                pr.rewind()
                self.send_append(peer)
            if resync:
                pr.acked_lately = False
            self.send_append(peer, heartbeat=True, ctx=ctx)

    def broadcast_commit(self, carried=()):
        """Followers learn a new commit index now, not at the next heartbeat. An empty append
        at next-1, the end of what was sent: on the same ordered connection it arrives after
        those entries, so a follower whose own ack was not yet counted still learns it. Those
        `carried` were just sent entries with this commit index."""
        self.commit_sent = self.commit
        for peer in self.peers():
            if peer in carried:
                continue
            pr = self.progress[peer]
            prev = pr.next - 1
            if prev >= self.log.offset:
                self.send(peer, m.RaftAppend(prev_index=prev, prev_term=self.log.term(prev), entries=[],
                                             commit=self.commit))

    def send_append(self, peer, heartbeat=False, ctx=0):
        pr = self.progress[peer]
        if pr.next <= self.log.offset or pr.match < self.log.offset and heartbeat:
            return self.send_snapshot(peer, pr)
        if heartbeat or pr.paused(MAX_INFLIGHT):
            # A heartbeat checks the log at the last index known to match, so pipelined
            # appends still in flight cannot make it fail.
            prev = max(pr.match, self.log.offset)
            return self.send(peer, m.RaftAppend(prev_index=prev, prev_term=self.log.term(prev), entries=[],
                                                commit=min(self.commit, pr.match), ctx=ctx))
        entries = _within(self.log.slice(pr.next, pr.next + self.conf.max_batch_entries), self.conf.max_append_bytes)
        if not entries and pr.next > self.log.last_index():
            return False
        prev = pr.next - 1
        self.send(peer, m.RaftAppend(prev_index=prev, prev_term=self.log.term(prev),
                                     entries=[e.to_wire() for e in entries], commit=self.commit, ctx=ctx))
        pr.sent(entries[-1].index)
        return True

    def send_snapshot(self, peer, pr):
        snap = self.log.snapshot
        if pr.snapshot_index != snap.index:
            pr.snapshot_index = snap.index
            self.send(peer, m.RaftSnapshot(index=snap.index, term=snap.term, membership=snap.membership.to_plain()))

    def step_append(self, sender, msg):
        self.role, self.leader = FOLLOWER, sender
        self.reset_timeout()
        prev_index, prev_term, items = msg.prev_index, msg.prev_term, msg.entries
        if prev_index < self.commit:
            # What is committed here matches the leader's log: check from the commit index on.
            items = [item for item in items if item[0] > self.commit]
            prev_index, prev_term = self.commit, self.log.term(self.commit)
        if prev_index > self.log.last_index():
            return self.send(sender, m.RaftAppendResp(success=False, match=0, hint=self.log.last_index() + 1,
                                                      ctx=msg.ctx))
        if self.log.term(prev_index) != prev_term:
            bad, hint = self.log.term(prev_index), prev_index
            while hint - 1 > self.commit and self.log.term(hint - 1) == bad:
                hint -= 1  # skip the whole conflicting term in one round trip
            return self.send(sender, m.RaftAppendResp(success=False, match=0, hint=hint, ctx=msg.ctx))
        new = []
        for item in items:
            entry = Entry.from_wire(item)
            if not new and entry.index <= self.log.last_index():
                if self.log.term(entry.index) == entry.term:
                    continue
                self.log.truncate(entry.index, self.commit)
            new.append(entry)
        self.log.append(new)
        match = prev_index + len(items)
        self.commit = max(self.commit, min(msg.commit, match))
        self.send(sender, m.RaftAppendResp(success=True, match=match, ctx=msg.ctx))

    def step_snapshot(self, sender, msg):
        self.role, self.leader = FOLLOWER, sender
        self.reset_timeout()
        if msg.index <= self.commit:
            return self.send(sender, m.RaftAppendResp(success=True, match=self.commit))
        if self.log.term(msg.index) == msg.term:
            # §7: the snapshot describes a prefix of this log: the entries after it stay (an ack
            # for them may already have been counted by the leader).
            self.commit = msg.index
            return self.send(sender, m.RaftAppendResp(success=True, match=msg.index))
        snap = Snapshot(msg.index, msg.term, Membership.from_plain(msg.membership))
        self.log.restore(snap)
        self.commit = msg.index
        self.pending_snapshot = snap
        self.send(sender, m.RaftAppendResp(success=True, match=msg.index))

    def step_append_resp(self, sender, msg):
        pr = self.progress.get(sender)
        if pr is None:
            return
        pr.active = True
        if msg.ctx:
            self.ack_reads(sender, msg.ctx)
        if msg.success:
            pr.acked(msg.match)
            if self.transferee == sender and pr.match == self.log.last_index():
                self.send(sender, m.RaftTimeoutNow())
            if pr.next <= self.log.last_index():
                self.to_replicate.add(sender)
        elif msg.hint:
            pr.rejected(msg.hint, self.log.last_index())
            self.send_append(sender)

    def maybe_commit(self):
        # §5.4.2: only an entry of the current term is committed by counting replicas.
        voters = self.log.membership().voters
        matches = sorted((self.progress[v].match for v in voters if v in self.progress), reverse=True)
        if len(matches) < len(voters) // 2 + 1:
            return
        index = matches[len(voters) // 2]
        if index > self.commit and self.log.term(index) == self.term:
            self.commit = index
            self.release_reads()
            if self.id not in voters and not self.log.pending_conf(self.commit):
                self.become_follower(self.term, "")  # §4.2.2: a removed leader steps down

    def step_prop(self, msg):
        if self.role == LEADER and not self.transferee:
            self.append_new([(bytes(d), int(k)) for d, k in msg.entries])
        elif self.role != LEADER and self.leader:
            self.send(self.leader, msg)

    # -- ReadIndex (§6.4) ------------------------------------------------------------------

    def step_read_index(self, sender, msg):
        if self.role == LEADER:
            self.start_read(sender, msg.ctx)
        else:
            self.send(sender, m.RaftReadIndexResp(ctx=msg.ctx, index=0))

    def start_read(self, requester, ctx):
        if self.log.term(self.commit) != self.term:
            return self.answer_read(requester, ctx, 0)  # no entry of this term committed yet
        if len(self.log.membership().voters) == 1:
            return self.answer_read(requester, ctx, self.commit)
        self.read_seq += 1
        self.pending_reads.append(PendingRead(self.read_seq, self.commit, {self.id}, requester, ctx))
        self.broadcast_heartbeat()

    def answer_read(self, requester, ctx, index):
        if requester == self.id:
            self.read_states.append((ctx, index))
        else:
            self.send(requester, m.RaftReadIndexResp(ctx=ctx, index=index))

    def ack_reads(self, sender, ctx):
        for read in self.pending_reads:
            if read.seq <= ctx:
                read.acks.add(sender)
        self.release_reads()

    def release_reads(self):
        kept = []
        for read in self.pending_reads:
            if self.has_quorum(read.acks):
                self.answer_read(read.requester, read.ctx, read.index)
            else:
                kept.append(read)
        self.pending_reads = kept

    # -- plumbing --------------------------------------------------------------------------

    def membership_at(self, index):
        return max((c for c in self.log.confs if c[0] <= index), key=lambda c: c[0])[1]

    def peers(self):
        return sorted(n for n in self.progress if n != self.id)

    def has_quorum(self, ids):
        voters = self.log.membership().voters
        return len(set(ids) & set(voters)) > len(voters) // 2

    def send(self, to, msg):
        self.msgs.append((to, msg, self.term))

    def status(self):
        membership = self.log.membership()
        return {"role": self.role, "leader": self.leader, "term": self.term, "commit": self.commit,
                "applied": self.applied, "last_index": self.log.last_index(), "snapshot": self.log.snapshot.index,
                "voters": sorted(membership.voters), "learners": sorted(membership.learners),
                "progress": {p: {"match": pr.match, "next": pr.next} for p, pr in self.progress.items()}
                if self.role == LEADER else {}}


ENTRY_OVERHEAD_BYTES = 16  # an entry's index, term and kind as msgpack carries them


def _size(wire_entries):
    return sum(len(data) + ENTRY_OVERHEAD_BYTES for data, _ in wire_entries)


def _within(entries, limit):
    """The first entries whose data fit in `limit` bytes; the first one whatever its size."""
    total = 0
    for i, entry in enumerate(entries):
        total += len(entry.data) + ENTRY_OVERHEAD_BYTES
        if total > limit and i:
            return entries[:i]
    return entries


def carry_out(rd, *, persist, send, apply, read, install=None):
    """The one place the Ready order lives; the shell and the simulator both call it.
    persist(hard_state, entries, snapshot) must fsync before returning: a vote or an append
    ack sent before its fsync could be forgotten in a crash and break safety (§5.2, §5.3)."""
    if rd.snapshot and install:
        install(rd.snapshot)
    if rd.hard_state or rd.entries or rd.snapshot:
        persist(rd.hard_state, rd.entries, rd.snapshot)
    for to, msg, term in rd.messages:
        send(to, msg, term)
    if rd.committed:
        apply(rd.committed)
    for ctx, index in rd.read_states:
        read(ctx, index)
