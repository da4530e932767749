"""Seeded fuzzing of every input path (tests/fuzz/conftest.py prints the seed): the wire decoder
on random bytes and on mutated frames of every message type, each state verb's validation before
it is proposed, job validation and rendering as the API does it, and the state machine on random
sequences of valid and invalid entries, applied by two replicas that must end equal."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, given, seed, settings

from common import errors, models, wire
from services.api import dkron
from services.raft.fsm import COMMAND_SINCE, StateMachine
from tests.fuzz.conftest import SEED

NOW = 1_767_225_600_000
# Bounded for CI: no shrinking there (a failure prints its seed; PYKRON_FUZZ_SHRINK=1 with that
# seed shrinks it to the smallest input while you look at it).
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("PYKRON_FUZZ_SHRINK") else [])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                phases=PHASES)
INTS = st.one_of(st.integers(-(1 << 63), (1 << 64) - 1), st.sampled_from([0, 1, -1, (1 << 63) - 1, 1 << 63,
                                                                          NOW, models.MAX_HISTORY]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=True), st.text(max_size=12),
                    st.binary(max_size=8), st.sampled_from(["", "x" * 5000, "success", "web1", "backup", "@every 1s",
                                                            "UTC", "Nope/X", "9" * 400 + "h"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)
TYPES = sorted(wire.message_types())


def header(type_name, msg_id=b"i" * 16):
    return wire.pack([wire.message_types()[type_name].SINCE, type_name, "fuzz", msg_id, b"", 0])


def body_of(type_name, data):
    """A body with each field of the type present or not, valued at random."""
    fields = wire.message_types()[type_name].__dataclass_fields__
    return {name: data.draw(VALUES, label=name) for name in fields if data.draw(st.booleans(), label=f"has {name}")}


def decoded_or_refused(frames):
    try:
        return wire.decode(frames)
    except wire.WireError:
        return None


# -- the wire --------------------------------------------------------------------------------


@seed(SEED)
@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=4))
def test_random_bytes_decode_to_an_envelope_or_a_wire_error(frames):
    decoded_or_refused(frames)


@seed(SEED)
@FUZZ
@given(st.sampled_from(TYPES), st.data())
def test_mutated_frames_of_every_type_decode_or_are_refused(type_name, data):
    body = wire.pack(body_of(type_name, data))
    cuts = data.draw(st.lists(st.tuples(st.integers(0, max(0, len(body) - 1)), st.integers(0, 255)), max_size=3))
    mutated = bytearray(body)
    for at, byte in cuts:
        mutated[at] = byte
    env = decoded_or_refused([header(type_name), bytes(mutated)])
    if env is not None:
        assert wire.bounded(wire.fields(env.msg)) is None  # what decodes keeps the bounds


# -- each state verb's validation before it is proposed ----------------------------------------


def checks(msg):
    """What the raft shell checks of a decoded request before proposing it."""
    if type(msg).__name__ == "JobPut":
        job = models.validate_job(msg.job, now=NOW)
        json.dumps(dkron.job_json(job, NOW))  # what is stored can be listed
        assert wire.bounded(job) is None
        wire.pack(job)
    elif type(msg).__name__ == "RunRecord":
        for ack in msg.acks:
            models.check_ack(ack)
        for record in msg.finishes:
            json.dumps(models.execution_to_dkron(models.check_execution(record)))
        for mark in msg.done:
            models.check_done(mark)
    elif type(msg).__name__ == "RunClaim":
        for record in msg.executions:
            json.dumps(models.execution_to_dkron(models.check_execution(record)))


@seed(SEED)
@FUZZ
@given(st.sampled_from(["job.put", "run.record", "run.claim"]), st.data())
def test_each_state_verb_is_refused_with_a_bad_request_or_taken_whole(type_name, data):
    body = body_of(type_name, data)
    if type_name == "job.put" and data.draw(st.booleans()):
        body["job"] = job_doc(data)
    env = decoded_or_refused([header(type_name), wire.pack(body)])
    if env is None:
        return
    try:
        checks(env.msg)
    except errors.BadRequest:
        pass


# -- jobs as the API takes them ----------------------------------------------------------------


def job_doc(data):
    """A job document near a valid one: each key valid, absent or hostile."""
    doc = {"name": "fuzzed", "schedule": "@every 10s", "executor": "shell", "executor_config": {"command": "true"}}
    good = {"schedule": st.sampled_from(["@every 1s", "*/5 * * * *", "@at 9999-12-31T23:59:59Z", "@every 876000h",
                                         "0 30 2 L * *", "TZ=Asia/Tokyo @daily", "@manually"]),
            "timezone": st.sampled_from(["", "UTC", "America/New_York", "Pacific/Kiritimati"]),
            "starts_at": st.sampled_from([None, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-01T00:00:00+14:00"]),
            "retries": st.integers(0, 1000), "timeout": st.sampled_from(["", "1s", "876000h"]),
            "history_limit": st.integers(1, models.MAX_HISTORY), "concurrency": st.sampled_from(models.CONCURRENCY)}
    for key, strategy in good.items():
        choice = data.draw(st.sampled_from(["keep", "good", "hostile"]), label=key)
        if choice == "good":
            doc[key] = data.draw(strategy, label=key)
        elif choice == "hostile":
            doc[key] = data.draw(VALUES, label=key)
    return doc


@seed(SEED)
@FUZZ
@given(st.data())
def test_a_job_is_refused_with_a_bad_request_or_stored_and_listed(data):
    doc = job_doc(data)
    try:
        job = models.validate_job(doc, now=NOW)
    except errors.BadRequest:
        return
    json.dumps(dkron.job_json(job, NOW))
    json.dumps(dkron.job_json(dict(job, last_scheduled_at=job.get("starts_at")), models.MAX_HISTORY))


# -- the state machine -------------------------------------------------------------------------


def valid_commands(data, names):
    name = data.draw(st.sampled_from(names))
    at = NOW + 1000 * data.draw(st.integers(0, 50))
    group = at * 1_000_000
    execution = models.new_execution(name, "web1", group=group, scheduled_at=at)
    ok = data.draw(st.booleans())
    finish = dict(execution, status="success" if ok else "failed", success=ok, started_at=at, finished_at=at + 500,
                  exit_code=0 if ok else 1)
    return [
        ("job.put", {"job": models.validate_job({"name": name, "schedule": "@every 1s", "executor": "shell",
                                                 "executor_config": {"command": "true"},
                                                 "retries": data.draw(st.integers(0, 2))}, now=NOW)}),
        ("run.claim", {"job": name, "scheduled_at": at, "group": group, "term": 1, "executions": [execution]}),
        ("run.record", {"acks": [{"job": name, "id": execution["id"], "started_at": at}], "finishes": [finish]}),
        ("run.skip", {"job": name, "ticks": [at], "reason": "no node"}),
        ("job.delete", {"name": name}),
        ("settings.put", {"key": "untagged_jobs", "value": data.draw(st.sampled_from(["one", "all", "x"]))}),
    ]


def command_stream(data):
    names = ["backup", "report", "sync"]
    commands = []
    for _ in range(data.draw(st.integers(1, 25), label="length")):
        op, args = data.draw(st.sampled_from(valid_commands(data, names)))
        kind = data.draw(st.sampled_from(["valid", "valid", "field", "args", "op"]))
        if kind == "field" and args:
            key = data.draw(st.sampled_from(sorted(args)))
            args = dict(args, **{key: data.draw(VALUES)})
        elif kind == "args":
            args = data.draw(VALUES)
        elif kind == "op":
            op = data.draw(st.sampled_from([*COMMAND_SINCE, "tick.claim", "exec.record", "job.put", "no.such", ""]))
        command = {"op": op, "args": args, "req": f"r{len(commands)}"}
        if COMMAND_SINCE.get(op, 1) > 1:
            command["v"] = COMMAND_SINCE[op]
        if data.draw(st.booleans()):
            command.update(client=data.draw(st.sampled_from(["c1", "c2"])), seq=data.draw(st.integers(1, 5)))
        commands.append(wire.pack(command))  # as the log holds it
    return commands


@seed(SEED)
@settings(FUZZ, max_examples=120)
@given(st.data())
def test_replicas_apply_any_log_without_raising_and_end_equal(data):
    commands = command_stream(data)
    batches = data.draw(st.lists(st.integers(1, 5), min_size=len(commands), max_size=len(commands)))
    where = tempfile.mkdtemp(prefix="pk-fuzz-")
    results, dumps = [], []
    try:
        # One replica at a time: the state's peewee models are bound to one database at once.
        for sizes in (batches, [1] * len(commands)):
            # Each replica cuts the log into batches its own way: the outcome must not depend on it.
            sm = StateMachine(f"{where}/{len(results)}.db", protocol=wire.NEXT_PROTOCOL)
            index, got, pending = 0, [], list(commands)
            for size in sizes:
                if not pending:
                    break
                batch, pending = pending[:size], pending[size:]
                # Each replica decodes its own copy of each entry, as each server reads its log.
                entries = [(index + k + 1, 1, wire.unpack(data)) for k, data in enumerate(batch)]
                index += len(batch)
                got.extend(sm.apply(entries))
            results.append(got)
            dumps.append(sm.checksum())  # the hash replicas compare at snapshot points
            sm.close()
        assert results[0] == results[1]
        assert dumps[0] == dumps[1]
    finally:
        shutil.rmtree(where, ignore_errors=True)
