"""The one ZeroMQ client library, behind both faces (the api and pykronctl). Given one server
address it asks that node where its services and the leader's live, then routes each verb:
state to the raft client port, membership to gossip, run/busy to the leader's dispatcher,
live output to the leader's output PUB, full output to the executing node's executor. Over
TCP it speaks CURVE with a client keypair, and dials a server only with the key it must have:
the first one's is given, the others' come from that server, which the first key proved."""

from __future__ import annotations

import os
import sys
import threading
import time

import zmq

from common import backup, config, curve, errors, messages as m, restore as restore_plan, wire
from common.aclverbs import AclVerbs


JOB_PAGE = 1000
LEADER_TRY_MS = 1000  # one try of a request to the leader's services (see _leader_call)
BATCH_CALLS = 4       # a restore's batch (thousands of jobs in one entry) waits this many call timeouts


def parse_server(server):
    """"HOST", "HOST:PORT" (raft client port) or a full tcp:// or ipc:// endpoint."""
    server = (server or "localhost").strip()
    if server.startswith(("tcp://", "ipc://")):
        return server
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    if port and not port.isdigit():
        raise errors.BadRequest(f"bad server address {server!r}: port must be a number")
    port = int(port) if port else config.defaults()["raft"]["client_port"]
    return f"tcp://{host or server}:{port}"


class Backoff:
    """How long a client waits before it sends a refused request again: not at all the first
    time a server names a new leader (the server forwards to it now), else 50 ms doubling up to
    half the shortest election timeout, so that a retry lands soon after a new leader is elected
    and a cluster with none is not asked in a busy loop."""

    FIRST_S = 0.05

    def __init__(self):
        defaults = config.defaults()["raft"]
        self.most = defaults["tick_ms"] * defaults["election_ticks"] / 2000
        self.next, self.named = self.FIRST_S, ""

    def pause(self, leader=""):
        if leader and leader != self.named:
            self.named = leader
            return 0.0
        pause, self.next = self.next, min(self.next * 2, self.most)
        return pause


class Client(AclVerbs):
    """Thread-safe: each thread gets its own DEALER sockets (ZeroMQ sockets are not shareable)."""

    def __init__(self, server="localhost", *, timeout_ms=None, sender="client", keypair=None, server_key=None,
                 plain=False):
        """keypair: this client's (an accepted client key, or the node's own on its host);
        server_key: the public key of `server`, needed when it is a tcp address; plain: a
        cluster of the benchmark baseline ([wire] plain_tcp), which speaks no CURVE."""
        self.plain = plain
        self.endpoint = parse_server(server)
        self.timeout_ms = timeout_ms or config.defaults()["wire"]["call_timeout_ms"]
        self.sender = sender
        self.keypair = keypair
        self.keys = {self.endpoint: server_key} if server_key else {}  # tcp endpoint → its server's key
        self.ctx = zmq.Context.instance()
        self.local = threading.local()
        self.info = None

    # -- transport -------------------------------------------------------------------------

    def call(self, endpoint, msg, *, timeout_ms=None):
        """One request → its reply's map, as it came (`ask` types it). While the server answers
        not_leader (an election takes about a second) it is retried with backoff until the
        timeout. Raises errors.Error subclasses."""
        timeout_ms = timeout_ms or self.timeout_ms
        deadline = time.monotonic() + timeout_ms / 1000
        retry = Backoff()
        while True:
            try:
                return self.call_once(endpoint, msg, timeout_ms=timeout_ms)
            except errors.NotLeader as err:
                pause = retry.pause(err.leader)
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)

    def ask(self, endpoint, msg, *, timeout_ms=None):
        """call, answered with the request's typed reply (common/messages.py). Unavailable when
        the reply does not fit it."""
        result = self.call(endpoint, msg, timeout_ms=timeout_ms)
        try:
            return wire.typed(wire.reply_type(msg), result)
        except wire.WireError as exc:
            raise errors.Unavailable(f"{endpoint} answered {msg.TYPE} with a malformed reply: {exc}") from None

    def document(self, endpoint, msg):
        """A reply the faces show whole (JSON, a CLI table): checked as ask checks it, handed
        on as its map."""
        return wire.fields(self.ask(endpoint, msg))

    def call_once(self, endpoint, msg, *, timeout_ms=None):
        """Send one request and wait for its reply; on timeout reopen the socket and retry once
        (Lazy Pirate). Unavailable when nobody answers."""
        timeout_ms = timeout_ms or self.timeout_ms
        for attempt in (1, 2):
            sock = self._socket(endpoint)
            msg_id = wire.new_id()
            sock.send_multipart(wire.encode(msg, self.sender, msg_id=msg_id))
            deadline = time.monotonic() + timeout_ms / 1000
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sock.poll(int(left * 1000) + 1):
                    break
                try:
                    env = wire.decode(sock.recv_multipart())
                except wire.WireError as exc:
                    self._reset(endpoint)
                    raise errors.Unavailable(f"{endpoint} answered {msg.TYPE} with a malformed reply: {exc}") from None
                if env.re != msg_id:
                    continue  # a late reply to an earlier, abandoned request
                if isinstance(env.msg, m.Error):
                    raise errors.Error.from_code(env.msg.code, env.msg.message, env.msg.leader)
                return env.msg.result
            self._reset(endpoint)
        raise errors.Unavailable(f"no reply from {endpoint} to {msg.TYPE} within {timeout_ms} ms")

    def _socket(self, endpoint):
        socks = self.local.__dict__.setdefault("socks", {})
        sock = socks.get(endpoint)
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, wire.max_frame_bytes())
            self._dial(sock, endpoint)
            socks[endpoint] = sock
        return sock

    def _dial(self, sock, endpoint):
        if endpoint.startswith("tcp://") and not self.plain:
            if self.keypair is None:
                sock.close(0)
                raise errors.Unavailable(f"{endpoint}: a client key is needed over tcp (pykronctl --key FILE, "
                                         f"or PYKRON_KEY; `pykronctl keys new FILE` makes one)")
            key = self.keys.get(endpoint)
            if key is None:
                sock.close(0)
                raise errors.Unavailable(f"{endpoint}: its server's public key is not known (pykronctl --server-key, "
                                         f"or PYKRON_SERVER_KEY; `pykronctl keys show` on that server prints it)")
            curve.dial_socket(sock, self.keypair, key)
        sock.connect(endpoint)

    def learn(self, addrs, key):
        """The key that serves these addresses, from a server this client already trusts."""
        if key:
            for addr in addrs.values():
                self.keys[addr] = key

    def _reset(self, endpoint):
        sock = self.local.__dict__.get("socks", {}).pop(endpoint, None)
        if sock is not None:
            sock.close(0)

    def close(self):
        for sock in self.local.__dict__.pop("socks", {}).values():
            sock.close(0)

    # -- discovery ---------------------------------------------------------------------------

    def node_info(self, refresh=False):
        if self.info is None or refresh:
            info = self.document(self.endpoint, m.NodeInfo())
            self.learn(info["addrs"], info.get("key"))
            leader = info.get("leader") or {}
            self.learn(leader.get("addrs") or {}, leader.get("key"))
            self.info = info
        return self.info

    def node_key(self, name):
        """An accepted node's key, as the server this client trusts tells it."""
        return self.node_info().get("keys", {}).get(name) or self.node_info(refresh=True).get("keys", {}).get(name)

    def _addr(self, role, *, leader=False):
        info = self.node_info()
        if not leader:
            return info["addrs"][role]
        addrs = (info.get("leader") or {}).get("addrs") or {}
        if role not in addrs:
            info = self.node_info(refresh=True)
            addrs = (info.get("leader") or {}).get("addrs") or {}
        if role not in addrs:
            # No leader yet, or one whose addresses are not in the replicated state yet.
            raise errors.NotLeader("the cluster has no leader that can be reached yet")
        return addrs[role]

    def _leader_call(self, role, msg):
        """ask the leader's service; while the leader is unknown or moving, retried with
        backoff (the first answer names where to go next). A leader that died with the request
        leaves it unanswered: each try waits a second at most, and the tries go on for twice the
        timeout, so that a request rides through a failover (about a second) to the next leader;
        what is asked of a leader is safe to ask again (a run-now carries its request id)."""
        deadline = time.monotonic() + 2 * self.timeout_ms / 1000
        retry = Backoff()
        while True:
            try:
                return self.ask(self._addr(role, leader=True), msg, timeout_ms=min(LEADER_TRY_MS, self.timeout_ms))
            except (errors.NotLeader, errors.Unavailable) as err:
                pause = retry.pause(err.leader)
                if time.monotonic() + pause > deadline:
                    raise
                self.node_info(refresh=True)
            time.sleep(pause)

    # -- verbs -------------------------------------------------------------------------------

    def jobs(self, stale=False):
        """Every job, read a page at a time (a busy cluster may change between pages)."""
        return self.job_page(0, sys.maxsize, stale)[0]

    def job_page(self, offset, limit, stale=False):
        """Jobs offset..offset+limit in name order, and how many there are: one page of a list
        without reading the rest → (jobs, total)."""
        found, after = [], ""
        while True:
            page = self.ask(self.endpoint, m.JobList(stale=stale, after=after, offset=0 if after else offset,
                                                    limit=min(JOB_PAGE, max(1, limit - len(found))),
                                                    by=self.acting_for()))
            found.extend(page.jobs)
            if not after:
                total = page.total  # sent with the first page only
            if not page.more or len(found) >= limit:
                return found[:limit], total
            after = page.jobs[-1]["name"]

    def job(self, name, stale=False, secrets=False):
        """secrets: with executor_config's secret values (a node's own or a management token's
        call; others get them redacted whatever they ask)."""
        return self.ask(self.endpoint, m.JobGet(name=name, stale=stale, secrets=secrets)).job

    def put_job(self, job):
        return self.ask(self.endpoint, m.JobPut(job=job, **self._request())).job

    def delete_job(self, name):
        return self.ask(self.endpoint, m.JobDelete(name=name, **self._request())).job

    def restore(self, docs):
        """Create or replace many jobs, parents before children (Dkron's restore; `pykronctl
        import`) → [(name, error or None)]. The whole list is checked first (common/restore.py:
        BadRequest, and nothing stored). The jobs go in batches of one Raft entry each once
        every server speaks protocol 4, else one job to an entry. A job the cluster refuses is
        reported and the rest go on; an unavailable cluster stops the restore."""
        names, sizes = restore_plan.order(docs, lambda: {j["name"] for j in self.jobs()})
        docs_by_name = {doc["name"]: doc for doc in docs}
        info = self.node_info(refresh=True)
        if info.get("protocol", 1) < m.BATCH_PROTOCOL or not info.get("entry_bytes"):
            return self._put_each(names, docs_by_name)
        results = []
        for batch in restore_plan.batches(names, sizes, info["entry_bytes"]):
            if len(batch) == 1 and not restore_plan.fits(sizes[batch[0]], info["entry_bytes"]):
                results.extend(self._put_each(batch, docs_by_name))
                continue
            try:
                done = self.ask(self.endpoint, m.JobPutBatch(jobs=[docs_by_name[n] for n in batch], **self._request()),
                                timeout_ms=BATCH_CALLS * self.timeout_ms).results
            except errors.Unavailable:
                if self.node_info(refresh=True).get("protocol", 1) >= m.BATCH_PROTOCOL:
                    raise
                done = None  # a server of an older protocol joined: one job to an entry from here
            if done is None:
                results.extend(self._put_each(names[names.index(batch[0]):], docs_by_name))
                return results
            by_name = {r.get("name"): r for r in done}  # the server answers those it refused first
            for name in batch:
                r = by_name.get(name, {"error": "internal", "message": "the server's answer left this job out"})
                results.append((name, None if "error" not in r else r.get("message") or r["error"]))
        return results

    def _put_each(self, names, docs_by_name):
        results = []
        for name in names:
            try:
                self.put_job(docs_by_name[name])
            except (errors.BadRequest, errors.NotFound, errors.Conflict) as err:
                results.append((name, str(err)))
            else:
                results.append((name, None))
        return results

    def _request(self):
        """Who sends this write: a retry of it carries the same pair, and is applied once.
        Per thread, so that each client's sequence numbers reach the leader in order."""
        if "session" not in self.local.__dict__:
            self.local.session, self.local.seq = os.urandom(8).hex(), 0
        self.local.seq += 1
        return {"client": self.local.session, "seq": self.local.seq, "by": self.acting_for()}

    def act_for(self, accessor):
        """This thread's writes are made for the token `accessor` (the api, for the request it
        serves): the audit names it. Honoured only from a node's own service."""
        self.local.by = accessor

    def acting_for(self):
        return self.local.__dict__.get("by", "")

    def executions(self, name, limit=100, stale=False):
        return self.ask(self.endpoint, m.ExecList(job=name, limit=limit, stale=stale)).executions

    def execution(self, name, execution_id, stale=False):
        return self.ask(self.endpoint, m.ExecGet(job=name, id=execution_id, stale=stale)).execution

    def leader(self):
        return self.document(self.endpoint, m.LeaderGet())

    def members(self):
        return self.ask(self._addr("gossip"), m.MemberList()).members

    def leave(self):
        """This node leaves the cluster gracefully (Dkron's POST /v1/leave) → the members."""
        return self.ask(self._addr("gossip"), m.MemberLeave()).members

    def keyring(self, verb, key=""):
        """Gossip keyring verb on every member: list, install, use or remove (Serf's `keys`)."""
        msg = {"list": m.KeyringList(), "install": m.KeyringInstall(key=key), "use": m.KeyringUse(key=key),
               "remove": m.KeyringRemove(key=key)}[verb]
        return self.document(self._addr("gossip"), msg)

    def fire_event(self, name, payload=b""):
        """A user event to every member (Serf's `event`) → its Lamport time."""
        return self.ask(self._addr("gossip"), m.EventFire(name=name, payload=payload)).ltime

    def kill(self, job, execution_id=None):
        """Kill one running execution, or every running execution of the job: {killed: [ids]}."""
        return wire.fields(self._leader_call("dispatcher", m.ExecKill(job=job, id=execution_id or "")))

    def delete_executions(self, job):
        """Delete a job's executions and reset its counters; returns the job."""
        return self.ask(self.endpoint, m.ExecDeleteAll(job=job, **self._request())).job

    def settings(self, stale=False):
        return self.ask(self.endpoint, m.SettingsGet(stale=stale)).settings

    def put_setting(self, key, value):
        return self.ask(self.endpoint, m.SettingsPut(key=key, value=value, **self._request())).settings

    def snapshot_save(self, path):
        """A consistent copy of the state, taken after a linearizable read on this client's
        server and read from it in chunks, into a backup file (common/backup.py) → its header."""
        first = self.ask(self.endpoint, m.SnapshotSave())

        def chunks():
            got, offset = first, 0
            while True:
                yield got.data
                offset += len(got.data)
                if got.done:
                    return
                got = self.ask(self.endpoint, m.SnapshotSave(id=first.id, offset=offset))
        backup.write(path, first.header, chunks())
        return first.header

    def snapshot_restore(self, path, force=False):
        """A backup file's state sent to this client's server and loaded into the cluster
        through Raft (force: replace a state that holds jobs) → its header."""
        header, offset = backup.read_header(path)
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        if len(data) != header.get("size"):
            raise errors.BadRequest(f"{path}: the state is {len(data)} bytes, the header says {header.get('size')}")
        rid, sent, chunk = "", 0, 1 << 20
        while True:
            part = data[sent:sent + chunk]
            done = sent + len(part) >= len(data)
            msg = m.SnapshotRestore(id=rid, offset=sent, data=part, header={} if rid else header, done=done,
                                    force=force)
            if done:
                self.finish_restore(msg)
                return header
            rid, sent = self.ask(self.endpoint, msg).id, sent + len(part)

    def finish_restore(self, msg):
        """The last chunk, answered once every state.load batch has applied. Sent once: the
        upload lives on the server asked, so a retry elsewhere (or after an election, which
        answers not_leader) cannot finish it; the cluster may then hold part of the backup."""
        try:
            self.call_once(self.endpoint, msg, timeout_ms=m.RESTORE_WAIT_MS + 10_000)
        except (errors.NotLeader, errors.Timeout, errors.Unavailable, errors.NotFound) as err:
            raise errors.Unavailable(f"the restore was interrupted ({err}): the cluster may hold part of "
                                     "the backup; run the restore again with --force") from None

    def keys_list(self, stale=False):
        return self.ask(self.endpoint, m.KeysList(stale=stale)).keys

    def key_accept(self, name, key="", kind=""):
        return self.ask(self.endpoint, m.KeyAccept(name=name, key=key, kind=kind, by=self.acting_for())).key

    def key_reject(self, name="", key=""):
        return self.ask(self.endpoint, m.KeyReject(name=name, key=key, by=self.acting_for())).key

    def put_note(self, text):
        """The cluster's note (note.put): a command of the next protocol, for version-gate tests."""
        return self.ask(self.endpoint, m.NotePut(text=text, **self._request())).settings

    def raft_peers(self):
        return self.document(self.endpoint, m.RaftPeers())

    def raft_remove_peer(self, name):
        return wire.fields(self._leader_call("raft", m.RaftRemovePeer(name=name)))

    def raft_transfer(self, name=""):
        return wire.fields(self._leader_call("raft", m.RaftTransfer(name=name)))

    def run(self, name):
        """Run now → m.RunStarted (its executions, and the job as read for it); a retry of this
        call (after a lost reply, or to a new leader) starts nothing more."""
        request = self._request()
        msg = m.JobRun(name=name, request=f"{request['client']}/{request['seq']}")
        return self._leader_call("dispatcher", msg)

    def busy(self):
        return self._leader_call("dispatcher", m.BusyList()).executions

    def output(self, execution, offset=0):
        """Full output of one execution from the node that ran it: {data, size, finished}."""
        member = next((x for x in self.members() if x["name"] == execution["node"]), None)
        if member is None:
            raise errors.Unavailable(f"node {execution['node']} is not a member")
        self.learn({"executor": member["addrs"]["executor"]}, self.node_key(member["name"]))
        return self.document(member["addrs"]["executor"], m.OutputGet(id=execution["id"], offset=offset))

    def tail(self, name, *, wait_ms=60_000, executions=None, on_wait=None):
        """Yield ("output", id, bytes) as a job's running executions write, then ("finished",
        execution) for each; returns when every followed execution has finished. Follows the
        given executions, else those running now, else the next one to start within wait_ms."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.MAXMSGSIZE, wire.max_frame_bytes())
        sub.setsockopt(zmq.SUBSCRIBE, wire.output_topic(name))
        self._dial(sub, self._addr("output", leader=True))
        try:
            yield from _Tail(self, sub, name, executions, wait_ms, on_wait).run()
        finally:
            sub.close(0)


class _Tail:
    """Stitches the live PUB stream to what the executor already stored, by byte offset."""

    def __init__(self, client, sub, name, executions, wait_ms, on_wait):
        self.client, self.sub, self.name, self.wait_ms, self.on_wait = client, sub, name, wait_ms, on_wait
        self.offsets = {}
        self.done = set()
        self.given = executions

    def run(self):
        # The SUB is connected before we look, so what starts after the look is streamed, and
        # what was written before it is fetched from the executor by offset.
        followed = self.given or [x for x in self.client.busy() if x["job"] == self.name]
        for execution in followed:
            self.offsets.setdefault(execution["id"], 0)
            yield from self._fill(execution)
        if not self.offsets and self.on_wait:
            self.on_wait()
        deadline = time.monotonic() + self.wait_ms / 1000
        while not self.offsets or len(self.done) < len(self.offsets):
            left = deadline - time.monotonic()
            if not self.offsets and left <= 0:
                return
            if not self.sub.poll(1000 if self.offsets else max(1, int(left * 1000))):
                yield from self._check_finished()
                continue
            env = wire.decode(self.sub.recv_multipart(), topic=True)
            if isinstance(env.msg, m.ExecOutput):
                yield from self._output(env.msg)
            elif isinstance(env.msg, m.ExecResult):
                yield from self._finished(env.msg.execution)

    def _finished(self, execution):
        if execution["id"] in self.done or (self.given and execution["id"] not in self.offsets):
            return
        self.offsets.setdefault(execution["id"], 0)
        yield from self._fill(execution)
        self.done.add(execution["id"])
        yield ("finished", execution)

    def _check_finished(self):
        """A quiet stream may have lost the result frame (PUB/SUB drops): ask the record."""
        running = {x["id"] for x in self.client.busy()}
        for execution_id in [i for i in self.offsets if i not in self.done and i not in running]:
            try:
                execution = self.client.execution(self.name, execution_id)
            except errors.NotFound:
                continue
            if execution["finished_at"] is not None:
                yield from self._finished(execution)

    def _output(self, chunk):
        if self.given and chunk.id not in self.offsets:
            return
        known = self.offsets.setdefault(chunk.id, 0)
        if chunk.offset > known:
            yield from self._fill({"id": chunk.id, "node": "", "job": chunk.job}, chunk)
            known = self.offsets[chunk.id]
        end = chunk.offset + len(chunk.data)
        if end > known:
            yield ("output", chunk.id, chunk.data[known - chunk.offset:])
            self.offsets[chunk.id] = end

    def _fill(self, execution, chunk=None):
        """Fetch what the PUB stream missed from the executing node's full output."""
        if not execution.get("node"):
            found = [x for x in self.client.busy() if x["id"] == execution["id"]]
            if not found:
                return
            execution = found[0]
        try:
            got = self.client.output(execution, self.offsets[execution["id"]])
        except errors.Error:
            return
        if got["data"]:
            yield ("output", execution["id"], got["data"])
            self.offsets[execution["id"]] += len(got["data"])
