"""`python -m services.api --conf PATH`: runs gunicorn as the Procfile does, so the api starts
like every other service."""

import os
import sys

from common import config
from common.launch import command, environment


def main(argv=None):
    conf = config.load_argv(argv, prog="pykron-api")
    argv = command("api", conf.source)
    os.execvpe(argv[0], argv, {**os.environ, **environment("api", conf.source)})


if __name__ == "__main__":
    sys.exit(main())
