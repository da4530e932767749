"""Shared by every test suite: the repo root on sys.path, so `common` and `services` import
without installing the package. Suites add their own fixtures in their own conftest."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
