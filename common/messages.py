"""Every message type on pykron's wire, declared once. Grouped by the socket that carries it;
a body evolves only by adding defaulted fields, and a new meaning gets a new type name.
Jobs and executions travel as plain maps in the shapes of common/models.py."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any

from common.schedule import MAX_TIME_MS, MIN_TIME_MS
from common.wire import NEXT_PROTOCOL, Bound, message, reply

FOLLOWUPS_PROTOCOL = 2  # the run ledger's commands that replicate what follows a run
CHECKS_PROTOCOL = 3     # state.check: replicas compare their states' hashes
RESTORE_PROTOCOL = 4    # snapshot.restore and the state.load commands it proposes
BATCH_PROTOCOL = 4      # job.put_batch: a restore's jobs, many to a Raft entry

# The bounds of the state verbs' fields (wire.Bound), beside the int64 and nesting bounds every
# body keeps: a request out of them is refused as it decodes, before anything is proposed.
NAME_CHARS = 256       # a job's, node's or setting's name, a request key
TEXT_CHARS = 4096      # a reason, a setting's value
MAX_LISTED = 10_000    # items in one request's list (acks, records, ticks, executions)
MAX_COUNT = 1_000_000_000
Name = Annotated[str, Bound(most=NAME_CHARS)]
# A stored job's name, as the verbs that reach a job carry it: this release creates names of at
# most 200 characters (models.NAME_CHARS), but releases before it took any length, and a job
# stored must stay reachable: listed, read, run, deleted.
JobName = Annotated[str, Bound(most=TEXT_CHARS)]
Text = Annotated[str, Bound(most=TEXT_CHARS)]
Time = Annotated[int, Bound(lo=MIN_TIME_MS, hi=MAX_TIME_MS)]  # Unix ms, years 1 to 9999
Count = Annotated[int, Bound(lo=0, hi=MAX_COUNT)]
Term = Annotated[int, Bound(lo=0)]
Records = Annotated[list[dict[str, Any]], Bound(most=MAX_LISTED)]
Names = Annotated[list[Name], Bound(most=64)]
Index = Annotated[int, Bound(lo=0)]   # a log index, an offset, a sequence number
Port = Annotated[int, Bound(lo=0, hi=65535)]
Ids = Annotated[list[Text], Bound(most=MAX_LISTED)]
Addrs = Annotated[dict[Name, Text], Bound(most=64)]  # a node's address by role
# Raft's entries [index, term, data, kind] in one append or forwarded proposal: [raft]
# max_batch_entries is at most MAX_LISTED.
Entries = Annotated[list[Annotated[list[Any], Bound(most=4)]], Bound(most=MAX_LISTED)]
MAX_MEMBERS = 100_000  # a cluster's members in one push-pull (wire.MAX_ITEMS)
Updates = Annotated[list[Annotated[list[Any], Bound(most=8)]], Bound(most=MAX_LISTED)]  # gossip's piggybacked
SMALL_BYTES = 64 * 1024      # the body of a request that names things (a read, a delete, a setting)
JOB_BYTES = 1024 * 1024 + SMALL_BYTES  # a job.put's: [api] max_job_bytes is at most 1 MiB

# -- replies (any ROUTER) -------------------------------------------------------------------


@message("ok")
class Ok:
    result: Any = None


@message("error")
class Error:
    code: str
    message: str = ""
    leader: str = ""


# Typed replies: what an `ok` carries back for each request type, its `result` map checked on
# arrival against the reply's fields as a request's body is (wire.typed). ctl.status has none:
# each service adds details of its own to its status.


@reply("node.info")
class NodeInfoReply:
    node: str
    role: str
    addrs: dict[str, str]
    leader: dict[str, Any] | None = None  # {node, term, addrs, key, ready}, None when no leader is known
    key: str = ""                     # this node's CURVE public key
    keys: dict[str, str] = field(default_factory=dict)  # every accepted node's key, by name
    state_check: dict[str, Any] | None = None  # the newest snapshot point the replicas compared
    protocol: int = 1                 # the lowest any server applying the log speaks: what may be proposed
    entry_bytes: int = 0              # the most one Raft entry holds ([raft] max_append_bytes); 0: not said


@reply("leader.get")
class LeaderReply:
    node: str
    term: int
    addrs: dict[str, str]
    ready: bool = False
    key: str = ""                     # the leader's CURVE public key


@reply("job.put", "job.delete", "job.get", "exec.delete_all")
class JobReply:
    job: dict[str, Any]


@reply("job.list")
class JobPage:
    jobs: list[dict[str, Any]]
    more: bool
    seq: int                          # the job feed's sequence the page was read at
    settings: dict[str, Any]
    total: int | None = None          # every job, counted on the first page of a walk only


@reply("exec.list", "busy.list", "tick.fire", "tick.skip")
class Executions:
    executions: list[dict[str, Any]]
    skipped: str = ""                 # a tick.fire whose tick was recorded as skipped: why


@reply("job.run")
class RunStarted:
    """A run-now claimed (or, for a request sent again, the first answer): its executions, and
    the job as the dispatcher read it, so that a face shows it without reading it again."""

    executions: list[dict[str, Any]]
    job: dict[str, Any] | None = None
    skipped: str = ""                 # refused by the job's concurrency, and recorded so: why


@reply("exec.get")
class ExecutionReply:
    execution: dict[str, Any]


@reply("run.claim", "run.skip")
class ClaimReply:
    """A claim's outcome, or a skip's: what was recorded, and the follow-ups it left pending."""

    executions: list[dict[str, Any]]
    skipped: str = ""                 # refused by the job's concurrency (or its turn passed): why
    replace: list[str] = field(default_factory=list)  # running ids the claim replaces (to kill)
    effects: list[dict[str, Any]] = field(default_factory=list)  # pending follow-ups (notices of the skip)
    duplicate: bool = False           # a request claimed before: its first answer, nothing new


@reply("run.record")
class RecordReply:
    """One outcome per ack and per final record, in order (each an Outcome's map)."""

    acks: list[dict[str, Any]]
    finishes: list[dict[str, Any]]


@reply()
class Outcome:
    """One item of a run.record: the execution as recorded, or the error it met alone; with
    what the dispatcher does next, so that nothing is read after a result."""

    execution: dict[str, Any] | None = None
    duplicate: bool = False           # already finished: nothing changed
    group_done: bool = False          # its firing is over (no attempt left on any node)
    group_status: str = ""
    previous_status: str = ""         # the job's status before this firing ended (a recovery?)
    retry: dict[str, Any] | None = None  # the pending retry it left: {key, due_at, execution, job}
    effects: list[dict[str, Any]] = field(default_factory=list)  # follow-ups of the firing that ended
    error: str = ""
    message: str = ""


@reply("exec.unfinished")
class UnfinishedRuns:
    """What a new leader takes over: runs claimed or running, retries due, follow-ups pending."""

    runs: list[dict[str, Any]]        # {execution, job} of every claimed or running execution
    retries: list[dict[str, Any]] = field(default_factory=list)  # {key, due_at, execution, job}
    effects: list[dict[str, Any]] = field(default_factory=list)  # {id, kind, job, group, body, target}
    more: bool = False                # runs after the last of this page remain: ask for them


@reply("settings.get", "settings.put", "note.put")
class SettingsReply:
    settings: dict[str, Any]


@reply("keys.list")
class KeysReply:
    keys: list[dict[str, Any]]        # {key, id, name, kind, status}


@reply("key.accept", "key.reject", "key.pending")
class KeyReply:
    key: dict[str, Any]


@reply("server.register")
class Registered:
    name: str


@reply("raft.peers")
class PeersReply:
    term: int
    leader: str
    peers: list[dict[str, Any]]


@reply("raft.add_peer", "raft.remove_peer")
class MembershipChanged:
    index: int                        # of the configuration entry, once applied


@reply("raft.transfer")
class TransferReply:
    to: str


@reply("exec.kill")
class Killed:
    killed: list[str]


@reply("exec.result")
class ResultRecorded:
    """The result is committed: its executor stops sending it."""

    id: str


@reply("output.get")
class OutputChunk:
    data: bytes
    size: int
    finished: bool


@reply("member.list", "member.leave")
class Members:
    members: list[dict[str, Any]]


@reply("event.fire")
class EventFired:
    ltime: int


@reply("keyring.list", "keyring.install", "keyring.use", "keyring.remove")
class KeyringReport:
    """Who answered and which keys each holds, as `serf keys -list` reports it."""

    members: int
    responded: int
    failed: dict[str, str]
    keys: dict[str, int]
    primary: dict[str, int]


# -- control socket of every service (ipc {run_dir}/{service}.ctl) ---------------------------


@message("ctl.status", max_bytes=SMALL_BYTES)
class CtlStatus:
    """→ ok {pid, ready, role, leader, term, ...service details}."""


# -- raft client port: state verbs, proposals from the dispatcher ----------------------------


@message("node.info", max_bytes=SMALL_BYTES)
class NodeInfo:
    """→ ok {node, role, addrs: {role: tcp address}, leader: {node, addrs} | None}."""


@message("leader.get", max_bytes=SMALL_BYTES)
class LeaderGet:
    """→ ok {node, term, addrs} or error unavailable when there is no leader."""


@message("job.put", max_bytes=JOB_BYTES)
class JobPut:
    """`client` and `seq` identify the request across retries: the state machine applies a
    retried write once and answers it with the first result."""

    job: dict[str, Any]
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("job.put_batch", since=BATCH_PROTOCOL, max_bytes=JOB_BYTES)
class JobPutBatch:
    """Many jobs created or replaced in one Raft entry (a restore), in the order given (parents
    first); each is checked and applied on its own, and the reply says what became of each:
    → ok {results: [{name, created} | {name, error, message}]}. The whole command must fit an
    entry: a client cuts its jobs into batches of at most node.info's entry_bytes."""

    jobs: Records
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@reply("job.put_batch")
class JobBatchReply:
    results: list[dict[str, Any]]


@message("job.delete", max_bytes=SMALL_BYTES)
class JobDelete:
    name: JobName
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("job.get", max_bytes=SMALL_BYTES)
class JobGet:
    """`secrets`: with executor_config's secret values, for a node's own services or a
    management token (others get them redacted, common/secrets.py)."""

    name: JobName
    stale: bool = False
    secrets: bool = False


@message("job.list", max_bytes=SMALL_BYTES)
class JobList:
    """A page of jobs by name, after `after`, skipping `offset` more: → ok {jobs, more, seq,
    settings, and total on the first page}. Pages keep each reply well under the frame limit;
    `seq` is the job feed's sequence the page was read at; `total` counts every job."""

    stale: bool = False
    after: JobName = ""
    limit: Count = 1000
    offset: Count = 0
    secrets: bool = False             # as job.get's
    by: Name = ""                     # a node's api: list what the token it acts for may read


@message("exec.list", max_bytes=SMALL_BYTES)
class ExecList:
    job: JobName
    limit: Count = 100
    stale: bool = False


@message("exec.get", max_bytes=SMALL_BYTES)
class ExecGet:
    job: JobName
    id: Text
    stale: bool = False


# The run ledger's commands of protocol 2 (FOLLOWUPS_PROTOCOL), which replace tick.claim,
# exec.record and tick.skip: the state machine still applies those from an older log.


@message("run.claim", since=FOLLOWUPS_PROTOCOL)
class RunClaim:
    """Claim a run for the executions listed, under its idempotency key: a tick by (job,
    scheduled_at), a manual run by its request (`key`: client/seq), a retry by the failed
    attempt it follows (`key`: that execution's id), a dependent job's run by its parent's
    firing (`key`: the child effect's id). Refused unless `term` is the term of the entry that
    carries it (a stale leader's claim fails), or when the key was claimed. No executions, with
    a `reason`: the run cannot go anywhere, and that is recorded (a child's run with no node).
    `notify` are the rules of the leader's own notifications ([notify]), for a skip's notices."""

    job: JobName
    scheduled_at: Time
    group: int
    term: Term
    executions: Records
    kind: str = "tick"                # tick | manual | retry | child
    key: Text = ""
    reason: Text = ""
    notify: Names = field(default_factory=list)


@message("run.record", since=FOLLOWUPS_PROTOCOL)
class RunRecord:
    """One dispatcher round's acks (an executor started the execution: claimed → running; each
    {job, id, started_at}), final records (idempotent by id) and follow-ups carried out (`done`:
    {id, deliveries}), in one Raft entry: applied in order, each as alone, with one result per
    ack and per record. A failed attempt with retries left is recorded with its pending retry,
    and a firing that ends with its follow-ups (`notify`: as in run.claim)."""

    acks: Records
    finishes: Records
    done: Records = field(default_factory=list)
    notify: Names = field(default_factory=list)
    term: Term = 0


@message("server.register")
class ServerRegister:
    """A server records its service addresses in the replicated state, so any server can
    tell a client where the leader's dispatcher and output PUB are; `store` identifies its
    Raft storage, so the leader notices when a server comes back with its data wiped."""

    name: Name
    addrs: Addrs
    store: Name = ""
    protocol: Annotated[list[Annotated[int, Bound(lo=0, hi=1000)]], Bound(most=2)] = field(
        default_factory=lambda: [1, 1])  # [lowest accepted, spoken]


@message("raft.peers", max_bytes=SMALL_BYTES)
class RaftPeers:
    """→ ok {voters, learners, leader, term, progress}."""


@message("raft.add_peer", max_bytes=SMALL_BYTES)
class RaftAddPeer:
    name: Name
    addrs: Addrs
    learner: bool = False


@message("raft.remove_peer", max_bytes=SMALL_BYTES)
class RaftRemovePeer:
    name: Name


@message("raft.transfer", max_bytes=SMALL_BYTES)
class RaftTransfer:
    """Hand leadership to `name`, or to the most up-to-date other voter when empty."""

    name: Name = ""


@message("tick.skip")
class TickSkip:
    """Ticks that will not run (the misfire policy, no node to run them), with the reason."""

    job: JobName
    ticks: Annotated[list[Time], Bound(most=MAX_LISTED)]
    reason: Text


@message("run.skip", since=FOLLOWUPS_PROTOCOL)
class RunSkip:
    """A tick.skip as the dispatcher records it: skipped rows kept within the job's history
    limit and counted, claimed ticks kept within its catch-up window, and notices as effects."""

    job: JobName
    ticks: Annotated[list[Time], Bound(most=MAX_LISTED)]
    reason: Text
    notify: Names = field(default_factory=list)


@message("exec.unfinished", max_bytes=SMALL_BYTES)
class ExecUnfinished:
    """→ ok {runs, retries, effects}: every claimed or running execution, pending retry and
    pending follow-up, for a new leader; with `followups_only`, no runs (the leader's sweep for
    follow-ups whose report it missed). Runs come in pages cut by bytes, in (group, id) order:
    a reply with `more` is followed by a request for the runs after its last (after_group,
    after_id), whose reply holds no retries or effects (the first page has them all)."""

    followups_only: bool = False
    after_group: int = 0
    after_id: Text = ""


@message("exec.delete_all", max_bytes=SMALL_BYTES)
class ExecDeleteAll:
    """Delete a job's executions and reset its counters (Dkron's DELETE .../executions)."""

    job: JobName
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("snapshot.save", since=3, max_bytes=SMALL_BYTES)
class SnapshotSave:
    """A consistent copy of the state (common/backup.py), in chunks: the first ask, without an
    id, takes it after a linearizable read; then ask by its id and offset until done."""

    id: Name = ""
    offset: Term = 0


@reply("snapshot.save")
class SnapshotChunk:
    id: str
    header: dict[str, Any]
    offset: int
    data: bytes
    done: bool


@message("snapshot.restore", since=RESTORE_PROTOCOL, max_bytes=(1 << 20) + SMALL_BYTES)
class SnapshotRestore:
    """A backup file's state sent to a server in chunks (the first carries its header), then
    loaded into the replicated state through Raft; a cluster that holds jobs is replaced only
    with `force`."""

    id: Name = ""
    offset: Term = 0
    data: bytes = b""
    header: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    force: bool = False


# How long a restore's last chunk is answered within: it waits for every state.load batch to
# apply, which takes longer than any other request (the client waits a little longer still).
RESTORE_WAIT_MS = 120_000


@reply("snapshot.restore")
class RestoreProgress:
    id: str
    received: int
    done: bool = False
    loaded: dict[str, Any] = field(default_factory=dict)  # rows loaded by table, once done


@message("settings.get", max_bytes=SMALL_BYTES)
class SettingsGet:
    stale: bool = False


@message("settings.put", max_bytes=SMALL_BYTES)
class SettingsPut:
    key: Name
    value: Text
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("note.put", since=NEXT_PROTOCOL, max_bytes=SMALL_BYTES)
class NotePut:
    """The cluster's note, a replicated setting only the next protocol knows (under [wire]
    protocol_next): the command that proves the version gate before a real feature needs it."""

    text: Text
    client: Name = ""
    seq: Term = 0
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("keys.list", since=2, max_bytes=SMALL_BYTES)
class KeysList:
    """→ ok {keys: [{key, id, name, kind, status}]}: every key the cluster has heard of."""

    stale: bool = False


@message("key.accept", since=2, max_bytes=SMALL_BYTES)
class KeyAccept:
    """Accept `name`'s pending key, or the key given (a client's, with kind "client", or one
    rejected before); any other key accepted for the name is rejected."""

    name: Name
    key: Name = ""
    kind: Name = ""
    by: Name = ""                     # the token a node's api acts for (the audit's who)


@message("key.reject", since=2, max_bytes=SMALL_BYTES)
class KeyReject:
    """Reject `name`'s key (or the key given): it is cut off from every socket within a second."""

    name: Name = ""
    key: Name = ""
    by: Name = ""                     # the token a node's api acts for (the audit's who)


# -- raft state PUB (Clone pattern: updates carry the applied index) -------------------------


@message("raft.leader")
class RaftLeader:
    """Published on every change and every heartbeat. `ready` turns true only after the
    leader has committed an entry of its own term and applied everything before it."""

    node: str
    leader: str
    term: int
    ready: bool
    applied: int


@message("job.changed")
class JobChanged:
    """A job put or deleted. With no name: reload everything (settings changed, or a snapshot
    replaced the state)."""

    name: str
    job: dict[str, Any] | None
    index: int


# -- scheduler → dispatcher (ipc) ------------------------------------------------------------


@message("tick.fire")
class TickFire:
    job: dict[str, Any]
    scheduled_at: int


# -- dispatcher: run PUB and result ROUTER --------------------------------------------------


@message("dispatcher.heartbeat")
class DispatcherHeartbeat:
    """On topic all\\x00 so executors send to the active dispatcher (highest term)."""

    node: Text
    term: Term


@message("keys.book", since=2)
class KeyBookNotice:
    """The accepted keys, from the leader's dispatcher on `all`, for agents (which have no raft
    to read them from): public key → [name, kind]. Sent when they change, and every few seconds.
    `acl`: the ACL view without secrets' hashes (common/aclview.for_agents), for the calls an
    agent serves (its executions' output)."""

    keys: dict[str, list[str]]
    acl: dict[str, Any] = field(default_factory=dict)


@message("run.start")
class RunStart:
    """Executions of one run: one on a node topic, or several on a tag topic (each executor
    picks its own and re-checks that it is the target). Sent at the claim, also before the
    start time (tick plus jitter), which each executor waits for on its own clock."""

    executions: Records
    job: dict[str, Any]


@message("run.kill")
class RunKill:
    """Stop an execution (its whole process group); it is recorded as killed with the reason."""

    id: Text
    node: Text
    reason: Text


@message("run.ack")
class RunAck:
    id: Text
    job: JobName
    node: Text
    started_at: Time


@message("exec.output")
class ExecOutput:
    """A chunk of an execution's output; `offset` lets a tail detect and fill gaps."""

    id: Text
    job: JobName
    offset: Index
    data: bytes


@message("exec.result")
class ExecResult:
    """Re-sent by the executor until the dispatcher replies ok (the record is committed)."""

    execution: dict[str, Any]


@message("exec.heartbeat")
class ExecHeartbeat:
    """An executor's running executions: each renews its lease at the active dispatcher."""

    node: Text
    ids: Ids


@message("exec.kill", max_bytes=SMALL_BYTES)
class ExecKill:
    """Kill one execution (id), or every running execution of the job (id empty)."""

    job: JobName
    id: Text = ""


@message("job.run", max_bytes=SMALL_BYTES)
class JobRun:
    """Run now. → ok {executions, job} once claimed; does not wait for the run. A retried
    request (same `request`, "client/seq") gets the first answer instead of a second run: the
    state machine keeps the request with its claim."""

    name: JobName
    request: Text = ""


@message("busy.list", max_bytes=SMALL_BYTES)
class BusyList:
    """→ ok {executions: [...running, with the last chunk of output]}."""


# -- executor output ROUTER -----------------------------------------------------------------


@message("output.get", max_bytes=SMALL_BYTES)
class OutputGet:
    """→ ok {data, size, finished} for bytes from `offset` of one execution's full output."""

    id: Text
    offset: Index = 0


# -- gossip ---------------------------------------------------------------------------------


@message("member.list", max_bytes=SMALL_BYTES)
class MemberList:
    """→ ok {members: [member maps]} on the gossip query port."""


@message("member.event")
class MemberEvent:
    """Published locally on gossip's event PUB: kind is join, update, leave, failed or reap."""

    kind: str
    member: dict[str, Any]


@message("member.leave", max_bytes=SMALL_BYTES)
class MemberLeave:
    """Leave the cluster gracefully (Dkron's POST /v1/leave) → ok {members}."""


@message("event.fire", max_bytes=SMALL_BYTES)
class EventFire:
    """A user event to spread to every member (Serf's user event) → ok {ltime}."""

    name: str
    payload: bytes = b""


@message("event.received")
class EventReceived:
    """Published on gossip's user PUB (ipc gossip.user), once per event, Lamport-stamped."""

    ltime: int
    name: str
    payload: bytes = b""


@message("keyring.list", max_bytes=SMALL_BYTES)
class KeyringList:
    """Keyring verbs (Serf's `keys`). On the query port they are fanned out to every alive
    member → ok {members, responded, failed, keys, primary}; between gossip services, over
    the sealed stream, `local` ones apply to the receiver only."""

    local: bool = False


@message("keyring.install", max_bytes=SMALL_BYTES)
class KeyringInstall:
    key: str
    local: bool = False


@message("keyring.use", max_bytes=SMALL_BYTES)
class KeyringUse:
    key: str
    local: bool = False


@message("keyring.remove", max_bytes=SMALL_BYTES)
class KeyringRemove:
    key: str
    local: bool = False


# Gossip datagrams (UDP, wire's single-frame form). `updates` are piggybacked membership
# changes and user events: ["a", name, inc, addr, port, meta] alive, ["s", name, inc, from]
# suspect, ["d", name, inc, from] dead (from == name: left), ["e", ltime, name, payload] event.


@message("gossip.ping")
class GossipPing:
    """A probe: `node` is the member meant (a reused address is not mistaken for it), and
    addr/port are where the ack goes."""

    seq: Index
    node: Text = ""
    addr: Text = ""
    port: Port = 0
    updates: Updates = field(default_factory=list)


@message("gossip.ping_req")
class GossipPingReq:
    """Probe `node` for me (SWIM's indirect probe); `nack`: say so if it does not answer (Lifeguard)."""

    seq: Index
    node: Text
    target_addr: Text
    target_port: Port
    addr: Text
    port: Port
    nack: bool = False
    updates: Updates = field(default_factory=list)


@message("gossip.ack")
class GossipAck:
    seq: Index
    updates: Updates = field(default_factory=list)


@message("gossip.nack")
class GossipNack:
    seq: Index
    updates: Updates = field(default_factory=list)


@message("gossip.broadcast")
class GossipBroadcast:
    """A datagram that carries only updates (memberlist's dedicated gossip)."""

    updates: Updates


# Gossip stream (TCP, through ZeroMQ on the gossip port): push-pull, joins, keyring verbs.


@message("gossip.sync")
class GossipSync:
    """Push-pull anti-entropy and joins, both ways: every member as [name, addr, port, inc,
    state, meta] with state a(live) s(uspect) d(ead) l(eft), and the user event clock."""

    members: Annotated[list[Annotated[list[Any], Bound(most=8)]], Bound(most=MAX_MEMBERS)]
    ltime: Index = 0
    join: bool = False


@message("gossip.sealed")
class GossipSealed:
    """A stream message sealed with the gossip keyring (AES-GCM), used when encryption is on."""

    data: bytes


# -- raft peers (term in the header; etcd's pairs) ------------------------------------------


@message("raft.vote")
class RaftVote:
    """A vote request; `pre` for PreVote (no term change), `force` for a leadership transfer."""

    last_index: Index
    last_term: Term
    pre: bool = False
    force: bool = False


@message("raft.vote_resp")
class RaftVoteResp:
    granted: bool
    pre: bool = False


@message("raft.append")
class RaftAppend:
    """Entries are [index, term, data, kind]; none is a heartbeat. `ctx` carries ReadIndex rounds."""

    prev_index: Index
    prev_term: Term
    entries: Entries
    commit: Index
    ctx: Index = 0


@message("raft.append_resp")
class RaftAppendResp:
    success: bool
    match: Index
    hint: Index = 0
    ctx: Index = 0


@message("raft.prop")
class RaftProp:
    """Proposals a follower forwards to its leader: [data, kind] pairs."""

    entries: Entries


@message("raft.snapshot")
class RaftSnapshot:
    """A snapshot of the state machine at index/term. The shells stream its bytes in
    raft.snap_chunk frames; the core sees this message once the whole file has arrived."""

    index: Index
    term: Term
    membership: Annotated[dict[str, dict[str, Any]], Bound(most=2)]  # voters, learners


@message("raft.snap_chunk")
class RaftSnapChunk:
    index: Index
    term: Term
    offset: Index
    data: bytes
    done: bool
    membership: Annotated[dict[str, dict[str, Any]], Bound(most=2)]  # voters, learners


@message("raft.timeout_now")
class RaftTimeoutNow:
    """Leadership transfer: campaign now, the leader has brought you up to date."""


@message("raft.join")
class RaftJoin:
    """Sent by a server whose log is empty to the servers it knows of: founders compare notes
    before founding a cluster, and a leader adds a server it does not have (or one whose
    storage was wiped) as a learner, then promotes it once it has caught up."""

    store: Name
    addrs: Addrs


@message("raft.join_resp")
class RaftJoinResp:
    fresh: bool          # the answering server's log is empty too
    leader: Text = ""
    leader_peer: Text = ""


@message("raft.read_index")
class RaftReadIndex:
    ctx: Index


@message("raft.read_index_resp")
class RaftReadIndexResp:
    """index 0: the leader cannot serve reads yet (no entry of its term committed)."""

    ctx: Index
    index: Index


# The ACL's messages (protocol 3) live in a module of their own; imported here so that they
# register with the rest and `messages as m` names them too.
from common.acl_messages import *  # noqa: E402,F401,F403
