"""services/api/members.py and status.py: members in Serf's shape, the leader's member,
isleader, GET /v1 and the /health probe."""

import pytest

from common import errors, wire

from fakeclient import member

SERF_FIELDS = {"Name", "Addr", "Port", "Tags", "Status", "ProtocolMin", "ProtocolMax", "ProtocolCur",
               "DelegateMin", "DelegateMax", "DelegateCur"}


def test_members_in_serfs_shape_with_total(api, fake):
    fake.member_list = [member("s1"), member("s2", status="failed"), member("a1", role="agent", status="left"),
                        member("a2", status="leaving"), member("a3", status="suspect")]
    resp = api.simulate_get("/v1/members")
    assert resp.status_code == 200 and resp.headers["X-Total-Count"] == "5"
    first = resp.json[0]
    assert set(first) == SERF_FIELDS | {"id", "statusText"}
    assert first["Name"] == "s1" and first["Addr"] == "10.0.0.1" and first["Port"] == 8946
    assert first["Tags"]["server"] == "true" and first["id"] == "s1"
    assert [(x["Status"], x["statusText"]) for x in resp.json] == [
        (1, "alive"), (4, "failed"), (3, "left"), (2, "leaving"), (1, "suspect")]


def test_leader_is_the_bare_serf_member_of_the_raft_leader(api, fake):
    fake.info["leader"] = {"node": "s2", "term": 4, "addrs": {}, "ready": True}
    resp = api.simulate_get("/v1/leader")
    assert resp.status_code == 200
    assert set(resp.json) == SERF_FIELDS and resp.json["Name"] == "s2"


def test_no_leader_is_a_503(api, fake):
    fake.info["leader"] = None
    resp = api.simulate_get("/v1/leader")
    assert resp.status_code == 503 and "no leader" in resp.json["error"]


def test_a_leader_gossip_has_not_seen_yet_is_a_503(api, fake):
    fake.info["leader"] = {"node": "s9", "term": 4, "addrs": {}, "ready": True}
    resp = api.simulate_get("/v1/leader")
    assert resp.status_code == 503 and "s9" in resp.json["error"]


def test_isleader_compares_the_leader_with_this_node(api, fake):
    resp = api.simulate_get("/v1/isleader")
    assert resp.status_code == 200 and resp.json == "I am a leader"
    fake.info["leader"] = {"node": "s2", "term": 4, "addrs": {}, "ready": True}
    resp = api.simulate_get("/v1/isleader")
    assert resp.status_code == 404 and resp.json == "I am a follower"
    fake.info["leader"] = None
    assert api.simulate_get("/v1/isleader").status_code == 404


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_status_document(api, fake, path):
    fake.member_list = [member("s1", tags={"dc": "east"}), member("s2", status="failed")]
    resp = api.simulate_get(path)
    assert resp.status_code == 200
    assert resp.json["agent"]["name"] == "s1" and resp.json["agent"]["version"]
    assert resp.json["tags"] == {"role": "pykron", "server": "true", "dc": "east"}
    serf = resp.json["serf"]
    assert serf["members"] == "2" and serf["alive"] == "1" and serf["failed"] == "1"
    assert serf["leader"] == "s1" and serf["term"] == "3"
    assert all(isinstance(v, str) for v in serf.values())  # Serf's stats are strings


def test_status_without_gossip_still_answers_from_raft_and_the_config(api, fake):
    fake.fail["members"] = errors.Unavailable("gossip restarting")
    resp = api.simulate_get("/v1")
    assert resp.status_code == 200 and resp.json["serf"]["members"] == "0" and resp.json["tags"] == {}


def test_status_without_raft_is_a_503(api, fake):
    fake.fail["node_info"] = errors.Unavailable("no reply from raft")
    assert api.simulate_get("/v1").status_code == 503


def test_health_is_healthy_while_raft_answers_and_knows_a_leader(api, fake):
    resp = api.simulate_get("/health")
    assert resp.status_code == 200 and resp.json == {"status": "healthy", "leader": "s1"}
    assert fake.calls == [("node_info",)]


@pytest.mark.parametrize("err", [errors.Unavailable("no reply from ipc://raft.client"),
                                 errors.Timeout("slow"), wire.WireError("format")])
def test_health_is_503_when_raft_does_not_answer(api, fake, err):
    fake.fail["node_info"] = err
    resp = api.simulate_get("/health")
    assert resp.status_code == 503 and resp.json["status"] == "unhealthy"
    assert str(err) in resp.json["error"]


def test_health_without_a_leader_is_503(api, fake):
    # For load balancers: a node that knows no leader cannot take writes or linearizable reads.
    fake.info["leader"] = None
    resp = api.simulate_get("/health")
    assert resp.status_code == 503 and resp.json == {"status": "unhealthy", "error": "no leader known"}


def test_x_whom_is_the_configured_node_name(app_with):
    assert app_with(name="web1").simulate_get("/health").headers["X-Whom"] == "web1"
