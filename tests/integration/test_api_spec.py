"""The REST API against a real node, one test per operation of Dkron's spec and of our additions
(less the ACL's /acl/*, which tests/security/test_acl.py drives on a cluster with the ACL on),
generated from both documents (an operation without a check in api_checks.py fails), and our
spec checked to differ from Dkron's only by additions (Dkron Pro's /acl/policies included)."""

from pathlib import Path

import pytest
import yaml

from api_checks import CHECKS, OURS, Api

# Dkron's file unchanged (sha256 f96c5e2b…, as Dkron publishes it).
DKRON = yaml.safe_load((Path(__file__).resolve().parent / "dkron-openapi.yaml").read_text())
METHODS = ("get", "put", "post", "delete", "patch")
LAST = ("POST", "/leave")  # the node leaves the cluster: nothing may run after it


def operations(spec):
    return [(m.upper(), p) for p, item in spec["paths"].items() if not p.startswith("/acl/") for m in item
            if m in METHODS]


DKRON_OPS = [op for op in operations(DKRON) if op != LAST]  # LAST has its own test, the module's last
ADDED_OPS = [op for op in operations(OURS) if op not in DKRON_OPS and op != LAST]


@pytest.fixture(scope="module")
def api(node):
    return Api(node)


@pytest.mark.parametrize("method, path", DKRON_OPS, ids=[f"{m} {p}" for m, p in DKRON_OPS])
def test_dkron_operation(api, method, path):
    assert (method, path) in CHECKS, f"no test for Dkron's {method} {path}"
    CHECKS[(method, path)](api)


@pytest.mark.parametrize("method, path", ADDED_OPS, ids=[f"{m} {p}" for m, p in ADDED_OPS])
def test_added_operation(api, method, path):
    assert (method, path) in CHECKS, f"no test for our {method} {path}"
    assert OURS["paths"][path][method.lower()].get("x-pykron") == "added"
    CHECKS[(method, path)](api)


def test_our_spec_differs_from_dkrons_only_by_additions(api):
    served = yaml.safe_load(api.call("GET", "/openapi.yaml", 200).text)
    assert served == OURS
    assert not additions_only(DKRON, served, ""), additions_only(DKRON, served, "")
    # The rule itself: a removal, a narrowed type or a changed value is caught.
    assert additions_only({"a": {"type": "string"}}, {"a": {"type": "integer"}}, "")
    assert additions_only({"a": [1, 2]}, {"a": [1]}, "") and additions_only({"a": 1, "b": 2}, {"a": 1}, "")


def additions_only(dkron, ours, where):
    """Where ours is not Dkron's plus additions: every key, list element and value of Dkron's is
    in ours; a `type` may only widen (to a list holding Dkron's); `required` stays as it is."""
    if isinstance(dkron, dict):
        if not isinstance(ours, dict):
            return [f"{where}: not an object"]
        found = []
        for key, value in dkron.items():
            at = f"{where}/{key}"
            if key not in ours:
                found.append(f"{at}: missing")
            elif key == "type":
                wide = ours[key] if isinstance(ours[key], list) else [ours[key]]
                if not set(value if isinstance(value, list) else [value]) <= set(wide):
                    found.append(f"{at}: {value!r} narrowed to {ours[key]!r}")
            elif key == "required" and value != ours[key]:
                found.append(f"{at}: {value!r} changed to {ours[key]!r}")
            else:
                found += additions_only(value, ours[key], at)
        return found
    if isinstance(dkron, list):
        if not isinstance(ours, list) or len(ours) < len(dkron):
            return [f"{where}: list shortened"]
        return [f for i, v in enumerate(dkron) for f in additions_only(v, ours[i], f"{where}[{i}]")]
    return [] if dkron == ours else [f"{where}: {dkron!r} changed to {ours!r}"]


def test_dkron_operation_leave_last(api):
    """POST /leave takes the node out of the cluster, so it runs after every other test here."""
    assert LAST in operations(DKRON) and LAST in CHECKS
    CHECKS[LAST](api)
