"""common/needs.py: every message type of the wire and every route of the api is mapped to
what it needs under the ACL, and each mapping can be filled from its message or route."""

import dataclasses
import re

import pytest

from common import acl, errors, needs, wire
from services.api.app import create_app
from tests.unit.api.fakeclient import FakeClient, make_conf

SAMPLE = {str: "x", int: 1, bool: True}


def app_routes():
    """(method, template) of every responder the app routes to (Falcon's compiled router)."""
    app = create_app(make_conf(), client=FakeClient())
    found, todo = set(), list(app._router._roots)
    while todo:
        node = todo.pop()
        if node.resource is not None:
            for method, responder in node.method_map.items():
                # Falcon fills the methods a resource lacks with its own 405 responders.
                if not getattr(responder, "__qualname__", "").startswith(("method_not_allowed", "MethodNotAllowed")) \
                        and "falcon" not in getattr(responder, "__module__", ""):
                    found.add((method, node.uri_template))
        todo.extend(node.children)
    return found


def test_every_message_type_is_mapped():
    unmapped = sorted(set(wire.message_types()) - set(needs.MESSAGES))
    assert unmapped == [], f"message types with no (path, capability) in common/needs.py: {unmapped}"
    assert sorted(set(needs.MESSAGES) - set(wire.message_types())) == []


def test_every_route_is_mapped_and_every_mapping_is_a_route():
    routes = app_routes()
    assert ("GET", "/v1/jobs") in routes and ("DELETE", "/v1/acl/tokens/{accessor}") in routes
    assert sorted(routes - set(needs.ROUTES)) == [], "routes with no (path, capability) in common/needs.py"
    assert sorted(set(needs.ROUTES) - routes) == [], "mappings of routes the app does not serve"


def test_the_walk_would_catch_an_unmapped_route(monkeypatch):
    monkeypatch.delitem(needs.ROUTES, ("GET", "/v1/busy"))
    assert ("GET", "/v1/busy") in app_routes() - set(needs.ROUTES)


@pytest.mark.parametrize("name", sorted(wire.message_types()))
def test_each_message_mapping_fills_from_its_fields(name):
    cls = wire.message_types()[name]
    fields = {f.name: SAMPLE.get(f.type if isinstance(f.type, type) else eval(f.type, vars(wire.messages)), "x")
              for f in dataclasses.fields(cls)}
    if name == "job.put":
        fields["job"] = {"name": "x"}
    if name == "output.get":
        fields["job"] = "x"  # the executor adds the job it ran the execution for
    need = needs.for_message(name, fields)
    assert need in (acl.NODE, acl.ANY, acl.OPEN) or re.fullmatch(r"/v1(/[\w.-]+)*", need.path), need
    assert need.capability in acl.CAPABILITIES + (acl.WRITE, "node", "any", "open")


def test_each_route_mapping_fills_from_its_parameters():
    for (method, template), entry in needs.ROUTES.items():
        params = {p: "x" for p in re.findall(r"{(\w+)}", template)}
        need = needs.for_route(method, template, params)
        assert need in (acl.NODE, acl.ANY, acl.OPEN, needs.BODY) or "{" not in need.path, (method, template)


def test_a_message_whose_fields_do_not_fill_its_path_is_refused():
    with pytest.raises(errors.BadRequest):
        needs.for_message("job.put", {"job": "not a map"})
    with pytest.raises(errors.BadRequest):
        needs.for_message("job.get", {})


def test_an_unmapped_type_or_route_needs_a_node():
    assert needs.for_message("no.such", {}) is acl.NODE
    assert needs.for_route("GET", "/v1/nowhere", {}) is acl.NODE


def test_a_batch_is_judged_as_each_of_its_items():
    pairs = needs.judged("job.put_batch", {"jobs": [{"name": "a"}, {"name": "b", "executor_config": {"su": "x"}}]})
    assert [needs.for_message(t, f) for t, f in pairs] == [acl.Need("/v1/jobs/a", acl.WRITE),
                                                           acl.Need("/v1/jobs/b", acl.WRITE)]
    assert needs.run_as(pairs[1][1]["job"]) == acl.Need("/v1/su/x", "update")
    assert needs.judged("job.get", {"name": "a"}) == [("job.get", {"name": "a"})]
    assert set(needs.EACH) <= set(wire.message_types())
    with pytest.raises(errors.BadRequest):
        needs.judged("job.put_batch", {"jobs": "not a list"})
    with pytest.raises(errors.BadRequest):  # an item that names no job cannot be judged: refused
        [needs.for_message(t, f) for t, f in needs.judged("job.put_batch", {"jobs": [{"name": "a"}, 7]})]
