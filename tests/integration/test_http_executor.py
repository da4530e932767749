"""Dkron's http executor as its documentation shows it, on one real node against a real HTTP
server on loopback: both documented examples are accepted as written, the request is made, and
executor_config.timeout counts whole seconds ("1" ends a request that hangs after a second,
while the server is still holding it)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

# website/docs/usage/executors/http.md, and the http job in grpc.md, as Dkron documents them.
DOC_HTTP = {"executor": "http", "executor_config": {
    "method": "GET", "url": "http://example.com", "headers": "[]", "body": "", "timeout": "30",
    "expectCode": "200", "expectBody": "", "debug": "true"}}
DOC_GRPC_PAGE = {"executor": "http", "executor_config": {
    "url": "127.0.0.1:9000/test.TestService/Test", "body": "{\"key\": \"value\"}", "timeout": "30",
    "expectCode": "0"}}
HANG_S = 8


class Site(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path == "/hang":
            time.sleep(HANG_S)
            self.server.answered.set()
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    server.hits, server.answered = [], threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()


def put(node, name, doc):
    return requests.post(f"{node.api()}/v1/jobs", json={"name": name, "schedule": "@manually", **doc}, timeout=10)


def run_to_end(node, name, eventually):
    assert requests.post(f"{node.api()}/v1/jobs/{name}/run", timeout=10).status_code == 202

    def finished():
        got = requests.get(f"{node.api()}/v1/jobs/{name}/executions", timeout=10).json()
        return next((x for x in got if x["finished_at"] != "0001-01-01T00:00:00Z"), None)

    return eventually(finished, timeout=30, what=f"a finished run of {name}")


@pytest.mark.parametrize("name,doc", [("doc-http", DOC_HTTP), ("doc-grpc-page", DOC_GRPC_PAGE)])
def test_dkrons_documented_http_jobs_are_accepted_as_written(node, name, doc):
    resp = put(node, name, doc)
    assert resp.status_code == 201, resp.text
    assert resp.json()["executor_config"]["timeout"] == "30"


def test_the_documented_job_runs_against_a_real_server(node, site, eventually):
    url, server = site
    config = {**DOC_HTTP["executor_config"], "url": f"{url}/ok"}
    assert put(node, "http-ok", {"executor": "http", "executor_config": config}).status_code == 201
    execution = run_to_end(node, "http-ok", eventually)
    assert execution["success"] is True, execution
    assert execution["output"].startswith("hello") and "/ok" in server.hits


def test_the_timeout_counts_whole_seconds(node, site, eventually):
    url, server = site
    config = {**DOC_HTTP["executor_config"], "url": f"{url}/hang", "timeout": "1"}
    assert put(node, "http-hang", {"executor": "http", "executor_config": config}).status_code == 201
    execution = run_to_end(node, "http-hang", eventually)
    # Ended by its timeout of one second: after the server took the request (not 1 ms), before
    # the server answered (not the 30 s default, nor the server's own pace).
    assert execution["success"] is False
    assert "timeout of 1s" in execution["output"] or "timed out" in execution["output"], execution["output"]
    assert "/hang" in server.hits and not server.answered.is_set()
