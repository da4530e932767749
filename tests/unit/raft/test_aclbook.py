"""services/raft/aclbook.py: the ACL as the log applies it (protocol 3): bootstrap once, tokens
kept as hash and public key only, policies in Dkron's shape, refusals with the reason."""

import json

import pytest

from common import acl, keys, models
from services.raft.fsm import StateMachine, command

RO = json.dumps({"path": {"/v1/jobs/*": {"capabilities": ["read", "list"]}}})


@pytest.fixture
def fsm(tmp_path):
    machine = StateMachine(str(tmp_path / "state.db"))
    machine.index = 0

    def apply(op, **args):
        machine.index += 1
        return machine.apply([(machine.index, 1, command(op, args))])[0]

    machine.do = apply
    yield machine
    machine.close()


def token(accessor, secret, **extra):
    return {"accessor": accessor, "hash": acl.secret_hash(secret), "key": keys.token_keypair(secret).public.decode(),
            "created_at": 5, **extra}


def test_bootstrap_works_once_and_keeps_no_secret(fsm, tmp_path):
    secret = "s" * 32
    assert fsm.do("acl.bootstrap", token=token("a1", secret))["token"]["type"] == "management"
    assert fsm.do("acl.bootstrap", token=token("a2", "t" * 32))["error"] == "conflict"
    assert fsm.acl_enabled() and [t["accessor"] for t in fsm.tokens()] == ["a1"]
    assert secret.encode() not in (tmp_path / "state.db").read_bytes()
    assert fsm.token_keys() == {keys.token_keypair(secret).public.decode(): "token:a1"}


def test_tokens_need_the_bootstrap_known_policies_and_a_unique_secret(fsm):
    assert fsm.do("token.put", token=token("c1", "c" * 32, type="client", policies=["ro"]))["error"] == "conflict"
    fsm.do("acl.bootstrap", token=token("a1", "s" * 32))
    assert fsm.do("token.put", token=token("c1", "c" * 32, type="client", policies=["ro"]))["error"] == "not_found"
    assert fsm.do("policy.put", name="ro", rules=RO)["policy"] == {"name": "ro", "rules": RO, "description": ""}
    assert fsm.do("token.put", token=token("c1", "c" * 32, type="client", policies=["ro"]))["token"]["policies"] == ["ro"]
    assert fsm.do("token.put", token=token("c2", "c" * 32, type="client", policies=["ro"]))["error"] == "conflict"
    assert fsm.do("policy.delete", name="ro")["error"] == "conflict"  # still used by c1
    assert fsm.do("token.delete", accessor="c1")["token"]["accessor"] == "c1"
    assert fsm.do("policy.delete", name="ro")["policy"]["name"] == "ro"
    assert fsm.acl_view()["policies"] == {}


@pytest.mark.parametrize("bad, says", [
    ({"type": "root"}, "Type"), ({"policies": "ro"}, "Policies"), ({"policies": []}, "at least one policy"),
    ({"hash": "short"}, "hash"), ({"key": "not a key"}, "hash and public key"), ({"accessor": ""}, "AccessorID"),
    ({"expires_at": -1}, "expires_at"), ({"description": "d" * 300}, "Description"),
])
def test_a_malformed_token_is_refused_with_the_reason_and_nothing_stored(fsm, bad, says):
    fsm.do("acl.bootstrap", token=token("a1", "s" * 32))
    fsm.do("policy.put", name="ro", rules=RO)
    result = fsm.do("token.put", token={**token("c1", "c" * 32, type="client", policies=["ro"]), **bad})
    assert result["error"] == "bad_request" and says in result["message"]
    assert [t["accessor"] for t in fsm.tokens()] == ["a1"]


def test_a_bad_policy_is_refused_with_the_reason(fsm):
    assert "capabilities" in fsm.do("policy.put", name="p", rules='{"path": {"/v1": {"capabilities": ["x"]}}}')["message"]
    assert "Name" in fsm.do("policy.put", name="a b", rules=RO)["message"]
    assert fsm.policies() == []


def test_every_write_with_an_author_is_audited_once_with_what_it_changed(fsm):
    def authored(op, by, **args):
        fsm.index += 1
        return fsm.apply([(fsm.index, 1, {**command(op, args), "by": by, "at": 1000 + fsm.index,
                                          "client": "c", "seq": fsm.index})])[0]

    job = models.validate_job({"name": "j", "schedule": "@every 1m", "executor": "shell",
                               "executor_config": {"command": "a", "password": "hunter2"}}, now=1)
    authored("job.put", "acc-1", job=job)
    authored("job.put", "acc-2", job={**job, "executor_config": {"command": "b", "password": "hunter3"}})
    fsm.index += 1  # the same request sent again: applied once, audited once
    fsm.apply([(fsm.index, 1, {**command("job.put", {"job": job}), "by": "acc-2", "at": 1, "client": "c",
                               "seq": fsm.index - 1})])
    authored("policy.put", "acc-1", name="ro", rules=RO)
    authored("job.delete", "node:s1", name="j")
    fsm.do("settings.put", key="paused", value="true")  # no author: proposed before protocol 3
    entries, total = fsm.audit()
    assert total == 4, entries
    assert [(e["who"], e["op"], e["target"], e["change"]) for e in entries] == [
        ("node:s1", "job.delete", "j", {"deleted": True}), ("acc-1", "policy.put", "ro", {"rules": RO}),
        ("acc-2", "job.put", "j", {"fields": ["executor_config"]}), ("acc-1", "job.put", "j", {"created": True})]
    assert "hunter" not in json.dumps(entries)
    assert [e["seq"] for e in fsm.audit(before=entries[1]["seq"], limit=1)[0]] == [entries[2]["seq"]]
