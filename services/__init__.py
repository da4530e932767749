"""One package per pykron service. Services meet only over the wire: a service imports
common/ and its own package, never another service (tests/test_layout.py checks)."""
