"""Scenario transcripts for the Raft core, in the manner of etcd-io/raft's interaction tests
(testdata/*.txt read by datadriven): a command, a `----` line, the output it must print, and a
blank line. Lines starting with # are comments. replay() runs a transcript and returns it with
every output block replaced by what the core printed now, so a test compares, and a rewrite
saves, the same text. Nodes are numbered in commands (1) and named in output (n1).

Commands:
  add-nodes N [empty] [pre-vote=false] [check-quorum=false] [max-batch=K]
                            N servers; they bootstrap one cluster of themselves unless `empty`
  campaign N                tick N alone until its election timeout fires
  elect N                   campaign N, then stabilize quietly (print who leads)
  tick N [K]                K ticks (default 1) of N's clock; tick-heartbeat N; tick-election N
  stabilize [N ...]         carry out Readys and deliver messages until nothing moves
  process-ready N ...       carry out the Ready of each N once
  deliver-msgs [N ...]      step the queued messages (for N only, if given)
  propose N DATA ...        propose entries at N (a follower forwards them)
  propose-conf N CHANGE ...  one membership change of add=M, learner=M, promote=M, remove=M
                            (more than one is for showing the refusal)
  transfer N M              N hands leadership to M
  read-index N              a linearizable read at N; answers appear as `read rK index=I`
  compact N [INDEX]         N's state machine snapshots at INDEX (default: all applied)
  partition 1 2 | 3         only nodes on one side of | talk; isolate N; heal
  drop TYPE | drop none     lose every message of a type (e.g. raft.snapshot) until `drop none`
  status [N ...]            role, term, commit, applied, last entry, members; a leader's progress
  log N                     N's log, one entry a line
"""

from __future__ import annotations

from common import wire
from services.raft.core import CONF, LEADER, MAX_INFLIGHT, Entry, Membership

from .network import Network, empty_node, membership

SEPARATOR = "----"


# -- the file format -------------------------------------------------------------------------


def parse(text):
    """Items in file order: ("text", line) for comments and blank lines, and
    ("command", line_number, command, expected_output); an output block ends at a blank line."""
    lines = text.splitlines()
    items, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            items.append(("text", line))
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != SEPARATOR:
            raise ValueError(f"line {i + 2}: expected {SEPARATOR!r} after the command {line!r}")
        start, i = i + 1, i + 2
        output = []
        while i < len(lines) and lines[i].strip():
            output.append(lines[i])
            i += 1
        i += 1  # the blank line that ends the block belongs to it
        items.append(("command", start, line, "\n".join(output)))
    return items


def replay(text):
    """Run every command of a transcript; the transcript as it reads with today's outputs."""
    scenario = Interaction()
    out = []
    for item in parse(text):
        if item[0] == "text":
            out.append(item[1])
            continue
        _, line_number, command, _ = item
        try:
            output = scenario.run(command)
        except Exception as exc:
            raise AssertionError(f"line {line_number}: {command!r} failed: {exc!r}") from exc
        out += [command, SEPARATOR, output or "ok"]
        out.append("")
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# -- the interpreter -------------------------------------------------------------------------


def name(arg):
    return f"n{int(arg)}"


class Interaction:
    def __init__(self):
        self.net = Network()
        self.ctx_labels = {}

    def run(self, command):
        verb, *args = command.split()
        handler = getattr(self, "do_" + verb.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {verb!r}")
        return "\n".join(handler(*args))

    # -- commands --------------------------------------------------------------------------

    def do_add_nodes(self, count, *opts):
        conf, empty = {}, False
        for opt in opts:
            key, _, value = opt.partition("=")
            if key == "empty":
                empty = True
            elif key in ("pre-vote", "check-quorum"):
                conf[key.replace("-", "_")] = value == "true"
            elif key == "max-batch":
                conf["max_batch_entries"] = int(value)
            else:
                raise ValueError(f"unknown option {opt!r}")
        first = len(self.net.cores) + 1
        ids = [f"n{i}" for i in range(first, first + int(count))]
        founding = membership(ids)
        for k, nid in enumerate(ids, start=first):
            core = self.net.add(empty_node(nid, seed=k, **conf))
            if empty:
                yield f"{nid}: empty log"
                continue
            core.bootstrap(founding)
            while self.net.process(nid):  # persist entry 1, then apply it: before anything else
                pass
            yield f"{nid}: bootstrapped {self.fmt_entry(core.log.entry(1))} commit={core.commit} applied={core.applied}"

    def do_campaign(self, n):
        nid = name(n)
        before = self.state(nid)
        self.net.time_out(nid)
        yield f"{nid}: {before} -> {self.state(nid)}"

    def do_elect(self, n):
        """campaign N, then stabilize without printing it: the preamble of most scenarios."""
        nid = name(n)
        self.net.time_out(nid)
        for _ in self.do_stabilize():
            pass
        for other in self.net.cores:
            yield f"{other}: {self.state(other)}"

    def do_tick(self, n, count="1"):
        nid = name(n)
        before = self.state(nid)
        self.net.tick(nid, int(count))
        after = self.state(nid)
        yield f"{nid}: {before}" + (f" -> {after}" if after != before else " (unchanged)")

    def do_tick_heartbeat(self, n):
        return self.do_tick(n, str(self.net.cores[name(n)].conf.heartbeat_ticks))

    def do_tick_election(self, n):
        return self.do_tick(n, str(self.net.cores[name(n)].conf.election_ticks))

    def do_stabilize(self, *ns):
        nodes = [name(n) for n in ns] or list(self.net.cores)
        for _ in range(100):
            busy = False
            for nid in nodes:
                block = self.process(nid)
                busy = busy or bool(block)
                yield from block
            if not any(q[1] in nodes for q in self.net.queue) and not busy:
                return
            for nid in nodes:
                self.net.deliver(nid)
        raise AssertionError("did not stabilize in 100 rounds")

    def do_process_ready(self, *ns):
        for n in ns:
            yield from self.process(name(n)) or [f"> {name(n)}: nothing to do"]

    def do_deliver_msgs(self, *ns):
        delivered = [d for n in ns for d in self.net.deliver(name(n))] if ns else self.net.deliver()
        for sender, to, msg, term in delivered:
            yield self.fmt_msg(sender, to, msg, term)
        if not delivered:
            yield "no messages"

    def do_propose(self, n, *datas):
        ok = self.net.cores[name(n)].propose([d.encode() for d in datas])
        yield "ok" if ok else "refused"

    def do_propose_conf(self, n, *changes):
        core = self.net.cores[name(n)]
        old = core.log.membership()
        voters, learners = dict(old.voters), dict(old.learners)
        for change in changes:
            op, _, m = change.partition("=")
            target = name(m)
            if op == "add":
                voters[target] = {}
            elif op == "learner":
                learners[target] = {}
            elif op == "promote":
                voters[target] = learners.pop(target, {})
            elif op == "remove":
                voters.pop(target, None)
                learners.pop(target, None)
            else:
                raise ValueError(f"unknown change {change!r}")
        error = core.propose_membership(Membership(voters, learners))
        yield f"refused: {error}" if error else "ok"

    def do_transfer(self, n, m):
        yield "ok" if self.net.cores[name(n)].transfer_leader(name(m)) else "refused"

    def do_read_index(self, n):
        ctx = self.net.cores[name(n)].read_index()
        yield "refused: no leader known" if ctx is None else f"{name(n)}: read {self.label(ctx)} started"

    def do_compact(self, n, index=None):
        nid = name(n)
        self.net.compact(nid, None if index is None else int(index))
        log = self.net.cores[nid].log
        rest = f"log {log.offset + 1}..{log.last_index()}" if log.last_index() > log.offset else "no entries after it"
        yield f"{nid}: snapshot {log.snapshot.index}/{log.snapshot.term}, {rest}"

    def do_partition(self, *args):
        groups, group = [], []
        for arg in args + ("|",):
            if arg == "|":
                groups.append([name(a) for a in group])
                group = []
            else:
                group.append(arg)
        self.net.partition(*groups)
        yield "partition: " + " | ".join(" ".join(g) for g in groups)

    def do_isolate(self, n):
        self.net.isolate(name(n))
        yield f"partition: {name(n)} | " + " ".join(i for i in self.net.cores if i != name(n))

    def do_heal(self):
        self.net.heal()
        yield "healed"

    def do_drop(self, type_):
        self.net.drop_types = set() if type_ == "none" else self.net.drop_types | {type_}
        yield "dropping: " + (" ".join(sorted(self.net.drop_types)) or "nothing")

    def do_status(self, *ns):
        for nid in [name(n) for n in ns] or list(self.net.cores):
            core = self.net.cores[nid]
            log = core.log
            ms = log.membership()
            line = (f"{nid}: {core.role} term={core.term} leader={core.leader or '-'} commit={core.commit} "
                    f"applied={core.applied} last={log.last_index()}/{log.last_term()} {self.fmt_members(ms)}")
            if log.offset:
                line += f" snapshot={log.offset}/{log.snapshot.term}"
            yield line
            if core.role == LEADER:
                for peer in core.peers():
                    pr = core.progress[peer]
                    state = "probe" if pr.probing else ("snapshot" if pr.snapshot_index else "replicate")
                    paused = " paused" if pr.paused(MAX_INFLIGHT) else ""
                    yield f"  {peer}: match={pr.match} next={pr.next} inflight={len(pr.inflight)} {state}{paused}"

    def do_log(self, n):
        nid = name(n)
        core = self.net.cores[nid]
        log = core.log
        if log.offset:
            yield f"snapshot {log.offset}/{log.snapshot.term} {self.fmt_members(log.snapshot.membership)}"
        for index in range(log.offset + 1, log.last_index() + 1):
            marks = "".join([" (unstable)" if index > log.stable else "",
                             " (uncommitted)" if index > core.commit else ""])
            yield self.fmt_entry(log.entry(index)) + marks
        if log.last_index() == 0:
            yield "empty"

    # -- one Ready, in the shell's order ---------------------------------------------------

    def process(self, nid):
        net = self.net
        rd = net.process(nid)
        if rd is None:
            return []
        out = [f"> {nid} ready"]
        if rd.soft_state:
            out.append(f"  state: {self.state(nid, rd.soft_state)}")
        if rd.snapshot:
            out.append(f"  install snapshot: {rd.snapshot.index}/{rd.snapshot.term} "
                       f"{self.fmt_members(rd.snapshot.membership)}")
        if rd.hard_state:
            term, vote, commit = rd.hard_state
            out.append(f"  hard state: term={term} vote={vote or '-'} commit={commit}")
        if rd.entries:
            out.append("  persist: " + " ".join(self.fmt_entry(e) for e in rd.entries))
        for to, msg, term in rd.messages:
            lost = to not in net.cores or not net.reachable(nid, to) or msg.TYPE in net.drop_types
            out.append("  " + self.fmt_msg(nid, to, msg, term) + (" (dropped)" if lost else ""))
        if rd.committed:
            out.append("  apply: " + " ".join(self.fmt_entry(e) for e in rd.committed))
        for ctx, index in rd.read_states:
            out.append(f"  read {self.label(ctx)} " + (f"index={index}" if index else "refused"))
        return out

    # -- formatting ------------------------------------------------------------------------

    def state(self, nid, soft=None):
        core = self.net.cores[nid]
        role, leader, term = soft or (core.role, core.leader, core.term)
        return f"{role} term={term}" + (f" leader={leader}" if leader and role != LEADER else "")

    def label(self, ctx):
        return "r%d" % self.ctx_labels.setdefault(ctx, len(self.ctx_labels) + 1)

    @staticmethod
    def fmt_members(ms):
        text = "voters=(" + " ".join(sorted(ms.voters)) + ")"
        if ms.learners:
            text += " learners=(" + " ".join(sorted(ms.learners)) + ")"
        return text

    def fmt_entry(self, e):
        head = f"{e.index}/{e.term}"
        if e.kind == CONF:
            ms = Membership.from_plain(wire.unpack(e.data))
            return head + ":conf" + self.fmt_members(ms).replace("voters=", "").replace(" learners=", "+learners")
        return head + (":" + self.fmt_data(e.data) if e.data else "")

    @staticmethod
    def fmt_data(data):
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError:
            return repr(bytes(data))
        return text if text.isprintable() and " " not in text else repr(text)

    def fmt_msg(self, sender, to, msg, term):
        head = f"{sender}->{to} {msg.TYPE} term={term}"
        kind = msg.TYPE
        if kind == "raft.vote":
            flags = "".join([" pre" if msg.pre else "", " force" if msg.force else ""])
            return f"{head}{flags} last={msg.last_index}/{msg.last_term}"
        if kind == "raft.vote_resp":
            return f"{head}{' pre' if msg.pre else ''} " + ("granted" if msg.granted else "rejected")
        if kind == "raft.append":
            entries = " ".join(self.fmt_entry(Entry.from_wire(item)) for item in msg.entries)
            ctx = f" ctx={self.label(msg.ctx)}" if msg.ctx else ""
            return f"{head} prev={msg.prev_index}/{msg.prev_term} entries=[{entries}] commit={msg.commit}{ctx}"
        if kind == "raft.append_resp":
            ctx = f" ctx={self.label(msg.ctx)}" if msg.ctx else ""
            if msg.success:
                return f"{head} ok match={msg.match}{ctx}"
            return f"{head} reject" + (f" hint={msg.hint}" if msg.hint else "") + ctx
        if kind == "raft.prop":
            return f"{head} entries=[" + " ".join(self.fmt_data(d) for d, _ in msg.entries) + "]"
        if kind == "raft.snapshot":
            return f"{head} snap={msg.index}/{msg.term} " + self.fmt_members(Membership.from_plain(msg.membership))
        if kind == "raft.read_index":
            return f"{head} ctx={self.label(msg.ctx)}"
        if kind == "raft.read_index_resp":
            return f"{head} ctx={self.label(msg.ctx)} index={msg.index}"
        if kind == "raft.timeout_now":
            return head
        return f"{head} {msg!r}"
