"""Structured logging for every pykron process: one line per event on stderr (supervisord
captures and rotates it), as text `time level service logger: message` or as JSON."""

import json
import logging
import sys
import time


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


def setup(service, level="info", fmt="text"):
    """Configure the root logger once per process; later calls replace the handler."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        formatter = logging.Formatter(
            f"%(asctime)s.%(msecs)03dZ %(levelname)s {service} %(name)s: %(message)s",
            "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # peewee logs every SQL statement at debug; that is noise even in a debug log.
    logging.getLogger("peewee").setLevel(logging.INFO)
