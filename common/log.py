"""Structured logging for every pykron process: one line per event on stderr (supervisord
captures and rotates it), as text `time level service logger: message` or as JSON."""

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time

QUEUED_LINES = 100_000  # lines waiting for the writing thread; beyond them lines are dropped and counted


class JsonFormatter(logging.Formatter):
    def __init__(self, service):
        super().__init__()
        self.service = service

    def format(self, record):
        doc = {"at": round(record.created, 3), "level": record.levelname.lower(),
               "service": self.service, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class _Behind(logging.handlers.QueueHandler):
    """Hands each line to the writing thread; never waits. When the queue is full (stderr not
    read for a long while) the line is dropped and counted, and the count is logged next."""

    def __init__(self, q):
        super().__init__(q)
        self.dropped = 0

    def enqueue(self, record):
        if self.dropped and self.queue.qsize() < QUEUED_LINES // 2:
            dropped, self.dropped = self.dropped, 0
            self._put(logging.makeLogRecord({"name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                                             "msg": f"{dropped} log lines dropped: stderr was not read fast enough"}))
        self._put(record)

    def _put(self, record):
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


_listener = None


def _stop_writing():
    """What is queued is written before the process ends (a normal exit, or a crash caught by
    the service loop)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(_stop_writing)


def setup(service, level="info", fmt="text", behind=False):
    """Configure the root logger once per process; later calls replace the handler. behind:
    lines are written by a thread of their own (the service loops): stderr is a pipe that
    supervisord drains, and when it lags a write blocks. At a burst of a thousand runs a
    second, each logged, the executor's loop stalled on it for up to 200 ms (case a of the
    schedule benchmark: p99 lateness 143-163 ms with the writes on the loop, 60 without)."""
    global _listener
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        formatter = logging.Formatter(
            f"%(asctime)s.%(msecs)03dZ %(levelname)s {service} %(name)s: %(message)s",
            "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    _stop_writing()
    if behind:
        lines = queue.Queue(QUEUED_LINES)
        _listener = logging.handlers.QueueListener(lines, handler)
        _listener.start()
        handler = _Behind(lines)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # peewee logs every SQL statement at debug; that is noise even in a debug log.
    logging.getLogger("peewee").setLevel(logging.INFO)
