"""The web UI's files (plain HTML, CSS and JavaScript under ui/, no build step) at /ui, Dkron's
redirect from / for browsers, and our OpenAPI document at /v1/openapi.yaml."""

from __future__ import annotations

from pathlib import Path

import falcon

HERE = Path(__file__).resolve().parent
UI_DIR = HERE / "ui"
SPEC = HERE / "openapi.yaml"
# Only these are served: a fixed list leaves no path for a request to climb out of ui/.
FILES = {"index.html": "text/html; charset=utf-8", "app.css": "text/css; charset=utf-8",
         **{name: "text/javascript; charset=utf-8" for name in ("app.js", "lib.js", "job.js", "form.js")}}


class Root:
    """Dkron: a browser asking for / is sent to the UI; anything else gets a 404."""

    def on_get(self, req, resp):
        if req.client_accepts("text/html") and "html" in (req.accept or ""):
            raise falcon.HTTPSeeOther("/ui/")
        raise falcon.HTTPNotFound(title="not found: the API is under /v1, the UI under /ui")


class Files:
    def __init__(self):
        self.cache = {}

    def on_get(self, req, resp, name="index.html"):
        if name not in FILES:
            raise falcon.HTTPNotFound(title=f"no UI file {name!r}")
        if name not in self.cache:
            self.cache[name] = (UI_DIR / name).read_bytes()
        resp.content_type = FILES[name]
        resp.set_header("Cache-Control", "no-cache")  # a new release is seen on the next load
        resp.data = self.cache[name]


class Spec:
    def __init__(self):
        self.data = None

    def on_get(self, req, resp):
        if self.data is None:
            self.data = SPEC.read_bytes()
        resp.content_type = "application/yaml"
        resp.data = self.data
