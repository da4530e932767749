"""The fluent processor's sender, a short-lived child of the executor: reads {address, tag,
record, timeout_ms} as JSON on stdin and posts the record as Dkron's fluent-logger does, one
forward-protocol message (msgpack [tag, time, record]) over TCP. `python -m services.executor.fluent`."""

from __future__ import annotations

import json
import socket
import sys
import time

from common import wire


def main():
    try:
        payload = json.loads(sys.stdin.buffer.read())
        address, tag, record = payload["address"], payload["tag"], payload["record"]
        host, _, port = address.rpartition(":")
        target, timeout_s = (host, int(port)), payload["timeout_ms"] / 1000
    except (ValueError, KeyError, TypeError) as exc:
        print(f"fluent: bad payload: {exc!r}", file=sys.stderr, flush=True)
        return 2
    message = wire.pack([tag, int(time.time()), record])
    try:
        with socket.create_connection(target, timeout=timeout_s) as sock:
            sock.sendall(message)
    except OSError as exc:
        print(f"fluent: sending to {address} failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
