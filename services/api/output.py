"""GET /v1/jobs/{job}/executions/{id}/output: an execution's output as server-sent events,
live while it runs, read by byte offset from the node that runs it; each event's id is the
offset reached, so a client that reconnects with Last-Event-ID resumes where it stopped."""

from __future__ import annotations

import codecs
import json
import logging
import time

from common import errors, models

log = logging.getLogger(__name__)

POLL_S = 0.2           # how often a running execution's output is read: the live delay
RECORD_EVERY_S = 2.0   # how often the replicated record is re-read (a run lost or never started ends)
KEEPALIVE_S = 15.0     # a comment line this often keeps proxies from closing a quiet stream
RETRY_MS = 1000        # what EventSource clients wait before reconnecting


class Output:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, job_name, execution):
        record = self.node.client.execution(job_name, execution)  # 404 before any stream starts
        offset = _offset(req.get_header("Last-Event-ID") or req.get_param("offset"))
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: pass events on as they come
        resp.stream = Stream(self.node.client, record, offset).events()


class Stream:
    """One client's stream; it holds one gunicorn thread while it runs (gthread workers)."""

    def __init__(self, client, record, offset):
        self.client, self.record, self.offset = client, record, offset
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def events(self):
        yield f"retry: {RETRY_MS}\n\n".encode()
        checked = quiet = time.monotonic()
        while True:
            finished, sent = self.read()
            if sent:
                yield sent
                quiet = time.monotonic()
            if finished:
                break
            now = time.monotonic()
            if now - checked >= RECORD_EVERY_S:
                checked = now
                if self.refresh():  # lost, killed or skipped: what is left is read once more
                    sent = self.read()[1]
                    if sent:
                        yield sent
                    break
            if now - quiet >= KEEPALIVE_S:
                yield b": still running\n\n"
                quiet = now
            if not sent:
                time.sleep(POLL_S)
        self.refresh()
        yield _event("end", json.dumps(models.execution_to_dkron(self.record)), self.offset)

    def read(self):
        """(finished, event bytes or b"") from what the executing node keeps."""
        try:
            got = self.client.output(self.record, self.offset)
        except errors.Error as err:
            # Not started there yet, or the node is gone: the record says whether to wait on.
            if self.record["finished_at"] is not None:
                return True, self.fallback(err)
            return False, b""
        data, finished = got["data"], bool(got["finished"])
        if not data:
            return finished, b""
        self.offset += len(data)
        done = finished and self.offset >= got["size"]
        text = self.decoder.decode(data, final=done)
        pending = len(self.decoder.getstate()[0])  # the start of a character cut in two: sent next time
        return done, _event("output", json.dumps(text), self.offset - pending) if text else b""

    def fallback(self, err):
        """The full output is out of reach: the replicated tail is what there is."""
        log.info("full output unavailable id=%s node=%s: %s", self.record["id"], self.record["node"], err)
        if self.offset or not self.record["output"]:
            return b""
        self.offset = self.record.get("output_size") or len(self.record["output"].encode())
        return _event("output", json.dumps(self.record["output"]), self.offset)

    def refresh(self):
        """Re-read the record; True once it is finished (lost, killed, skipped included)."""
        try:
            self.record = self.client.execution(self.record["job"], self.record["id"])
        except errors.Error:
            return False
        return self.record["finished_at"] is not None


def _event(kind, data, event_id):
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def _offset(value):
    if value in (None, ""):
        return 0
    if not (value.isascii() and value.isdigit()) or len(value) > 15:
        raise errors.BadRequest(f"Last-Event-ID: expected a byte offset, got {value[:40]!r}")
    return int(value)
