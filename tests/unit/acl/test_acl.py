"""common/acl.py: Dkron's rules parsed and refused with the reason, and the one check."""

import json

import pytest

from common import acl, errors

NOW = 1_000_000


def rules(paths):
    return json.dumps({"path": {p: {"capabilities": c} for p, c in paths.items()}})


def view(**tokens):
    policies = {"ro": acl.parse_rules(rules({"/v1/jobs": ["list"], "/v1/jobs/*": ["read", "list"]})),
                "team-a": acl.parse_rules(rules({"/v1/jobs": ["list"], "/v1/jobs/team-a-*": ["create", "read",
                                                                                            "update", "delete", "list"]})),
                "no-secret": acl.parse_rules(rules({"/v1/jobs/*": ["read"], "/v1/jobs/secret*": ["deny"]}))}
    return acl.View(True, {a: {"accessor": a, "hash": acl.secret_hash(a * 16), **t} for a, t in tokens.items()}, policies)


def judge(v, accessor, path, cap, exists=None):
    return acl.judge(v, acl.Caller("token", accessor), acl.Need(path, cap), NOW, exists)


def test_dkrons_rules_round_trip():
    text = rules({"/v1/jobs/*": ["create", "read", "update", "delete", "list"]})
    assert acl.parse_rules(text) == {"/v1/jobs/*": ["create", "delete", "list", "read", "update"]}


@pytest.mark.parametrize("text, says", [
    ("not json", "not JSON"), ("[]", '{"path"'), (json.dumps({"path": {}, "x": 1}), '{"path"'),
    (rules({"v1/jobs": ["read"]}), "must start with /"), (rules({"/v1/jobs": ["fly"]}), "capabilities"),
    (json.dumps({"path": {"/v1": {"capabilities": "read"}}}), "capabilities"), (None, "JSON string"),
    ("x" * (acl.RULES_MAX_CHARS + 1), "JSON string"),
])
def test_bad_rules_are_refused_with_the_reason(text, says):
    with pytest.raises(errors.BadRequest, match=says):
        acl.parse_rules(text)


def test_a_read_only_token_reads_and_lists_but_writes_nothing():
    v = view(r={"type": "client", "policies": ["ro"]})
    assert judge(v, "r", "/v1/jobs", "list") is None and judge(v, "r", "/v1/jobs/x", "read") is None
    for cap in ("create", "update", "delete"):
        assert isinstance(judge(v, "r", "/v1/jobs/x", cap), errors.Forbidden)
    assert isinstance(judge(v, "r", "/v1/jobs/x", acl.WRITE, exists=True), errors.Forbidden)


def test_a_glob_on_job_names_scopes_a_token_to_those_jobs_and_what_lies_under_them():
    v = view(a={"type": "client", "policies": ["team-a"]})
    assert judge(v, "a", "/v1/jobs/team-a-web", acl.WRITE, exists=False) is None
    assert judge(v, "a", "/v1/jobs/team-a-web/executions/1", "read") is None
    assert isinstance(judge(v, "a", "/v1/jobs/team-b-web", "read"), errors.Forbidden)
    assert acl.can_read(v, acl.Caller("token", "a"), "/v1/jobs/team-a-x", NOW)
    assert not acl.can_read(v, acl.Caller("token", "a"), "/v1/jobs/team-b-x", NOW)


def test_deny_wins_over_a_grant():
    v = view(d={"type": "client", "policies": ["no-secret"]})
    assert judge(v, "d", "/v1/jobs/public", "read") is None
    assert isinstance(judge(v, "d", "/v1/jobs/secret-db", "read"), errors.Forbidden)


def test_unknown_deleted_and_expired_tokens_are_unauthenticated_and_management_may_do_anything():
    v = view(m={"type": "management", "policies": []}, e={"type": "management", "policies": [], "expires_at": NOW})
    assert judge(v, "m", "/v1/acl/tokens", "create") is None
    assert isinstance(judge(v, "e", "/v1/jobs", "list"), errors.Unauthenticated)
    assert isinstance(judge(v, "gone", "/v1/jobs", "list"), errors.Unauthenticated)
    assert acl.Caller.of_secret(v, "m" * 16) == acl.Caller("token", "m")
    assert acl.Caller.of_secret(v, "wrong" * 4).kind == "unknown"


def test_without_a_token_the_anonymous_policy_applies_else_401():
    v = view()
    anonymous = acl.Caller.of_secret(v, "")
    assert isinstance(acl.judge(v, anonymous, acl.Need("/v1/jobs", "list"), NOW), errors.Unauthenticated)
    v.policies[acl.ANONYMOUS] = acl.parse_rules(rules({"/v1/jobs": ["list"]}))
    assert acl.judge(v, anonymous, acl.Need("/v1/jobs", "list"), NOW) is None
    assert isinstance(acl.judge(v, anonymous, acl.Need("/v1/jobs/x", "delete"), NOW), errors.Unauthenticated)


def test_nodes_may_do_anything_and_only_nodes_send_node_messages():
    v = view(m={"type": "management", "policies": []})
    assert acl.judge(v, acl.Caller("node"), acl.NODE, NOW) is None
    assert isinstance(acl.judge(v, acl.Caller("token", "m"), acl.NODE, NOW), errors.Forbidden)
    assert acl.Caller.of_peer("", {"s1"}).kind == "node" and acl.Caller.of_peer("s1", {"s1"}).kind == "node"
    assert acl.Caller.of_peer("token:abc", {"s1"}) == acl.Caller("token", "abc")
    assert acl.Caller.of_peer("launcher", {"s1"}).kind == "anonymous"


def test_nothing_is_judged_before_the_bootstrap():
    assert acl.judge(acl.View(), acl.Caller("unknown"), acl.Need("/v1/jobs/x", "delete"), NOW) is None
