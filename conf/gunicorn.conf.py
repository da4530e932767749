"""gunicorn settings for the api, read from the same node config as every service
(PYKRON_CONF names the node's file; unset means conf/node.toml's defaults)."""

import os

# Imported under another name: gunicorn reads every module-level name, and `config` is one of its settings.
from common.config import load as _load

_conf = _load(os.environ.get("PYKRON_CONF") or None)

bind = f"{_conf.node.bind}:{_conf.api.port}"
worker_class = "gthread"  # threads, so a slow or streaming response holds a thread, not a worker
workers = _conf.api.workers
threads = _conf.api.threads
timeout = 30  # a worker whose main loop is silent this long is stuck: gunicorn replaces it
graceful_timeout = 10  # below supervisord's stopwaitsecs for the api (common/launch.py: 15)
errorlog = "-"  # stderr, like every pykron process (supervisord captures and rotates it)
loglevel = _conf.log.level
# Access lines go to stderr too. gunicorn's accesslog "-" means stdout, and a path such as
# /dev/stderr cannot be opened when stderr is a socket (journald), so the logger is set here.
logconfig_dict = {
    "root": {"level": _conf.log.level.upper(), "handlers": ["stderr"]},
    "loggers": {"gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}},
    "formatters": {"line": {"format": "%(message)s"}},
}
if _conf.api.certfile:  # HTTPS only: no plain listener beside it
    certfile, keyfile = _conf.api.certfile, _conf.api.keyfile
proc_name = f"pykron-api-{_conf.node.name}"
# gunicorn >= 25.1 opens a control socket, by default one per user ($HOME/.gunicorn): several
# nodes on one host (a test cluster) would share it. Older versions ignore the name.
control_socket = f"{_conf.node.run_dir}/gunicorn.ctl"
