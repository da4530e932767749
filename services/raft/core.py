"""The Raft consensus core, pure in the style of etcd-io/raft: no sockets, no clock, no disk,
no randomness of its own. The shell feeds it messages (step) and time (tick), and carries out
each Ready in order: persist and fsync entries and hard state, send messages, apply committed
entries, then advance. Section marks (§5.2) cite the Raft paper (Ongaro & Ousterhout, 2014)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import messages as m

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
MAX_TICKS_PER_CALL = 64  # after a long stall (SIGSTOP), catch up this many ticks, not thousands


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    data: bytes

    def to_wire(self):
        return [self.index, self.term, self.data]

    @staticmethod
    def from_wire(item):
        index, term, data = item
        return Entry(int(index), int(term), bytes(data))


@dataclass
class Config:
    node_id: str
    voters: list
    tick_ms: int = 50
    heartbeat_ticks: int = 2
    election_ticks: int = 10
    max_batch_entries: int = 512


@dataclass
class Ready:
    """Effects to carry out in this order: persist (hard_state, entries from entries[0].index on,
    replacing what was there), fsync, send messages, apply committed, answer read_states."""

    hard_state: tuple | None = None
    entries: list = field(default_factory=list)
    messages: list = field(default_factory=list)   # (to, msg, term)
    committed: list = field(default_factory=list)
    read_states: list = field(default_factory=list)  # (ctx, index): serve the read once applied ≥ index
    soft_state: tuple | None = None                 # (role, leader, term) when it changed

    def empty(self):
        return not (self.hard_state or self.entries or self.messages or self.committed
                    or self.read_states or self.soft_state)


class Raft:
    def __init__(self, conf, *, rng, hard_state=(0, "", 0), entries=(), now=0):
        self.conf, self.id, self.rng = conf, conf.node_id, rng
        self.voters = set(conf.voters) | {conf.node_id}
        self.term, self.vote, self.commit = hard_state
        self.log = [Entry(0, 0, b"")] + list(entries)  # log[i].index == i
        self.stable = self.last_index()
        self.unstable_from = self.stable + 1
        self.applied = 0
        self.role, self.leader = FOLLOWER, ""
        self.votes = set()
        self.next_index, self.match = {}, {}
        self.pending_reads = []  # (ctx, index, acks)
        self.read_seq = 0
        self.leader_start = 0  # index of the first entry of this leader's term
        self.msgs, self.read_states = [], []
        self.hs_saved = hard_state
        self.soft_saved = None
        self.elapsed = self.heartbeat_elapsed = 0
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
            return self.step_prop(sender, msg)
        if term > self.term:
            # §5.1: a higher term always wins; only an append's sender is known to lead it.
            self.become_follower(term, sender if isinstance(msg, m.RaftAppend) else "")
        elif term < self.term:
            if isinstance(msg, m.RaftAppend):
                self.send(sender, m.RaftAppendResp(success=False, match=0, ctx=msg.ctx))
            elif isinstance(msg, m.RaftVote):
                self.send(sender, m.RaftVoteResp(granted=False))
            return
        if isinstance(msg, m.RaftVote):
            self.step_vote(sender, msg)
        elif isinstance(msg, m.RaftVoteResp):
            self.step_vote_resp(sender, msg)
        elif isinstance(msg, m.RaftAppend):
            self.step_append(sender, msg)
        elif isinstance(msg, m.RaftAppendResp) and self.role == LEADER:
            self.step_append_resp(sender, msg)

    def propose(self, datas):
        """Append on the leader or forward to it; False when no leader is known (retry later)."""
        if self.role == LEADER:
            self.append([Entry(0, self.term, d) for d in datas])
            self.broadcast_append()  # as step_prop does; else followers wait for a heartbeat
            return True
        if self.leader:
            self.send(self.leader, m.RaftProp(entries=list(datas)))
            return True
        return False

    def read_index(self):
        """Linearizable read on the leader (§6.4): returns a ctx later found in read_states, or
        None when this node cannot serve one (not leader, or no entry of its term committed)."""
        if self.role != LEADER or self.log_term(self.commit) != self.term:
            return None
        self.read_seq += 1
        if len(self.voters) == 1:
            self.read_states.append((self.read_seq, self.commit))
        else:
            self.pending_reads.append((self.read_seq, self.commit, {self.id}))
            self.broadcast_heartbeat()
        return self.read_seq

    def ready(self):
        rd = Ready()
        if self.role == LEADER:
            self.maybe_commit()
        hs = (self.term, self.vote, self.commit)
        if hs != self.hs_saved:
            rd.hard_state = hs
        if self.unstable_from <= self.last_index():
            rd.entries = self.log[self.unstable_from:]
        rd.messages, self.msgs = self.msgs, []
        upto = min(self.commit, self.stable)  # apply only what is durable here too
        if upto > self.applied:
            rd.committed = self.log[self.applied + 1:upto + 1]
        rd.read_states, self.read_states = self.read_states, []
        soft = (self.role, self.leader, self.term)
        if soft != self.soft_saved:
            rd.soft_state = soft
        return rd

    def advance(self, rd):
        if rd.hard_state:
            self.hs_saved = rd.hard_state
        if rd.entries:
            # The shell steps nothing between ready() and advance(), so the log still ends here.
            self.stable = rd.entries[-1].index
            self.unstable_from = self.stable + 1
        if rd.committed:
            self.applied = rd.committed[-1].index
        if rd.soft_state:
            self.soft_saved = rd.soft_state
        if self.role == LEADER:
            self.match[self.id] = self.stable
            self.maybe_commit()

    # -- log -------------------------------------------------------------------------------

    def last_index(self):
        return self.log[-1].index

    def log_term(self, index):
        return self.log[index].term if 0 <= index <= self.last_index() else -1

    def append(self, entries):
        first = self.last_index() + 1
        for offset, entry in enumerate(entries):
            self.log.append(Entry(first + offset, self.term, entry.data))
        self.unstable_from = min(self.unstable_from, first)

    def truncate(self, index):
        """Drop entries from index on (a conflicting suffix, §5.3); never a committed one."""
        assert index > self.commit, "raft: truncating a committed entry"
        del self.log[index:]
        self.unstable_from = min(self.unstable_from, index)
        self.stable = min(self.stable, index - 1)

    # -- elections (§5.2) ------------------------------------------------------------------

    def reset_timeout(self):
        self.elapsed = 0
        self.timeout = self.conf.election_ticks + self.rng.randrange(self.conf.election_ticks)

    def tick_election(self):
        self.elapsed += 1
        if self.elapsed >= self.timeout and self.id in self.voters:
            self.campaign()

    def campaign(self):
        self.role, self.leader = CANDIDATE, ""
        self.term += 1
        self.vote = self.id
        self.votes = {self.id}
        self.reset_timeout()
        if self.has_quorum(self.votes):
            return self.become_leader()
        for peer in self.peers():
            self.send(peer, m.RaftVote(last_index=self.last_index(), last_term=self.log_term(self.last_index())))

    def step_vote(self, sender, msg):
        # §5.4.1: only a candidate whose log is at least as up to date gets the vote.
        up_to_date = (msg.last_term, msg.last_index) >= (self.log_term(self.last_index()), self.last_index())
        granted = self.vote in ("", sender) and up_to_date and self.role != LEADER
        if granted:
            self.vote = sender
            self.reset_timeout()
        self.send(sender, m.RaftVoteResp(granted=granted))

    def step_vote_resp(self, sender, msg):
        if self.role != CANDIDATE or not msg.granted:
            return
        self.votes.add(sender)
        if self.has_quorum(self.votes):
            self.become_leader()

    def become_follower(self, term, leader):
        if term != self.term:
            self.term, self.vote = term, ""
        self.role, self.leader = FOLLOWER, leader
        self.pending_reads = []
        self.reset_timeout()

    def become_leader(self):
        self.role, self.leader = LEADER, self.id
        self.next_index = {p: self.last_index() + 1 for p in self.peers()}
        self.match = {p: 0 for p in self.peers()}
        self.match[self.id] = self.stable
        self.heartbeat_elapsed = 0
        # §8: an empty entry of the new term lets the leader learn what is committed.
        self.append([Entry(0, self.term, b"")])
        self.leader_start = self.last_index()
        self.broadcast_append()

    # -- replication (§5.3) ----------------------------------------------------------------

    def tick_leader(self):
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.conf.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self.broadcast_heartbeat()

    def broadcast_heartbeat(self):
        ctx = self.pending_reads[-1][0] if self.pending_reads else 0
        for peer in self.peers():
            self.send_append(peer, ctx=ctx)

    def broadcast_append(self):
        for peer in self.peers():
            self.send_append(peer)

    def send_append(self, peer, ctx=0):
        nxt = self.next_index[peer]
        entries = self.log[nxt:nxt + self.conf.max_batch_entries]
        self.send(peer, m.RaftAppend(prev_index=nxt - 1, prev_term=self.log_term(nxt - 1),
                                     entries=[e.to_wire() for e in entries],
                                     commit=self.commit, ctx=ctx))
        if entries:
            self.next_index[peer] = entries[-1].index + 1  # pipelined: assume success

    def step_append(self, sender, msg):
        self.role, self.leader = FOLLOWER, sender
        self.reset_timeout()
        if msg.prev_index > self.last_index():
            self.send(sender, m.RaftAppendResp(success=False, match=0, hint=self.last_index() + 1, ctx=msg.ctx))
            return
        if self.log_term(msg.prev_index) != msg.prev_term:
            # Skip the whole conflicting term in one round trip.
            bad_term, hint = self.log_term(msg.prev_index), msg.prev_index
            while hint - 1 > self.commit and self.log_term(hint - 1) == bad_term:
                hint -= 1
            self.send(sender, m.RaftAppendResp(success=False, match=0, hint=max(hint, 1), ctx=msg.ctx))
            return
        new = []
        for item in msg.entries:
            entry = Entry.from_wire(item)
            if entry.index <= self.last_index():
                if self.log_term(entry.index) == entry.term:
                    continue
                self.truncate(entry.index)
            new.append(entry)
        if new:
            self.log.extend(new)
            self.unstable_from = min(self.unstable_from, new[0].index)
        match = msg.prev_index + len(msg.entries)
        self.commit = max(self.commit, min(msg.commit, match))
        self.send(sender, m.RaftAppendResp(success=True, match=match, ctx=msg.ctx))

    def step_append_resp(self, sender, msg):
        if sender not in self.next_index:
            return
        if msg.ctx:
            self.ack_reads(sender, msg.ctx)
        if msg.success:
            self.match[sender] = max(self.match[sender], msg.match)
            self.next_index[sender] = max(self.next_index[sender], msg.match + 1)
            if self.next_index[sender] <= self.last_index():
                self.send_append(sender)
        else:
            self.next_index[sender] = max(1, min(msg.hint or self.next_index[sender] - 1, self.last_index() + 1))
            self.send_append(sender)

    def maybe_commit(self):
        # §5.4.2: only an entry of the current term is committed by counting replicas.
        matches = sorted((self.match.get(v, 0) for v in self.voters), reverse=True)
        index = matches[len(self.voters) // 2]
        if index > self.commit and self.log_term(index) == self.term:
            self.commit = index
            self.release_reads()

    def step_prop(self, sender, msg):
        if self.role == LEADER:
            self.append([Entry(0, self.term, d) for d in msg.entries])
            self.broadcast_append()
        elif self.leader and self.leader != sender:
            self.send(self.leader, msg)

    # -- ReadIndex (§6.4) ------------------------------------------------------------------

    def ack_reads(self, sender, ctx):
        for read_ctx, _, acks in self.pending_reads:
            if read_ctx <= ctx:
                acks.add(sender)
        self.release_reads()

    def release_reads(self):
        kept = []
        for read_ctx, index, acks in self.pending_reads:
            if self.has_quorum(acks):
                self.read_states.append((read_ctx, index))
            else:
                kept.append((read_ctx, index, acks))
        self.pending_reads = kept

    # -- plumbing --------------------------------------------------------------------------

    def peers(self):
        return sorted(self.voters - {self.id})

    def has_quorum(self, ids):
        return len(ids & self.voters) > len(self.voters) // 2

    def send(self, to, msg):
        self.msgs.append((to, msg, self.term))

    def status(self):
        return {"role": self.role, "leader": self.leader, "term": self.term, "commit": self.commit,
                "applied": self.applied, "last_index": self.last_index(), "voters": sorted(self.voters)}


def carry_out(rd, *, persist, send, apply, read):
    """The one place the Ready order lives; the shell and the simulator both call it.
    persist(hard_state, entries) must fsync before returning: a vote or an append ack sent
    before its fsync could be forgotten by a crash and break safety (§5.2, §5.3)."""
    if rd.hard_state or rd.entries:
        persist(rd.hard_state, rd.entries)
    for to, msg, term in rd.messages:
        send(to, msg, term)
    if rd.committed:
        apply(rd.committed)
    for ctx, index in rd.read_states:
        read(ctx, index)
