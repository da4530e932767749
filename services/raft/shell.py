"""The raft service's shell: drives the pure core over the ZeroMQ peer transport, the SQLite
log and the peewee state machine; serves state verbs on the client port (writes proposed and
answered once applied, reads by ReadIndex); and publishes on the state PUB who leads and which
jobs changed, for the scheduler and dispatcher of this node."""

from __future__ import annotations

import logging
import os
import queue
import random
import sys
import threading

import zmq

from common import config, curve, errors, messages as m, metrics, schema, secrets, wire
from common.disk import FreeSpace
from common.loop import Loop, mono_ms
from services.raft.access import Access
from services.raft.admission import Admission
from services.raft.audit import AUDITED
from services.raft.backups import Backups
from services.raft.checks import hash_pinned
from services.raft.core import CONF, LEADER, Config, Raft, carry_out
from services.raft.fsm import StateMachine, command as fsm_command
from services.raft.joining import Joining
from services.raft.refusal import environmental
from services.raft.snapshots import StateFiles
from services.raft.state_schema import STATE
from services.raft.store import LogStore
from services.raft.transport import PeerTransport
from services.raft.verbs import ClientVerbs

log = logging.getLogger(__name__)

LEADER_TOPIC = wire.topic("leader")
JOB_TOPIC = wire.topic("job")
FEED_HEARTBEAT_MS = 500   # subscribers treat a second of silence as "no leader here"
REGISTER_CHECK_MS = 2000  # how often a server checks that its addresses are in the state
JOIN_MS = 300             # how often a server with an empty log knocks, and the leader reconciles
MAX_READY_ROUNDS = 4
HASHED_CHECK_MS = 200     # how often hashes of the state finished on their thread are reported
CLUSTER_WRITES = frozenset({"run.claim", "run.record", "run.skip", "server.register", "key.pending"})
APPLY_AGAIN_MS = 1000     # a batch the machine could not store (a full disk) is applied again this often


class RaftShell(ClientVerbs):
    def __init__(self, conf, loop):
        self.conf, self.loop, self.name = conf, loop, conf.node.name
        data, rc = conf.node.data_dir, conf.raft
        self.snapshots = StateFiles(data, conf.source)
        self.free_space = FreeSpace(data, conf.node.min_free_bytes)
        self.hashed = queue.SimpleQueue()  # (index, digest) of snapshot points hashed on a thread
        self.store = LogStore(os.path.join(data, "raft-log.db"), self.snapshots.recover_hint())
        hard_state, snapshot, entries = self.store.load()
        self.fsm = self.open_state(snapshot, hard_state)
        self.max_entry_bytes = min(rc.max_append_bytes, conf.wire.max_message_bytes // 2)
        self.core = Raft(Config(self.name, rc.tick_ms, rc.heartbeat_ticks, rc.election_ticks, rc.max_batch_entries,
                                max_append_bytes=self.max_entry_bytes),
                         rng=random.Random(), hard_state=hard_state, entries=entries, snapshot=snapshot,
                         now=loop.now(), applied=self.fsm.applied)
        self.pending = {}      # request key → (env, timer, leader it went to, when): answered once applied
        self.reads = {}        # ReadIndex ctx → [(env, answer, timer)]: asked of the leader of the time
        self.waiting = []      # (index, env, answer): reads waiting for the apply to catch up
        self.members = {}      # gossip's view, for the executors nodes offer
        self.backlog = []      # committed entries not yet applied, while the state cannot be written
        self.stalled = None    # why (a full disk...), while the backlog waits
        self.was_ready, self.registering = False, 0
        self.peer_router = loop.socket(zmq.ROUTER, "peer", on=self.on_peer, who=curve.SERVER_KINDS,
                                       bind=config.endpoints(conf, "raft", "peer", rc.peer_port))
        # From another host come the clients' requests, the largest a job or a batch of jobs
        # (m.JOB_BYTES); the dispatcher's records, which may be larger, come over ipc.
        self.client_router = loop.socket(zmq.ROUTER, "client", on=self.on_client,
                                         bind=config.endpoints(conf, "raft", "client", rc.client_port),
                                         tcp_max_bytes=m.JOB_BYTES + m.SMALL_BYTES)
        self.state_pub = loop.socket(zmq.PUB, "state", bind=config.endpoints(conf, "raft", "state", rc.state_port))
        self.transport = PeerTransport(loop, self.name, self.peer_router, self.snapshots.dir, self.on_peer)
        self.membership = None
        self.joining = Joining(self)
        self.admission = Admission(self)
        self.backups = Backups(self)
        self.access = Access(self)
        self.admission.write_book()
        self.sync_peers()
        self.joining.knock()
        loop.every(JOIN_MS, self.joining.knock)
        loop.every(JOIN_MS, self.joining.reconcile)
        loop.every(JOIN_MS, self.admission.refresh)
        self.gossip = loop.peer("gossip", [config.ipc(conf, "gossip", "query")])
        loop.socket(zmq.SUB, "members", on=self.on_members, connect=[config.ipc(conf, "gossip", "events")],
                    subscribe=[b""])
        loop.follow(self.core.deadline, self.core.tick)
        loop.idle.append(self.process)
        loop.every(FEED_HEARTBEAT_MS, self.publish_leader)
        loop.every(REGISTER_CHECK_MS, self.maybe_register)
        loop.every(HASHED_CHECK_MS, self.report_hashed)
        loop.every(conf.gossip.refresh_ms * 2, self.refresh_members)
        loop.status = self.status
        for spec in (metrics.RAFT_COMMIT, metrics.RAFT_LEADER_CHANGES, metrics.RAFT_TERM, metrics.RAFT_STATE_DIVERGED):
            loop.metrics.add(spec)  # exported from the start, before the first election or commit
        self.refresh_members()
        loop.ready = True

    # -- carrying out the core's Ready -----------------------------------------------------

    def process(self):
        for _ in range(MAX_READY_ROUNDS):
            rd = self.core.ready()
            if rd.empty():
                break
            carry_out(rd, install=self.install, persist=self.persist, send=self.send_peer, apply=self.apply_batches,
                      read=self.serve_read)
            if rd.soft_state and rd.soft_state[1] not in ("", (self.core.soft_saved or ("", "", 0))[1]):
                self.loop.metrics.add(metrics.RAFT_LEADER_CHANGES).inc()  # a new leader seen, as etcd counts
            self.core.advance(rd)
            if rd.soft_state:
                log.info("raft state role=%s leader=%s term=%d", *rd.soft_state)
                self.abandon(rd.soft_state[1])
                if rd.soft_state[1]:
                    self.loop.after(0, self.maybe_register)  # clients find this server's services at once
                self.loop.metrics.add(metrics.RAFT_TERM).set(rd.soft_state[2])
        self.sync_peers()
        self.maybe_snapshot()
        self.publish_leader_if_changed()

    def persist(self, hard_state, entries, snapshot):
        if self.conf.raft.batching or len(entries) <= 1:
            return self.store.save(hard_state, entries, snapshot)
        for i, entry in enumerate(entries):  # the baseline: an fsync per entry
            self.store.save(hard_state if i == len(entries) - 1 else None, [entry], snapshot if i == 0 else None)

    def apply_batches(self, entries):
        self.backlog.extend(entries)
        if self.stalled is None:
            self.apply_backlog()

    def apply_backlog(self):
        """Committed entries in order. An error of the machine (a full disk, an I/O error) is
        no refusal, which would let the replicas diverge: the batch is applied again every
        APPLY_AGAIN_MS until it goes through, and writes are refused meanwhile. A batch ends at
        each snapshot point, where the state is hashed as of that entry."""
        every = self.conf.raft.snapshot_entries
        while self.backlog:
            end = next((i + 1 for i, e in enumerate(self.backlog) if e.index % every == 0), len(self.backlog))
            batch = self.backlog[:end] if self.conf.raft.batching else self.backlog[:1]  # baseline: one per entry
            try:
                self.apply(batch)
            except Exception as exc:
                if not environmental(exc):
                    raise
                if self.stalled is None:
                    log.exception("cannot apply entries %d..%d; applying again every %d ms",
                                  batch[0].index, batch[-1].index, APPLY_AGAIN_MS)
                self.stalled = f"{type(exc).__name__}: {exc}"
                self.loop.after(APPLY_AGAIN_MS, self.apply_backlog)
                return
            del self.backlog[:len(batch)]
            if batch[-1].index % every == 0:
                self.check_state(batch[-1].index)
        if self.stalled is not None:
            log.info("applied again up to index %d", self.fsm.applied)
        self.stalled = None

    def check_state(self, index):
        """Hash the state as of this snapshot point, on a thread over a read transaction pinned
        now (hashing 100,000 jobs takes most of a second, longer than an election timeout), and
        report it once done; the other servers report theirs."""
        reader = self.fsm.pinned_reader()
        threading.Thread(target=lambda: self.hashed.put((index, hash_pinned(reader))), daemon=True,
                         name=f"state-hash-{index}").start()

    def report_hashed(self):
        while not self.hashed.empty():
            index, digest = self.hashed.get()
            try:
                self.propose(None, "state.check", server=self.name, index=index, checksum=digest)
            except errors.Error as exc:  # no leader now, or a server not yet upgraded: this point goes unchecked
                log.info("state check not reported index=%d: %s", index, exc)

    def report_divergence(self):
        for index, reports in self.fsm.diverged:
            self.loop.metrics.add(metrics.RAFT_STATE_DIVERGED).inc()
            log.error("replica states differ at index=%d: %s; the odd one out recovers with "
                      "`pykron recover-replica -c <its node.toml>`", index,
                      ", ".join(f"{server} {digest[:12]}" for server, digest in sorted(reports.items())))

    def sync_peers(self, again=False):
        """Dial the members (again: those whose key was not known before, too)."""
        membership = self.core.log.membership()
        if membership != self.membership or again:
            self.membership = membership
            self.transport.sync({**membership.voters, **membership.learners}, self.admission.server_key)

    def send_peer(self, to, msg, term):
        if isinstance(msg, m.RaftSnapshot):
            self.transport.send_snapshot(to, msg, term, self.snapshots.path(msg.index))
        else:
            self.transport.send(to, msg, term)

    def install(self, snap):
        log.info("installing snapshot index=%d term=%d from the leader", snap.index, snap.term)
        incoming = self.transport.incoming_path(snap.index)
        schema.check_file(incoming, STATE)  # one from a newer pykron stops this one before it replaces anything
        self.snapshots.install(incoming, snap.index, close_state=self.fsm.close)
        self.fsm = StateMachine(self.snapshots.state_path, protocol=wire.protocol()[1])
        self.access.changed()
        self.backlog = [e for e in self.backlog if e.index > snap.index]
        self.admission.write_book()
        self.publish_all_jobs()

    def open_state(self, snapshot, hard_state):
        """state.db checked against the log: whole, and not behind the log's snapshot (whose
        entries the log no longer holds, so they could never be applied again): a missing or
        stale one is rebuilt from that snapshot, never left to start empty."""
        self.snapshots.check()
        fsm = StateMachine(self.snapshots.state_path, protocol=wire.protocol()[1])
        base = snapshot.index if snapshot else 0
        if fsm.applied < base:
            log.warning("state.db applied=%d is behind the log's snapshot index=%d", fsm.applied, base)
            fsm.close()
            self.snapshots.rebuild(base)
            fsm = StateMachine(self.snapshots.state_path, protocol=wire.protocol()[1])
        elif fsm.applied > max(hard_state[2], base) and self.store.fresh:
            raise errors.Halt(f"{self.store.path}: a new, empty Raft log, but state.db has applied entries up to "
                              f"{fsm.applied}: this server lost its log (its votes with it); "
                              f"{self.snapshots.recover_hint()}")
        return fsm

    def apply(self, entries):
        batch = [(e.index, e.term, _command(e) if e.data and e.kind != CONF else None) for e in entries]
        results = self.fsm.apply(batch)
        if self.fsm.diverged:
            self.report_divergence()
        if self.fsm.acl_changed:
            self.access.changed()
        if self.fsm.keys_changed or self.fsm.acl_changed:
            self.admission.write_book()  # the node's processes let the new keys in (or cut them off) now
        for (index, _, command), result in zip(batch, results):
            key = command.get("req") if isinstance(command, dict) else f"conf/{index}" if command is None else None
            if key in self.pending:
                env, timer, _, proposed_at = self.pending.pop(key)
                self.loop.metrics.add(metrics.RAFT_COMMIT).observe((mono_ms() - proposed_at) / 1000)
                timer.cancel()
                self.answer(env, result if command else {"index": index})
            if isinstance(command, dict) and command.get("op") == "server.register" \
                    and isinstance(command.get("args"), dict) and command["args"].get("name") == self.name:
                self.registering = 0
        if self.core.role == LEADER:
            # The job feed is for the scheduler of the leader; one that takes over later loads
            # a snapshot of the jobs first, and the feed's sequence numbers show any gap.
            for seq, name, job in self.fsm.changes:
                self.loop.send(self.state_pub, m.JobChanged(name=name, job=job, index=seq), topic=JOB_TOPIC)
        still = []
        for index, env, answer in self.waiting:
            if self.fsm.applied >= index:
                self._answer_read(env, answer)
            else:
                still.append((index, env, answer))
        self.waiting = still

    def maybe_snapshot(self):
        applied, base = self.fsm.applied, self.core.log.snapshot.index
        if applied - base >= self.conf.raft.snapshot_entries and applied <= self.core.log.stable:
            self.snapshots.take(self.fsm, applied)
            term = self.core.log.term(applied)
            self.core.compact(applied, term)
            self.store.compact(self.core.log.snapshot)

    def serve_read(self, ctx, index):
        for env, answer, timer in self.reads.pop(ctx, []):
            timer.cancel()
            if index == 0:
                # Refused while a new leader has not committed in its term (or has lost its lead):
                # the same "no leader yet" as an election, so callers retry it the same way.
                self.loop.reply_error(self.client_router, env, errors.NotLeader(
                    "no leader can serve a linearizable read yet; retry, or read with stale"))
            elif self.fsm.applied >= index:
                self._answer_read(env, answer)
            else:
                self.waiting.append((index, env, answer))

    def _answer_read(self, env, answer):
        try:
            self.loop.reply(self.client_router, env, answer())
        except errors.Error as err:
            self.loop.reply_error(self.client_router, env, err)

    def answer(self, env, result):
        if result and isinstance(result.get("job"), dict):  # job.put, job.delete, exec.delete_all
            result = {**result, "job": secrets.redact(result["job"], self.conf.security.secret_keys)}
        if result and "error" in result:
            self.loop.reply_error(self.client_router, env, errors.Error.from_code(result["error"], result["message"]))
        else:
            self.loop.reply(self.client_router, env, result)

    # -- leadership feed -------------------------------------------------------------------

    def leader_ready(self):
        """Leader and has applied an entry of its own term: its view of the state is complete."""
        return self.core.role == LEADER and self.fsm.applied >= self.core.leader_start > 0

    def publish_leader(self):
        self.loop.send(self.state_pub, m.RaftLeader(node=self.name, leader=self.core.leader, term=self.core.term,
                                                    ready=self.leader_ready(), applied=self.fsm.applied),
                       topic=LEADER_TOPIC)

    def publish_leader_if_changed(self):
        ready = self.leader_ready()
        if ready != self.was_ready:
            self.was_ready = ready
            log.info("leader ready=%s term=%d", ready, self.core.term)
            self.publish_leader()

    def publish_all_jobs(self):
        """After a snapshot replaced the state, subscribers must reload."""
        self.loop.send(self.state_pub, m.JobChanged(name="", job=None, index=self.fsm.job_seq), topic=JOB_TOPIC)

    def maybe_register(self):
        addrs, protocol = config.addrs(self.conf), wire.protocol()
        if not self.core.leader or (self.fsm.server(self.name) == {**addrs, "store": self.store.store_id}
                                    and self.fsm.server_protocols().get(self.name) == protocol):
            return
        if self.loop.now() - self.registering > 5 * REGISTER_CHECK_MS:  # the last try may have been lost
            self.registering = self.loop.now()
            try:
                self.propose(None, "server.register", name=self.name, addrs=addrs, store=self.store.store_id,
                             **({"protocol": protocol} if protocol != [1, 1] else {}))
            except errors.Unavailable:
                self.registering = 0

    # -- requests --------------------------------------------------------------------------

    def on_peer(self, env):
        if env.peer and env.peer != env.sender:
            # A server's key speaks for that server only: another name in the header is forged.
            self.loop.dropped["sender"] += 1
            return log.warning("dropped %s from key of %s claiming to be %s", env.type, env.peer, env.sender)
        self.transport.remember(env)
        if isinstance(env.msg, m.RaftJoin):
            return self.joining.on_join(env)
        if isinstance(env.msg, m.RaftJoinResp):
            return self.joining.answered(env)
        if isinstance(env.msg, m.RaftSnapChunk):
            env = self.transport.receive_chunk(env)
            if env is None:
                return
        self.core.step(env, self.loop.now())

    def propose(self, env, op, session=("", 0), wait_ms=None, **args):
        if self.stalled is not None:
            raise errors.Unavailable(f"{self.name} cannot write its state ({self.stalled}): writes wait until it can")
        if env is not None and op not in CLUSTER_WRITES:
            # A client's write on a nearly full disk is refused here, before its entry is
            # appended, rather than met by SQLite mid-transaction; the cluster's own (claims,
            # results, registrations) are small, and the jobs already stored go on running.
            self.free_space.check()
        req = f"{self.name}/{wire.new_id().hex()}"
        command = dict(fsm_command(op, args), req=req)
        if "v" in command:
            self.require_protocol(op, command["v"])
        if session[0] and session[1]:
            command["client"], command["seq"] = session
        if op in AUDITED and min(self.spoken().values(), default=1) >= m.ACL_PROTOCOL:
            # Who and when, for the audit: in the entry, so that every replica records the same.
            command["by"], command["at"] = self.access.who(env), self.loop.now()
        data = wire.pack(command)
        if len(data) > self.max_entry_bytes:
            raise errors.BadRequest(f"{op}: a command of {len(data)} bytes is over the {self.max_entry_bytes} "
                                    "an entry may hold ([raft] max_append_bytes)")
        if not self.core.propose([data]):
            raise errors.NotLeader("no leader: the cluster cannot take writes now (an election is under way)")
        self.wait(req, env, wait_ms)

    def require_protocol(self, op, version):
        """etcd's lowest-common-version rule: a command of protocol N is proposed only once every
        server that applies the log (voters and learners) has registered N. A record read here
        may be stale, but versions only rise (no downgrade but by a snapshot restore), so a stale
        one errs on the side of refusing."""
        spoken = self.spoken()
        behind = sorted(f"{n} speaks {v}" for n, v in spoken.items() if v < version)
        if behind:
            raise errors.Unavailable(f"cluster not yet upgraded: {op} needs protocol {version} on every server "
                                     f"({', '.join(behind)})")

    def spoken(self):
        """The protocol each server that applies the log (voters and learners) has registered."""
        membership, registered = self.core.log.membership(), self.fsm.server_protocols()
        return {n: registered.get(n, [1, 1])[1] for n in {**membership.voters, **membership.learners}}

    def wait(self, key, env, wait_ms=None):
        """The request is answered once its entry applies, or forgotten after wait_ms (twice the
        call timeout unless the verb waits longer, as a restore's last batch does)."""
        if env is None:
            return
        timer = self.loop.after(wait_ms or self.conf.wire.call_timeout_ms * 2, lambda: self.pending.pop(key, None))
        self.pending[key] = (env, timer, self.core.leader, mono_ms())

    def abandon(self, leader):
        """The leader changed (or is lost): what went to another leader and has not applied here
        is answered not_leader now, naming the new one when known, rather than left to time out
        (the old one may be dead with it). Whether it commits later or not, a client may send it
        again: a write's session (client, seq) applies it once and answers a repeat with the first
        result. A linearizable read asked of the old leader is answered the same way."""
        why = f"the leader changed to {leader}" if leader else "the leader was lost (an election is under way)"
        for key, (env, timer, via, _) in list(self.pending.items()):
            if via != leader:
                del self.pending[key]
                timer.cancel()
                self.loop.reply_error(self.client_router, env, errors.NotLeader(f"{why}; send the request again",
                                                                                 leader=leader))
        reads, self.reads = self.reads, {}
        for waiting in reads.values():
            for env, _, timer in waiting:
                timer.cancel()
                self.loop.reply_error(self.client_router, env, errors.NotLeader(f"{why}; read again", leader=leader))

    def read(self, env, stale, answer):
        if stale:
            return self._answer_read(env, answer)
        ctx = self.core.read_index()
        if ctx is None:
            raise errors.NotLeader("no leader to confirm a linearizable read; retry, or read with stale")

        def expire():
            for waiting_env, _, _ in self.reads.pop(ctx, []):
                self.loop.reply_error(self.client_router, waiting_env, errors.Timeout("the leader did not confirm the read"))

        self.reads.setdefault(ctx, []).append((env, answer, self.loop.after(self.conf.wire.call_timeout_ms, expire)))

    # -- membership, from the local gossip service -----------------------------------------

    def refresh_members(self):
        self.gossip.call(m.MemberList(), self._got_members)

    def _got_members(self, result, err):
        if err is None:
            self.members = {x["name"]: x for x in result.members}

    def on_members(self, env):
        member = env.msg.member
        if env.msg.kind == "reap":
            self.members.pop(member["name"], None)
        else:
            self.members[member["name"]] = member

    def status(self):
        return {**self.core.status(), "leader_ready": self.leader_ready(), "fsyncs": self.store.fsyncs,
                "disk": {"free_bytes": self.free_space.bytes_free(), "low": self.free_space.low()},
                "state_checks": self.fsm.state_checks(),
                "protocol": min(self.spoken().values(), default=1),  # what the gate lets through
                "sent": self.transport.sent,
                "sqlite": {"raft-log.db": self.store.pragmas(), "state.db": self.fsm.pragmas()}}


def _command(entry):
    """A committed command; one that does not decode is handed on as it is, for the state
    machine to refuse like any other malformed command (raising here would stop every replica
    at the same entry, for ever)."""
    try:
        return wire.unpack(entry.data)
    except wire.WireError:
        return b"undecodable"


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-raft")
    loop = Loop(conf, service="raft")
    loop.start(lambda: RaftShell(conf, loop))
    sys.exit(loop.run())
