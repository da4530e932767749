"""`python -m services.api --conf PATH`: execs gunicorn exactly as the Procfile and supervisord
do (the config path travels in PYKRON_CONF), so the api starts like every other service."""

import os
import sys

from common import config
from common.errors import ConfigError
from common.launch import command, environment


def main(argv=None):
    try:
        # Loaded here only to fail fast with a readable message; gunicorn loads it again.
        conf = config.load_argv(argv, prog="pykron-api")
    except ConfigError as err:
        print(f"pykron-api: {err}", file=sys.stderr)
        return 2
    argv = command("api", conf.source)
    os.execvpe(argv[0], argv, {**os.environ, **environment("api", conf.source, conf.log.level)})


if __name__ == "__main__":
    sys.exit(main())
