"""services/executor/core.py's decisions with a virtual clock: admission and the node-full skip,
waiting runs started at their time, the commit gaps, fork-ahead for bursts, finishing (exits,
kills, timeouts, memory), the re-send of results, a restart's orphans, the drain, and the one
order carry_out carries a Ready out in. The shell here is a recorder that reports launches
and forks as the real one does."""

import dataclasses

import pytest

from common import config, messages as m, models
from services.executor.core import Executor, Ready, carry_out
from services.executor.journal import COMMIT_GAP_MS, COMMIT_MAX_WAIT_MS
from services.executor.waiting import BURST_MS

NOW = 1_767_225_600_000
CONF = dataclasses.replace(config.load(env={}).executor, result_retry_ms=1000, heartbeat_ms=2000, fork_ahead=8)
JOB = {"name": "backup", "executor": "shell", "executor_config": {"command": "true"}}


def execution(id_, at=NOW, jitter=0, node="web1"):
    return dict(models.new_execution("backup", node, group=at * 1_000_000, scheduled_at=at), id=id_, jitter_ms=jitter)


class Node:
    """An executor core and a recorder carrying out its Readies in carry_out's order."""

    def __init__(self, **conf):
        stored = {k: conf.pop(k) for k in ("started", "unconfirmed", "orphans") if k in conf}
        self.core = Executor("web1", dataclasses.replace(CONF, **conf), now=NOW, **stored)
        self.done = []       # (effect, detail) in the order carried out
        self.durable = set()  # ids committed
        self.written = set()

    def start(self, *executions, now=NOW, job=JOB):
        self.core.step(m.RunStart(executions=list(executions), job=job), now)
        return self.carry(now)

    def carry(self, now=NOW):
        """Every Ready until none is left; the effects carried out, as (kind, detail)."""
        first = len(self.done)
        while True:
            rd = self.core.ready()
            if rd.empty():
                break
            carry_out(rd, persist=self.persist, launch=lambda run: self.launch(run, now),
                      ack=lambda msg: self.done.append(("ack", (msg.id, msg.started_at))),
                      kill=lambda run: self.done.append(("kill", (run.execution["id"], run.reason))),
                      discard=lambda i: self.done.append(("discard", i)),
                      fork=lambda e, job: self.done.append(("fork", e["id"])),
                      send=lambda record: self.done.append(("result", (record["id"], record["status"]))),
                      process=lambda f: self.done.append(("process", f.record["id"])),
                      heartbeat=lambda ids: self.done.append(("heartbeat", ids)))
            self.core.advance(rd)
        return self.done[first:]

    def persist(self, starts, forgets, finishes, confirms, commit):
        self.written |= {e["id"] for e in starts} | {f.record["id"] for f in finishes}
        self.done += [("store", e["id"]) for e in starts] + [("forget", i) for i in forgets]
        self.done += [("record", f.record["id"]) for f in finishes] + [("confirm", i) for i in confirms]
        if commit:
            self.durable |= self.written
            self.done.append(("commit", None))

    def launch(self, run, now):
        assert run.execution["id"] in self.durable  # an id is durable before its run starts
        self.done.append(("launch", run.execution["id"]))
        self.core.launched(run.execution["id"], now + 3, spawn_ms=3)

    def tick(self, now):
        self.core.tick(now)
        return self.carry(now)


def kinds(effects):
    return [kind for kind, _ in effects]


def test_a_run_whose_time_has_come_is_stored_committed_launched_then_acked_with_its_start():
    node = Node()
    effects = node.start(execution("a"))
    assert effects == [("store", "a"), ("commit", None), ("launch", "a"), ("ack", ("a", NOW + 3))]
    assert node.core.runs["a"].execution["spawn_ms"] == 3


def test_a_run_of_another_node_is_passed_over_and_one_sent_again_starts_nothing_new():
    node = Node()
    assert node.start(execution("x", node="web10")) == []  # topics are a prefix filter, not a proof
    node.start(execution("a"))
    assert node.start(execution("a"), now=NOW + 50) == [("ack", ("a", NOW + 3))]  # acked again, not started


def test_a_full_node_queues_runs_then_skips_them_and_starts_the_queued_one_when_a_slot_frees():
    node = Node(max_concurrent_executions=1, queue_size=1)
    node.start(execution("a"))
    effects = node.start(execution("b"), execution("c"), now=NOW + 10)
    assert ("ack", ("b", NOW + 10)) in effects and "launch" not in kinds(effects)  # b waits for a slot
    assert ("result", ("c", "skipped")) in effects and node.core.journal.unconfirmed["c"]["reason"] == \
        "node web1 full: 1 running and 1 waiting"
    node.core.exited("a", 0, NOW + 20)
    effects = node.carry(NOW + 20)
    assert ("launch", "b") in effects and not [e for e in effects if e[0] == "ack" and e[1][0] == "b"]


def test_a_waiting_run_starts_at_its_time_not_before_and_a_re_sent_run_start_changes_nothing():
    node = Node()
    assert node.start(execution("a", at=NOW + 500, jitter=200)) == [("store", "a"), ("commit", None)]
    assert node.tick(NOW + 1) == [] and node.core.deadline() == NOW + 700
    assert node.start(execution("a", at=NOW + 500, jitter=200), now=NOW + 100) == []
    assert node.tick(NOW + 699) == []
    assert node.tick(NOW + 700) == [("launch", "a"), ("ack", ("a", NOW + 703))]  # its id was durable already


def test_a_waiting_run_is_stored_at_once_and_committed_in_a_gap_or_just_before_it_starts():
    node = Node()
    node.start(execution("b", at=NOW + 5000))  # far off: committed at once
    effects = node.start(execution("a", at=NOW + COMMIT_GAP_MS - 5), now=NOW)  # due within the gap: not yet
    assert effects == [("store", "a")]
    assert node.tick(NOW + COMMIT_GAP_MS - 5) == [("commit", None), ("launch", "a"), ("ack", ("a", NOW + 28))]


def test_results_wait_for_a_gap_between_waiting_runs_or_for_the_longest_wait():
    node = Node()
    node.start(execution("a"))
    node.start(execution("w", at=NOW + 20), now=NOW + 1)  # starts within the gap
    node.core.exited("a", 0, NOW + 2)
    assert node.carry(NOW + 2) == [("record", "a")]  # stored, not committed: w is due within the gap
    effects = node.tick(NOW + 20)
    assert effects[:2] == [("commit", None), ("launch", "w")] and ("result", ("a", "success")) in effects
    runs = [execution(f"r{i}", at=NOW + 1000 + 10 * i) for i in range(1, 200)]  # one due every 10 ms
    assert ("commit", None) in node.start(*runs, now=NOW + 30)  # their ids: durable before they are due
    node.start(execution("x"), now=NOW + 1000)
    node.core.exited("x", 0, NOW + 1001)
    waited = [e for t in range(NOW + 1010, NOW + 1001 + COMMIT_MAX_WAIT_MS, 10) for e in node.tick(t)]
    assert ("result", ("x", "success")) not in waited and ("commit", None) not in waited
    assert ("result", ("x", "success")) in node.tick(NOW + 1001 + COMMIT_MAX_WAIT_MS)


def test_a_burst_of_waiting_runs_gets_children_forked_ahead_and_a_lone_run_does_not():
    node = Node()
    node.start(execution("lone", at=NOW + 900))
    assert node.tick(NOW + 1) == []
    burst = [execution(f"b{i}", at=NOW + 2000 + i * (BURST_MS // 4)) for i in range(4)]
    node.start(*burst, now=NOW + 2)
    assert node.core.deadline() == NOW + 3  # looked at a moment later, once the burst is counted
    assert kinds(node.tick(NOW + 3)) == ["fork"] * 4
    for i in range(3):
        node.core.forked(f"b{i}", True)
    node.core.forked("b3", False)  # it could not be: the run forks at its start
    assert node.core.bursts.forks == {"b0": "held", "b1": "held", "b2": "held"}
    node.core.step(m.RunKill(id="b2", node="web1", reason="killed on request"), NOW + 10)
    effects = node.carry(NOW + 10)
    assert ("discard", "b2") in effects and ("result", ("b2", "killed")) in effects
    effects = node.tick(NOW + 2000)
    assert ("launch", "b0") in effects and "discard" not in kinds(effects)  # released into its command


def test_children_forked_ahead_are_capped_and_one_forked_too_late_is_discarded():
    node = Node(fork_ahead=2)
    node.start(*[execution(f"b{i}", at=NOW + 2000) for i in range(4)])
    assert kinds(node.tick(NOW + 1)) == ["fork", "fork"]
    node.tick(NOW + 2000)  # they start before their children are ready
    node.core.forked("b0", True)
    assert node.carry(NOW + 2001) == [("discard", "b0")]


def test_a_launched_run_finishes_with_its_exit_and_a_killed_one_as_killed_with_the_reason():
    node = Node()
    node.start(execution("a"), execution("b"))
    node.core.exited("a", 3, NOW + 100)
    node.core.step(m.RunKill(id="b", node="web1", reason="killed on request"), NOW + 100)
    node.core.step(m.RunKill(id="b", node="web2", reason="not for this node"), NOW + 100)
    effects = node.carry(NOW + 100)
    assert ("kill", ("b", "killed on request")) in effects and ("record", "a") in effects
    node.core.exited("b", -9, NOW + 120)
    node.carry(NOW + 120)
    a, b = node.core.journal.unconfirmed["a"], node.core.journal.unconfirmed["b"]
    assert (a["status"], a["exit_code"], a["started_at"], a["finished_at"]) == ("failed", 3, NOW + 3, NOW + 100)
    assert (b["status"], b["reason"]) == ("killed", "killed on request")


def test_a_timeout_or_the_memory_limit_kills_the_run_and_fails_it_with_the_reason():
    node = Node()
    node.core.step(m.RunStart(executions=[execution("a"), execution("b")], job=JOB), NOW)
    rd = node.core.ready()
    node.core.advance(rd)
    node.core.launched("a", NOW, spawn_ms=1, timeout_ms=1500)
    node.core.launched("b", NOW, spawn_ms=1, mem_limit=1000)
    node.core.measured("b", 999)
    assert node.tick(NOW + 1499) == [("ack", ("a", NOW)), ("ack", ("b", NOW))]
    node.core.measured("b", 1001)
    effects = node.tick(NOW + 1500)
    assert ("kill", ("a", "execution time exceeded the timeout of 1.5s; the job was killed")) in effects
    assert ("kill", ("b", "memory usage 1001 bytes exceeded the limit of 1000 bytes; the job was killed")) in effects
    node.core.exited("a", -9, NOW + 1501)
    node.carry(NOW + 1501)
    assert node.core.journal.unconfirmed["a"]["status"] == "failed"


def test_a_waiting_run_that_is_killed_is_recorded_killed_and_never_starts():
    node = Node()
    node.start(execution("a", at=NOW + 8000))
    node.core.step(m.RunKill(id="a", node="web1", reason="killed on request"), NOW + 10)
    assert ("result", ("a", "killed")) in node.carry(NOW + 10)
    assert "launch" not in kinds(node.tick(NOW + 8000)) and not node.core.waiting


def test_results_are_sent_once_durable_then_again_until_confirmed():
    node = Node()
    node.core.step(m.DispatcherHeartbeat(node="s1", term=3), NOW)
    node.start(execution("a"))
    node.core.exited("a", 0, NOW + 50)
    assert node.carry(NOW + 50) == [("record", "a"), ("commit", None), ("result", ("a", "success"))]
    assert node.tick(NOW + 1000) == []  # on its way: not sent twice
    node.core.result_failed("a")
    assert node.tick(NOW + 2000) == [("result", ("a", "success"))]
    node.core.step(m.ResultRecorded(id="a"), NOW + 2010)
    assert node.carry(NOW + 2010) == [("confirm", "a"), ("commit", None)]
    assert node.tick(NOW + 3000) == []


def test_a_run_start_sent_again_for_a_finished_run_acks_it_and_sends_its_result_again():
    node = Node()
    node.start(execution("a"))
    node.core.exited("a", 0, NOW + 50)
    node.carry(NOW + 50)
    node.core.result_failed("a")  # its result went to a leader that died
    assert node.start(execution("a"), now=NOW + 60) == [("ack", ("a", NOW + 3)), ("result", ("a", "success"))]


def test_the_result_of_a_job_with_processors_is_stored_and_sent_as_they_leave_it():
    node = Node()
    node.start(execution("a"), job={**JOB, "processors": {"log": {}}})
    node.core.exited("a", 0, NOW + 50)
    rd = node.core.ready()
    assert [f.record["id"] for f in rd.processing] == ["a"] and rd.finishes == []
    node.core.advance(rd)
    node.core.processed(rd.processing[0], dict(rd.processing[0].record, output="Output in dkron log"))
    assert ("record", "a") in node.carry(NOW + 50) and node.core.journal.unconfirmed["a"]["output"] == \
        "Output in dkron log"


def test_a_restart_forgets_stored_runs_not_yet_due_and_records_the_others_lost():
    future, past = execution("f", at=NOW + 5000), execution("p", at=NOW - 5000)
    node = Node(started=["f", "p", "done"], orphans=[future, past])
    assert node.carry() == [("forget", "f"), ("record", "p"), ("commit", None), ("result", ("p", "lost"))]
    assert node.core.journal.unconfirmed["p"]["status"] == "lost" and "f" not in node.core.started
    assert node.start(future) == [("store", "f"), ("commit", None)]  # sent again: it waits, and starts once


def test_a_drain_interrupts_what_waits_or_queues_refuses_new_runs_and_interrupt_kills_the_rest():
    node = Node(max_concurrent_executions=1)
    node.start(execution("a"), execution("q"), execution("w", at=NOW + 5000))
    node.core.drain(NOW + 10)
    effects = node.carry(NOW + 10)
    assert {d for kind, d in effects if kind == "result"} == {("q", "interrupted"), ("w", "interrupted")}
    assert node.start(execution("n"), now=NOW + 20) == []  # not stored, not acked: sent again, then failed
    node.core.interrupt(NOW + 30)
    assert node.carry(NOW + 30) == [("kill", ("a", "interrupted: the executor was stopped"))]


def test_heartbeats_name_the_runs_on_this_node_and_the_dispatcher_is_the_highest_term_heard():
    node = Node()
    node.start(execution("a"), execution("w", at=NOW + 9000))
    assert node.tick(NOW + 2000) == [("heartbeat", ["a"])]
    assert node.core.dispatcher() is None
    for server, term in (("s1", 3), ("s2", 4), ("s1", 2)):
        node.core.step(m.DispatcherHeartbeat(node=server, term=term), NOW + 2001)
    assert node.core.dispatcher() == "s2"


def test_carry_out_stores_and_commits_before_anything_starts_or_is_acked_or_sent():
    order = []
    rd = Ready(starts=[{"id": "a"}], forgets=["f"], finishes=["x"], confirms=["c"], commit=True, launches=["run"],
               acks=["ack"], kills=["kill"], discards=["d"], forks=[({"id": "h"}, JOB)], results=[{"id": "r"}],
               processing=["p"], heartbeats=[["a"]])
    carry_out(rd, persist=lambda *args: order.append(("persist", args[-1])), launch=lambda r: order.append("launch"),
              ack=lambda msg: order.append("ack"), kill=lambda r: order.append("kill"),
              discard=lambda i: order.append("discard"), fork=lambda e, j: order.append("fork"),
              send=lambda r: order.append("send"), process=lambda f: order.append("process"),
              heartbeat=lambda ids: order.append("heartbeat"))
    assert order == [("persist", True), "launch", "ack", "kill", "discard", "fork", "send", "process", "heartbeat"]


@pytest.mark.parametrize("effects", [{"commit": True}, {"starts": [{"id": "a"}]}, {"confirms": ["c"]}])
def test_carry_out_persists_whenever_there_is_something_to_write_or_commit(effects):
    persisted = []
    carry_out(Ready(**effects), persist=lambda *args: persisted.append(args), launch=None, ack=None, kill=None,
              discard=None, fork=None, send=None, process=None, heartbeat=None)
    assert len(persisted) == 1


def test_an_executor_that_cannot_store_a_run_id_starts_and_acks_nothing():
    """A failed write stops the Ready before any launch or ack: the service exits (crash-only)
    and the run, never acked, is sent again to the executor once it is back."""
    node = Node()
    node.core.step(m.RunStart(executions=[execution("a")], job=JOB), NOW)
    carried = []

    def full(*_):
        raise OSError("database or disk is full")

    with pytest.raises(OSError):
        carry_out(node.core.ready(), persist=full, launch=carried.append, ack=carried.append, kill=None,
                  discard=None, fork=None, send=carried.append, process=None, heartbeat=None)
    assert carried == []
