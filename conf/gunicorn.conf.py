"""gunicorn settings for the api, read from the same node config as every service
(PYKRON_CONF names the node's file; unset means conf/node.toml's defaults)."""

import os

# Imported under another name: gunicorn reads every module-level name, and `config` is one of its settings.
from common.config import load as _load

_conf = _load(os.environ.get("PYKRON_CONF") or None)

bind = f"{_conf.node.bind}:{_conf.api.port}"
worker_class = "gthread"  # threads, so a streaming response holds a thread, not a worker
workers = _conf.api.workers
threads = _conf.api.threads
timeout = 60
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
loglevel = _conf.log.level
proc_name = f"pykron-api-{_conf.node.name}"
