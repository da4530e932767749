"""The web UI with the ACL on (a secure cluster of one server), in Debian's chromium: no token
or an unknown one asks for a token (401), a token whose policies refuse a page says so and
keeps the token (403), lists show only what the token may read, and the actions it lacks the
right for are not shown."""

from __future__ import annotations

import json
import shutil

import pytest
import requests
from playwright.sync_api import sync_playwright

from scripts.cluster import Cluster
from tests.integration.test_ui import CHROMIUM, FLAGS

TEAM_A = {"path": {"/v1/jobs": {"capabilities": ["list"]}, "/v1/busy": {"capabilities": ["list"]},
                   "/v1/members": {"capabilities": ["read"]}, "/v1/settings": {"capabilities": ["read"]},
                   "/v1/jobs/team-a-*": {"capabilities": ["read", "list"]}}}


@pytest.fixture(scope="module")
def cluster():
    with Cluster(servers=1, secure=True) as c:
        mgmt = {"X-Dkron-Token": c.management_token}
        for name in ("team-a-web", "team-b-db"):
            job = {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}
            assert requests.post(f"{c.api()}/v1/jobs", json=job, headers=mgmt, timeout=10).status_code == 201
        assert requests.post(f"{c.api()}/v1/acl/policies/team-a-read", headers=mgmt, timeout=10,
                             json={"Rules": json.dumps(TEAM_A)}).status_code == 202
        made = requests.post(f"{c.api()}/v1/acl/tokens", headers=mgmt, json={"Policies": ["team-a-read"]}, timeout=10)
        c.reader = made.json()["SecretID"]
        yield c


@pytest.fixture(scope="module")
def page(cluster, tmp_path_factory):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the UI tests need Debian's chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()


def use_token(page, token):
    page.fill("#token", token)
    page.click("form button")


def test_no_token_and_an_unknown_one_ask_for_a_token(cluster, page):
    page.goto(f"{cluster.api()}/ui/")
    page.wait_for_selector("#token")
    assert "asks for a token" in page.inner_text("#token-why")
    use_token(page, "not-a-token-of-this-cluster")
    page.wait_for_function("document.getElementById('token-why')?.textContent.includes('refused')")


def test_a_read_only_token_sees_its_jobs_and_no_actions(cluster, page):
    use_token(page, cluster.reader)
    page.wait_for_selector("#job-table")
    names = page.eval_on_selector_all("#job-table tr[data-job]", "rows => rows.map(r => r.dataset.job)")
    assert names == ["team-a-web"]
    assert page.query_selector("#job-table button") is None  # no Run: the token may not update
    assert page.is_hidden("#new-job")
    page.goto(f"{cluster.api()}/ui/#/jobs/team-a-web")
    page.wait_for_selector("#definition table, #definition dl, #definition *")
    for action in ("run", "toggle", "edit", "clear", "delete"):
        assert page.query_selector(f"#{action}") is None, action


def test_a_page_the_token_may_not_read_says_so_and_keeps_the_token(cluster, page):
    page.goto(f"{cluster.api()}/ui/#/jobs/team-b-db")
    page.wait_for_function("document.getElementById('notice').textContent.includes('Not allowed')")
    assert page.query_selector("#token") is None
    page.goto(f"{cluster.api()}/ui/#/")
    page.wait_for_selector("#job-table")


def test_a_management_token_sees_everything_and_every_action(cluster, page):
    page.evaluate("localStorage.setItem('pykron.token', arguments[0])".replace("arguments[0]",
                                                                                json.dumps(cluster.management_token)))
    page.goto(f"{cluster.api()}/ui/#/jobs/team-b-db")
    page.wait_for_selector("#delete")
    assert page.is_visible("#new-job") and page.query_selector("#run") is not None
