"""Bounded input at every face: each input that stopped a service, or made a listing fail, is
now refused with a clear error where it enters (common/wire.py, common/models.py,
common/schedule.py, services/api/dkron.py)."""

import typing

import msgpack
import pytest

from common import messages as m, models, schedule, wire
from common.errors import BadRequest
from services.api import dkron

JOB = {"name": "j", "schedule": "@every 10s", "executor": "shell", "executor_config": {"command": "true"}}


@pytest.mark.parametrize("fields,says", [
    ({"timeout": "9" * 400 + "h"}, "at most 64 characters"),
    ({"timeout": "99999999999999999h"}, "over the maximum of 100 years"),
    ({"schedule": "@every 99999999999999999999h"}, "over the maximum of 100 years"),
    ({"timezone": "x" * 5000}, "at most 64 characters"),
    ({"timezone": "Nope/X"}, "unknown time zone"),
    ({"starts_at": "9999-12-31T23:59:59-14:00"}, "outside years 1 to 9999"),
    ({"expires_at": "0001-01-01T00:00:00+01:00"}, "outside years 1 to 9999"),
    ({"name": "a" * 201}, "longer than 200"),
    ({"retries": 2**40}, "retries must be 0..1000"),
    ({"metadata": {"k": "x" * 300_000}}, "over the maximum of 262144"),
    ({"executor_config": {"command": "true", "timeout": "1e400h"}}, "invalid duration"),
])
def test_a_job_out_of_bounds_is_refused_with_what_is_wrong(fields, says):
    with pytest.raises(BadRequest) as err:
        models.validate_job({**JOB, **fields}, now=0)
    assert says in str(err.value)


def test_a_job_is_bounded_by_the_max_bytes_it_is_given():
    big = {**JOB, "metadata": {"k": "x" * 2000}}
    models.validate_job(big)
    with pytest.raises(BadRequest, match="max_job_bytes"):
        models.validate_job(big, max_bytes=1024)


def test_the_last_time_of_year_9999_is_the_last_taken():
    assert schedule.parse_time("9999-12-31T23:59:59.999Z") == schedule.MAX_TIME_MS
    with pytest.raises(BadRequest):
        schedule.parse_time("9999-12-31T23:59:59-00:01")


def test_a_job_whose_next_tick_is_past_year_9999_has_none():
    job = models.validate_job({**JOB, "schedule": "@every 876000h"}, now=schedule.MAX_TIME_MS - 1000)
    assert models.next_fire(job, schedule.MAX_TIME_MS - 10) is None
    assert models.job_to_dkron(job, None)["next"] == models.ZERO_TIME


# -- the wire ----------------------------------------------------------------------------------


def frames(type_name, body):
    since = wire.message_types()[type_name].SINCE
    return [wire.pack([since, type_name, "x", b"i" * 16, b"", 0]), wire.pack(body)]


@pytest.mark.parametrize("body,says", [
    ({"job": "j", "scheduled_at": 2**64 - 1, "group": 1, "term": 1, "executions": []}, "field"),
    ({"job": "j", "scheduled_at": 1, "group": 2**63, "term": 1, "executions": []}, "int64"),
    ({"job": "j", "scheduled_at": 1, "group": 1, "term": -1, "executions": []}, "out of bounds"),
    ({"job": "j" * 5000, "scheduled_at": 1, "group": 1, "term": 1, "executions": []}, "out of bounds"),
    ({"job": "j", "scheduled_at": schedule.MAX_TIME_MS + 1, "group": 1, "term": 1, "executions": []}, "out of bounds"),
])
def test_a_field_out_of_its_bounds_is_refused_as_it_decodes(body, says):
    with pytest.raises(wire.WireError) as err:
        wire.decode(frames("run.claim", body))
    assert err.value.code == "field" and (says in str(err.value) or says == "field")
    assert err.value.msg_id == b"i" * 16  # the sender is told which request failed


def test_nesting_past_max_depth_is_refused_and_within_it_taken():
    deep = {}
    for _ in range(wire.MAX_DEPTH):
        deep = {"k": deep}
    with pytest.raises(wire.WireError, match="nested more than"):
        wire.decode(frames("job.put", {"job": deep}))
    shallow = {}
    for _ in range(wire.MAX_DEPTH - 2):
        shallow = {"k": shallow}
    assert wire.decode(frames("job.put", {"job": shallow})).msg.job == shallow


def test_a_frame_of_empty_arrays_stops_decoding_at_max_decoded():
    flood = msgpack.packb([[[]] * 100_000] * 40)
    assert len(flood) < 5 * 1024 * 1024
    with pytest.raises(wire.WireError, match="items in one frame"):
        wire.unpack(flood)


def test_one_array_past_max_items_is_refused():
    with pytest.raises(wire.WireError):
        wire.unpack(msgpack.packb([0] * (wire.MAX_ITEMS + 1)))


def test_the_state_verbs_declare_bounds():
    bounded = {name for name, cls in wire.message_types().items()
               if any("Annotated" in str(t) for t in typing.get_type_hints(cls, include_extras=True).values())}
    assert {"job.list", "run.claim", "run.record", "run.skip", "settings.put", "exec.list"} <= bounded
    assert m.JobList(offset=m.MAX_COUNT).offset == m.MAX_COUNT


# -- the API's face ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw,says", [
    (b"[" * 5000 + b"]" * 5000, "nested more than"),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested more than"),
    (b'{"retries": 9223372036854775808}', "out of range"),
    (b'{"retries": ' + b"9" * 5000 + b"}", "out of range"),
])
def test_json_out_of_bounds_is_a_400(raw, says):
    with pytest.raises(BadRequest, match=says):
        dkron.parse_json(raw)


class Query:
    def __init__(self, **params):
        self.params = params

    def get_param(self, name):
        return self.params.get(name)


@pytest.mark.parametrize("value", ["9223372036854775808", "1000000001", "9" * 400])
def test_whole_numbers_in_queries_are_bounded(value):
    with pytest.raises(BadRequest, match="up to 1000000000"):
        dkron.whole_number(Query(_start=value), "_start", 0)
    assert dkron.whole_number(Query(_start="1000000000"), "_start", 0) == 1_000_000_000
