"""The raft service's client face (mixed into RaftShell): the verbs its client port answers --
jobs, executions, settings, keys, the ACL, backups and membership -- each read from the state
or proposed through Raft, and the pages and documents they answer with."""

from __future__ import annotations

from common import config, errors, messages as m, models, schedule, secrets
from services.raft.access import VERBS as ACL_VERBS, found
from services.raft.core import LEADER, Membership

MAX_PAGE = 2000           # jobs in one job.list reply, and at most a quarter of the frame limit in bytes


class ClientVerbs:
    def on_client(self, env):
        msg = env.msg
        self.access.check(env)
        if isinstance(msg, ACL_VERBS):
            return self.access.on_verb(env, msg)
        if isinstance(msg, m.NodeInfo):
            return self.loop.reply(self.client_router, env, self.node_info())
        if isinstance(msg, m.LeaderGet):
            return self.loop.reply(self.client_router, env, self.leader_info())
        if isinstance(msg, m.JobPut):
            if self.fsm.settings()["paused"] == "true":
                raise errors.Unavailable("new job submissions are paused (pykronctl unpause)")
            return self.propose(env, "job.put", session=(msg.client, msg.seq), job=self.checked_job(msg.job))
        if isinstance(msg, m.JobPutBatch):
            return self.put_batch(env, msg)
        if isinstance(msg, m.JobDelete):
            return self.propose(env, "job.delete", session=(msg.client, msg.seq), name=msg.name)
        if isinstance(msg, m.RunClaim):
            return self.propose(env, "run.claim", job=msg.job, scheduled_at=msg.scheduled_at, group=msg.group,
                                term=msg.term, executions=[models.check_execution(x) for x in msg.executions], kind=msg.kind, key=msg.key, reason=msg.reason, notify=msg.notify)
        if isinstance(msg, m.RunRecord):
            return self.propose(env, "run.record", acks=[models.check_ack(a) for a in msg.acks],
                                finishes=[models.check_execution(x) for x in msg.finishes],
                                done=[models.check_done(d) for d in msg.done], notify=msg.notify)
        if isinstance(msg, m.RunSkip):
            return self.propose(env, "run.skip", job=msg.job, ticks=msg.ticks, reason=msg.reason, notify=msg.notify)
        if isinstance(msg, m.ExecDeleteAll):
            return self.propose(env, "exec.delete_all", session=(msg.client, msg.seq), job=msg.job)
        if isinstance(msg, m.SettingsPut):
            if msg.key == "default_timezone":
                schedule.zone(msg.value)  # an unknown zone would unschedule every job without its own
            return self.propose(env, "settings.put", session=(msg.client, msg.seq), key=msg.key, value=msg.value)
        if isinstance(msg, m.SettingsGet):
            return self.read(env, msg.stale, lambda: {"settings": self.fsm.settings()})
        if isinstance(msg, m.ExecUnfinished):
            return self.read(env, False, lambda: self._unfinished(msg))
        if isinstance(msg, m.ServerRegister):
            return self.propose(env, "server.register", name=msg.name, addrs=msg.addrs, store=msg.store,
                                **({"protocol": msg.protocol} if msg.protocol != [1, 1] else {}))
        if isinstance(msg, (m.KeysList, m.KeyAccept, m.KeyReject)):
            return self.admission.on_verb(env, msg)
        if isinstance(msg, m.SnapshotSave):
            return self.backups.on_save(env, msg)
        if isinstance(msg, m.SnapshotRestore):
            return self.backups.on_restore(env, msg)
        if isinstance(msg, m.NotePut):
            return self.propose(env, "note.put", session=(msg.client, msg.seq), text=msg.text)
        if isinstance(msg, (m.RaftPeers, m.RaftAddPeer, m.RaftRemovePeer, m.RaftTransfer)):
            return self.on_membership(env, msg)
        if isinstance(msg, m.JobGet):
            shown = self.access.shown(env, msg.secrets)
            return self.read(env, msg.stale, lambda: {"job": shown(found(self.fsm.job(msg.name), "job", msg.name))})
        if isinstance(msg, m.JobList):
            readable, shown = self.access.readable(env), self.access.shown(env, msg.secrets)
            return self.read(env, msg.stale, lambda: self._job_page(msg.after, msg.limit, msg.offset, readable, shown))
        if isinstance(msg, m.ExecList):
            return self.read(env, msg.stale, lambda: self._executions(msg.job, msg.limit))
        if isinstance(msg, m.ExecGet):
            return self.read(env, msg.stale, lambda: {
                "execution": found(self.fsm.execution(msg.job, msg.id), "execution", msg.id)})
        raise errors.BadRequest(f"the raft client port does not answer {env.type}")

    def on_membership(self, env, msg):
        if isinstance(msg, m.RaftPeers):
            return self.loop.reply(self.client_router, env, self.peers())
        if self.core.role != LEADER:
            raise errors.NotLeader(f"{self.name} is not the leader", leader=self.core.leader)
        if isinstance(msg, m.RaftTransfer):
            target = msg.name or self.best_transferee()
            if not target or not self.core.transfer_leader(target):
                raise errors.BadRequest(f"cannot transfer leadership to {target or 'anyone'}: not another voter")
            return self.loop.reply(self.client_router, env, {"to": target})
        old = self.core.log.membership()
        voters, learners = dict(old.voters), dict(old.learners)
        if isinstance(msg, m.RaftAddPeer):
            (learners if msg.learner else voters)[msg.name] = msg.addrs
            if not msg.learner:
                learners.pop(msg.name, None)
        else:
            if msg.name not in voters and msg.name not in learners:
                raise errors.NotFound(f"{msg.name} is not a member")
            voters.pop(msg.name, None)
            learners.pop(msg.name, None)
        error = self.core.propose_membership(Membership(voters, learners))
        if error:
            raise errors.Conflict(error)
        self.wait(f"conf/{self.core.log.last_index()}", env)

    def best_transferee(self):
        progress = self.core.status()["progress"]
        others = [(p["match"], n) for n, p in progress.items() if n != self.name and n in self.core.log.membership().voters]
        return max(others)[1] if others else ""

    def peers(self):
        membership, status = self.core.log.membership(), self.core.status()
        protocols = self.fsm.server_protocols()
        describe = lambda n, role: {"id": n, "role": role, "leader": n == self.core.leader,  # noqa: E731
                                    "addrs": self.fsm.server(n) or membership.voters.get(n) or membership.learners.get(n),
                                    "protocol": protocols.get(n, [1, 1]),
                                    **status["progress"].get(n, {})}
        return {"term": self.core.term, "leader": self.core.leader,
                "peers": [describe(n, "voter") for n in sorted(membership.voters)]
                + [describe(n, "learner") for n in sorted(membership.learners)]}

    def _job_page(self, after, limit, offset=0, readable=None, shown=lambda job: job):
        limit = min(max(limit, 1), MAX_PAGE)
        if readable is not None:  # only what the caller may read, counted so too
            names = [n for n in self.fsm.job_names() if readable(n)]
            start = next((i for i, n in enumerate(names) if n > after), len(names)) if after else max(offset, 0)
            jobs = [shown(self.fsm.job(n)) for n in names[start:start + limit]]
            return {"jobs": jobs, "more": start + limit < len(names), "seq": self.fsm.job_seq,
                    "settings": self.fsm.settings(), **({} if after else {"total": len(names)})}
        jobs, more = self.fsm.job_page(after, limit, offset, max_bytes=self.conf.wire.max_message_bytes // 4)
        page = {"jobs": [shown(job) for job in jobs], "more": more, "seq": self.fsm.job_seq,
                "settings": self.fsm.settings()}
        if not after:  # counted once per walk, on its first page (a later page would count again)
            page["total"] = self.fsm.job_count()
        return page

    def _unfinished(self, msg):
        """A page of unfinished runs, a quarter of the frame limit at most; the first page has
        the pending retries and effects too."""
        runs, more = [], False
        if not msg.followups_only:
            runs, more = self.fsm.unfinished_page(msg.after_group, msg.after_id, self.conf.wire.max_message_bytes // 4)
        first = not (msg.after_group or msg.after_id)
        return {"runs": runs, "more": more, **(self.fsm.pending() if first else {"retries": [], "effects": []})}

    def _executions(self, job, limit):
        if self.fsm.job(job) is None:
            raise errors.NotFound(f"job {job!r} not found")
        return {"executions": self.fsm.executions(job, limit)}

    def put_batch(self, env, msg):
        """A restore's batch: each job checked as a job.put is (not refused while paused, as
        Dkron's restore is not); one that fails is answered with its reason and the others go on,
        proposed in one entry. The refusals ride in the command so that its result, from the
        state machine, says what became of every job of the batch."""
        jobs, refused = [], []
        for doc in msg.jobs:
            try:
                job = self.checked_job(doc)
            except errors.Error as err:
                name = doc.get("name") if isinstance(doc, dict) else None
                refused.append({"name": name[:m.NAME_CHARS] if isinstance(name, str) else "",
                                "error": err.code, "message": str(err)[:m.TEXT_CHARS]})
            else:
                jobs.append(job)
        if not jobs:
            return self.loop.reply(self.client_router, env, {"results": refused})
        return self.propose(env, "job.put_batch", session=(msg.client, msg.seq), jobs=jobs, refused=refused)

    def checked_job(self, doc):
        """A job as a put stores it: validated, its executor offered by some node."""
        job = models.validate_job(doc, now=self.loop.now(), max_bytes=self.conf.api.max_job_bytes)
        # A secret shown redacted and sent back so (an edit, a toggle) keeps its stored value.
        job = secrets.keep_stored(job, self.fsm.job(job["name"]), self.conf.security.secret_keys)
        self.check_executor(job)
        return job

    def check_executor(self, job):
        offered = set(self.conf.executor.executors)
        for member in self.members.values():
            if member["status"] == "alive":
                offered.update(member.get("executors", []))
        if job["executor"] not in offered:
            raise errors.BadRequest(f"Job validation failed: no alive node offers executor {job['executor']!r} "
                                    f"(offered: {', '.join(sorted(offered)) or 'none'}).")

    def node_info(self):
        """With the key of every accepted node: a client that trusts this server's key learns
        from it the keys to dial the others' services with."""
        return {"node": self.name, "role": self.conf.node.role, "addrs": config.addrs(self.conf),
                "key": self.loop.keypair.public.decode(),
                "keys": {k["name"]: k["key"] for k in self.fsm.keys("accepted") if k["kind"] != "client"},
                "leader": self.leader_info() if self.core.leader else None,
                "state_check": next(iter(self.fsm.state_checks()), None),
                "protocol": min(self.spoken().values(), default=1), "entry_bytes": self.max_entry_bytes}

    def leader_info(self):
        leader = self.core.leader
        if not leader:
            raise errors.NotLeader("the cluster has no leader")
        addrs = config.addrs(self.conf) if leader == self.name else (self.fsm.server(leader) or {})
        key = self.loop.keypair.public.decode() if leader == self.name else self.admission.server_key(leader)
        return {"node": leader, "term": self.core.term, "addrs": addrs, "key": key or "",
                "ready": self.leader_ready() if leader == self.name else bool(addrs)}
