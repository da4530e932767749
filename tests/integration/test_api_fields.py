"""Every field the API takes or answers is in our OpenAPI document, on a real node. Generated
from the document: each GET operation's answer is validated with every object of the document
closed to the properties it lists; and from the job model: each field is sent, read back, and
looked up in the document's job schema. Both checks are shown to fail on a document that lacks
a field (notifications, which it once lacked)."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from api_checks import wait
from common import models

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "services" / "api" / "openapi.yaml").read_text())
# A value other than the default for every field of the job model, as a client sends it.
SAMPLES = {
    "displayname": "Every field", "schedule": "@every 1h", "timezone": "Europe/Berlin", "owner": "Ops",
    "owner_email": "ops@example.com", "disabled": True, "tags": {"role": "web"}, "metadata": {"team": "a"},
    "retries": 2, "parent_job": "fields-parent", "processors": {"log": {"forward": "true"}},
    "concurrency": "forbid", "executor": "http", "executor_config": {"method": "GET", "url": "http://127.0.0.1:9/"},
    "ephemeral": True, "starts_at": "2099-01-01T00:00:00Z", "expires_at": "2099-06-01T00:00:00Z",
    "misfire_policy": "skip", "catchup_window": "2h", "jitter": "5s", "retry_interval": "3s",
    "max_retry_interval": "10m", "timeout": "1m", "history_limit": 7,
    "notifications": [{"type": "webhook", "rule": "on_failure", "url": "http://127.0.0.1:9/hook"}],
}
# Fields of the model a client never sets: the server's own.
SERVERS_OWN = {"name": "the key", "created_at": "set when stored", "dependent_jobs": "from the children's parent_job"}
BARE = {"schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}
JSON_GETS = [(path, op) for path, item in SPEC["paths"].items() for method, op in item.items()
             if method == "get" and "application/json" in op["responses"].get("200", {}).get("content", {})]


def closed(spec):
    """The document with every object schema that lists properties closed to them."""
    spec = copy.deepcopy(spec)

    def close(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)
    close(spec["components"])
    close(spec["paths"])
    return spec


def strays(spec, path, document):
    """Where the answer to GET path holds what the document does not describe."""
    pointer = "/".join(["", "paths", path.replace("/", "~1"), "get", "responses", "200", "content",
                        "application~1json", "schema"])
    validator = jsonschema.Draft202012Validator({**spec, "$ref": "#" + pointer})
    return sorted(f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document))


def unlisted(spec, fields):
    listed = spec["components"]["schemas"]["job"]["properties"]
    return sorted(f for f in fields if f not in listed or listed[f].get("readOnly"))


HEADERS = {}  # the management token, once the fixture has bootstrapped the ACL


@pytest.fixture(scope="module")
def jobs(node):
    api = f"{node.api()}/v1"
    for name, doc in (("fields-parent", BARE), ("fields-bare", BARE), ("fields-full", SAMPLES),
                      ("fields-run", {**BARE, "executor_config": {"command": "echo ran"}})):
        resp = requests.post(f"{api}/jobs", json={"name": name, **doc}, timeout=10, headers=HEADERS)
        assert resp.status_code == 201, resp.text
    assert requests.post(f"{api}/jobs/fields-run/run", timeout=10, headers=HEADERS).status_code == 202
    ran = wait(lambda: [x for x in requests.get(f"{api}/jobs/fields-run/executions", timeout=10, headers=HEADERS).json()
                        if x["finished_at"] != "0001-01-01T00:00:00Z"], "a finished run of fields-run")
    client = node.client()  # one policy and one token, for the ACL's GETs of one of each; from now on
    _, secret = client.acl_bootstrap()  # the module's requests carry the management token
    HEADERS["X-Dkron-Token"] = node.management_token = secret
    client = node.client()
    client.policy_put("fields-policy", json.dumps({"path": {"/v1/jobs/*": {"capabilities": ["read"]}}}))
    token, _ = client.token_create(policies=["fields-policy"])
    return api, {"{execution}": ran[0]["id"], "{name}": "fields-policy", "{accessor}": token["accessor"]}


def test_every_field_the_api_takes_is_in_the_spec(jobs):
    api, _ = jobs
    assert set(models.JOB_DEFAULTS) - set(SAMPLES) - set(SERVERS_OWN) == set(), "a model field without a sample"
    bare = requests.get(f"{api}/jobs/fields-bare", timeout=10, headers=HEADERS).json()
    full = requests.get(f"{api}/jobs/fields-full", timeout=10, headers=HEADERS).json()
    taken = {field for field in SAMPLES if full.get(field) != bare.get(field)}
    assert taken == set(SAMPLES), f"sent but not taken (a sample to mend?): {sorted(set(SAMPLES) - taken)}"
    assert unlisted(SPEC, taken) == [], "the API takes fields our spec does not list (or lists read-only)"
    without = copy.deepcopy(SPEC)
    del without["components"]["schemas"]["job"]["properties"]["notifications"]
    assert unlisted(without, taken) == ["notifications"]  # the check can fail


@pytest.mark.parametrize("path, op", JSON_GETS, ids=[p for p, _ in JSON_GETS])
def test_every_field_the_api_answers_is_in_the_spec(jobs, path, op):
    api, names = jobs
    url = path.replace("{job_name}", "fields-full" if "executions" not in path else "fields-run")
    for param, value in names.items():
        url = url.replace(param, value)
    params = {p["name"]: p.get("example") or p["schema"].get("examples", ["@every 1m"])[0]
              for p in op.get("parameters", []) if p.get("in") == "query" and p.get("required")}
    resp = requests.get(f"{api}{url}", params=params, timeout=10, headers=HEADERS)
    assert resp.status_code == 200, resp.text
    assert strays(closed(SPEC), path, resp.json()) == []


def test_the_closed_spec_catches_a_field_it_lacks(jobs):
    api, _ = jobs
    without = copy.deepcopy(SPEC)
    del without["components"]["schemas"]["job"]["properties"]["notifications"]
    found = strays(closed(without), "/jobs/{job_name}", requests.get(f"{api}/jobs/fields-full", timeout=10, headers=HEADERS).json())
    assert found and "notifications" in found[0]
