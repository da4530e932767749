"""common/wire.py and common/messages.py: the envelope round trip, and every way decode refuses
a frame set with a typed WireError (never another exception)."""

import msgpack
import pytest

from common import messages as m, wire
from common.wire import WireError


def frames_of(header, body):
    """Hand-built frames, for the malformed cases encode() would never produce."""
    return [msgpack.packb(header, use_bin_type=True), msgpack.packb(body, use_bin_type=True)]


def header(type_="job.delete", version=1, term=0):
    return [version, type_, "node1", b"\x01" * 16, b"", term]


@pytest.mark.parametrize("msg", [
    m.JobDelete(name="backup"),
    m.JobPut(job={"name": "backup", "tags": {"role": "web"}, "retries": 2}),
    m.RunClaim(job="backup", scheduled_at=1_700_000_000_000, group=7, term=3,
               executions=[{"id": "7-web1", "node": "web1"}], kind="manual", key="c1/4"),
    m.ExecOutput(id="7-web1", job="backup", offset=4096, data=b"\x00\xffbinary"),
    m.RaftAppend(prev_index=4, prev_term=2, entries=[[5, 2, b"cmd"]], commit=4, ctx=9),
    m.Error(code="not_leader", message="ask web2", leader="web2"),
    m.CtlStatus(),
])
def test_round_trip_keeps_type_fields_and_header(msg):
    frames = wire.encode(msg, "web1", re=b"r" * 16, term=5)
    env = wire.decode(frames)
    assert (env.type, env.sender, env.re, env.term, env.msg) == (msg.TYPE, "web1", b"r" * 16, 5, msg)
    assert len(env.msg_id) == 16


def test_round_trip_with_route_frames():
    frames = [b"peer-identity", b"second-hop", *wire.encode(m.JobGet(name="a"), "api")]
    env = wire.decode(frames)
    assert env.route == (b"peer-identity", b"second-hop")
    assert env.msg == m.JobGet(name="a", stale=False)


def test_round_trip_with_topic_frame():
    frames = [wire.topic("node", "web1"), *wire.encode(m.RunStart(executions=[{"id": "x"}], job={"name": "j"}), "s1")]
    env = wire.decode(frames, topic=True)
    assert env.topic == b"node.web1\x00"
    assert env.route == ()
    assert env.msg.executions == [{"id": "x"}]


def test_msg_id_is_kept_when_given():
    env = wire.decode(wire.encode(m.JobList(), "api", msg_id=b"i" * 16))
    assert env.msg_id == b"i" * 16


def test_defaulted_field_may_be_absent():
    env = wire.decode(frames_of(header("job.get"), {"name": "a"}))
    assert env.msg == m.JobGet(name="a", stale=False)


def test_unknown_extra_body_keys_are_ignored():
    env = wire.decode(frames_of(header(), {"name": "a", "added_in_a_later_release": [1, 2]}))
    assert env.msg == m.JobDelete(name="a")


@pytest.mark.parametrize("frames", [[], [b"only-one"]])
def test_too_few_frames(frames):
    with pytest.raises(WireError) as err:
        wire.decode(frames)
    assert err.value.code == "frames"


def test_topic_decode_needs_a_topic_frame():
    with pytest.raises(WireError) as err:
        wire.decode(wire.encode(m.JobList(), "api"), topic=True)
    assert err.value.code == "frames"


@pytest.fixture
def speaks_next():
    wire.set_protocol(wire.NEXT_PROTOCOL)
    yield
    wire.set_protocol(wire.PROTOCOL)


@pytest.mark.parametrize("version", [0, wire.PROTOCOL + 1, 99, -1])
def test_a_protocol_this_node_does_not_speak_is_refused_with_the_request_id(version):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(version=version), {"name": "a"}))
    assert err.value.code == "version"
    assert err.value.msg_id == b"\x01" * 16  # so the refusal reaches the caller at once


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_a_version_that_is_not_an_int_is_malformed(version):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(version=version), {"name": "a"}))
    assert err.value.code == "format"


def test_a_message_carries_the_protocol_of_its_type_not_the_senders():
    """A node speaking the next protocol still talks to older ones in every type they know."""
    assert msgpack.unpackb(wire.encode(m.JobDelete(name="a"), "s1")[0])[0] == 1
    assert msgpack.unpackb(wire.encode(m.NotePut(text="hi"), "s1")[0])[0] == wire.NEXT_PROTOCOL


def test_a_type_of_a_newer_protocol_is_refused_as_a_version_not_read(speaks_next):
    frames = wire.encode(m.NotePut(text="hi"), "s3")
    assert wire.decode(frames).msg == m.NotePut(text="hi")  # spoken here
    wire.set_protocol(wire.PROTOCOL)
    with pytest.raises(WireError) as err:
        wire.decode(frames)
    assert err.value.code == "version" and "note.put" in err.value.detail


def test_a_type_unknown_here_from_a_newer_protocol_is_a_version_error():
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header("job.explode", version=wire.PROTOCOL + 1), {}))
    assert err.value.code == "version"


def test_a_type_stamped_older_than_it_is_refused(speaks_next):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header("note.put", version=1), {"text": "hi"}))
    assert err.value.code == "version" and f"needs {wire.NEXT_PROTOCOL}" in err.value.detail


def test_protocol_range_is_what_a_node_announces(speaks_next):
    assert wire.protocol() == [wire.PROTOCOL_MIN, wire.NEXT_PROTOCOL]
    with pytest.raises(ValueError):
        wire.set_protocol(wire.NEXT_PROTOCOL + 1)


def test_unknown_type():
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header("job.explode"), {}))
    assert err.value.code == "type"
    assert "job.explode" in str(err.value)


def test_missing_required_field():
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(), {}))
    assert err.value.code == "field"
    assert "'name'" in str(err.value)


@pytest.mark.parametrize("type_,body", [
    ("job.delete", {"name": 7}),
    ("job.get", {"name": "a", "stale": "yes"}),
    ("exec.output", {"id": "x", "job": "j", "offset": True, "data": b""}),  # bool is not an int
    ("exec.output", {"id": "x", "job": "j", "offset": 1.5, "data": b""}),
    ("exec.output", {"id": "x", "job": "j", "offset": 0, "data": "text, not bytes"}),
    ("job.put", {"job": ["not", "a", "map"]}),
    ("tick.skip", {"job": "j", "ticks": ["no int"], "reason": "why"}),
])
def test_field_of_the_wrong_type(type_, body):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(type_), body))
    assert err.value.code == "field"


@pytest.mark.parametrize("type_, body, version", [
    # Raft's peers: indices and terms are never negative, an append holds at most 10,000 entries.
    ("raft.append", {"prev_index": -1, "prev_term": 0, "entries": [], "commit": 0}, 1),
    ("raft.append", {"prev_index": 0, "prev_term": 0, "entries": [[1, 1, b"", 0]] * 10_001, "commit": 0}, 1),
    ("raft.append", {"prev_index": 0, "prev_term": 0, "entries": [[1, 1, b"", 0, 5]], "commit": 0}, 1),
    ("raft.vote", {"last_index": 0, "last_term": -5}, 1),
    ("raft.snap_chunk", {"index": 1, "term": 1, "offset": -1, "data": b"", "done": False, "membership": {}}, 1),
    ("raft.join", {"store": "s" * 257, "addrs": {}}, 1),
    # The executor's and the dispatcher's: times within years 1-9999, names bounded.
    ("run.ack", {"id": "x", "job": "j", "node": "n", "started_at": 253_402_300_800_000 + 1}, 1),
    ("exec.output", {"id": "x", "job": "j" * 4097, "offset": 0, "data": b""}, 1),
    ("exec.heartbeat", {"node": "n", "ids": ["x"] * 10_001}, 1),
    ("dispatcher.heartbeat", {"node": "n", "term": -1}, 1),
    ("gossip.ping", {"seq": 1, "port": 65_536}, 1),
    # The ACL's: its own limits.
    ("token.create", {"accessor": "a", "secret": "s" * 257}, 3),
    ("token.create", {"accessor": "a", "secret": "s" * 32, "policies": ["p"] * 33}, 3),
    ("token.create", {"accessor": "a", "secret": "s" * 32, "expires_at": -1}, 3),
    ("policy.put", {"name": "p", "rules": "r" * (16 * 1024 + 1)}, 3),
    ("audit.list", {"limit": -1}, 3),
])
def test_a_field_out_of_its_declared_bounds_is_refused(type_, body, version):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(type_, version=version), body))
    assert err.value.code == "field"


@pytest.mark.parametrize("head", [
    [1, "job.delete", "n", b"i" * 16, b""],                 # 5 items
    [1, "job.delete", "n", b"i" * 16, b"", 0, "extra"],     # 7 items
    {"version": 1},                                          # not an array
    "job.delete",
])
def test_header_not_a_six_item_array(head):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(head, {"name": "a"}))
    assert err.value.code == "format"


@pytest.mark.parametrize("head", [
    [1, "job.delete", 5, b"i" * 16, b"", 0],        # sender not a string
    [1, "job.delete", "n", "id-as-text", b"", 0],   # msg_id not bytes
    [1, "job.delete", "n", b"i" * 16, b"", True],   # term a bool
])
def test_header_fields_of_the_wrong_type(head):
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(head, {"name": "a"}))
    assert err.value.code == "format"


def test_body_not_a_map():
    with pytest.raises(WireError) as err:
        wire.decode(frames_of(header(), ["a"]))
    assert err.value.code == "format"


@pytest.mark.parametrize("garbage", [b"\xc1", b"\x92\x01", b"\xff" * 3 + b"\x00trailing"])
def test_garbage_bytes_are_a_format_error(garbage):
    with pytest.raises(WireError) as err:
        wire.decode([garbage, msgpack.packb({"name": "a"})])
    assert err.value.code == "format"


def test_map_with_non_string_keys_is_a_format_error():
    with pytest.raises(WireError) as err:
        wire.decode([msgpack.packb(header()), msgpack.packb({("a",): 1}, use_bin_type=True)])
    assert err.value.code == "format"


@pytest.fixture
def small_frames():
    saved = wire.max_frame_bytes()
    wire.set_max_frame_bytes(1024)
    yield 1024
    wire.set_max_frame_bytes(saved)


def test_oversize_frame(small_frames):
    frames = wire.encode(m.ExecOutput(id="x", job="j", offset=0, data=b"x" * (small_frames + 1)), "n")
    with pytest.raises(WireError) as err:
        wire.decode(frames)
    assert err.value.code == "size"


def test_oversize_route_frame(small_frames):
    with pytest.raises(WireError) as err:
        wire.decode([b"r" * (small_frames + 1), *wire.encode(m.JobList(), "n")])
    assert err.value.code == "size"


def test_frame_at_the_limit_passes(small_frames):
    def frames_with(size):
        return wire.encode(m.ExecOutput(id="x", job="j", offset=0, data=b"x" * size), "n")

    size = 0
    while len(frames_with(size)[1]) < small_frames:
        size += 1
    frames = frames_with(size)
    assert len(frames[1]) == small_frames
    assert len(wire.decode(frames).msg.data) == size


def test_topic_ends_with_terminator_so_names_are_not_prefixes():
    web1, web10 = wire.topic("node", "web1"), wire.topic("node", "web10")
    assert web1 == b"node.web1\x00"
    assert web1.endswith(b"\x00") and wire.topic("all").endswith(b"\x00")
    assert not web10.startswith(web1)  # a SUB to node.web1\0 does not get node.web10's runs


def test_output_topic_covers_one_execution_under_its_job():
    job, one = wire.output_topic("backup"), wire.output_topic("backup", "7-web1")
    assert one.startswith(job)
    assert not wire.output_topic("backup2").startswith(job)


def test_datagram_round_trip():
    data = wire.encode_datagram(m.GossipPing(seq=42), "web1", term=3, msg_id=b"d" * 16)
    assert isinstance(data, bytes)
    env = wire.decode_datagram(data)
    assert (env.type, env.sender, env.term, env.msg_id, env.msg) == ("gossip.ping", "web1", 3, b"d" * 16,
                                                                     m.GossipPing(seq=42))


@pytest.mark.parametrize("data,code", [
    (b"\xc1", "format"),                                             # not msgpack
    (msgpack.packb([1, 2, 3]), "frames"),                            # not [header, body]
    (msgpack.packb({"h": 1}), "frames"),
    (msgpack.packb([header("gossip.ping"), {}], use_bin_type=True), "field"),
    (msgpack.packb([header("gossip.ping", version=9), {"seq": 1}], use_bin_type=True), "version"),
    (msgpack.packb([[1, 2], {"seq": 1}]), "format"),
])
def test_malformed_datagram(data, code):
    with pytest.raises(WireError) as err:
        wire.decode_datagram(data)
    assert err.value.code == code


def test_oversize_datagram(small_frames):
    data = wire.encode_datagram(m.ExecOutput(id="x", job="j", offset=0, data=b"x" * small_frames), "n")
    with pytest.raises(WireError) as err:
        wire.decode_datagram(data)
    assert err.value.code == "size"


def test_every_message_type_is_registered_once_with_a_noun_verb_name():
    types = wire.message_types()
    assert {"ok", "error", "run.start", "run.claim", "raft.append"} <= set(types)
    for name, cls in types.items():
        assert cls.TYPE == name
        assert name in ("ok", "error") or "." in name


def test_declaring_a_type_twice_is_refused():
    with pytest.raises(ValueError):
        @wire.message("job.delete")
        class Again:
            name: str


def test_a_body_error_carries_the_request_id_so_a_reply_can_name_it():
    frames = wire.encode(m.JobGet(name="x"), "c", msg_id=b"r" * 16)
    frames[-1] = wire.pack({"name": 42})
    with pytest.raises(wire.WireError) as err:
        wire.decode(frames)
    assert err.value.code == "field" and err.value.msg_id == b"r" * 16
    with pytest.raises(wire.WireError) as err:
        wire.decode([b"garbage", b"more"])
    assert err.value.msg_id == b""
