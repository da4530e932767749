"""Cluster-wide switches: Dkron's pause/unpause of new job submissions, and pykron's cluster
settings (GET/PUT /v1/settings). Both live in the replicated state, so every server agrees; the
pause is the setting `paused` ("true"/"false"), not Dkron's per-node, in-memory flag."""

from __future__ import annotations

import falcon

from common import errors
from services.api import dkron

PAUSED = "paused"


def paused(node):
    return node.client.settings().get(PAUSED) == "true"


def refuse_when_paused(node):
    """Job creates and updates are refused while paused (503, as Dkron); toggle and restore are not."""
    if paused(node):
        raise errors.Unavailable("new job submissions are paused (POST /v1/unpause resumes them)")


class Pause:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        dkron.render(req, resp, {"paused": paused(self.node)})

    def on_post(self, req, resp):
        self.node.client.put_setting(PAUSED, "true")
        dkron.render(req, resp, {"paused": True})


class Unpause:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        self.node.client.put_setting(PAUSED, "false")
        dkron.render(req, resp, {"paused": False})


class Settings:
    """GET: every setting with its value. PUT: a JSON object of settings to change; each is
    checked by the state machine, and the first one it refuses stops the rest (400)."""

    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        dkron.render(req, resp, self.node.client.settings())

    def on_put(self, req, resp):
        doc = dkron.read_json(req)
        if not isinstance(doc, dict) or not doc:
            raise errors.BadRequest('expected a JSON object of settings, e.g. {"untagged_jobs": "all"}')
        for key in doc:  # every one allowed before any is changed
            req.context.grants.require(f"/v1/settings/{key}", "update")
        for key, value in doc.items():
            self.node.client.put_setting(key, setting_text(key, value))
        dkron.render(req, resp, self.node.client.settings(), falcon.HTTP_200)


def setting_text(key, value):
    """Settings are strings on the wire; booleans and numbers are accepted in their JSON spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise errors.BadRequest(f"setting {key}: expected a string, got {type(value).__name__}")
    return value
