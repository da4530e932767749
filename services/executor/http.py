"""The http executor's child process: reads Dkron's http executor_config as JSON on stdin,
makes the request, writes the response body to stdout, and exits 0 only when the status (and
body) are what the job expects. `python -m services.executor.http` (see plans.http_plan)."""

from __future__ import annotations

import json
import re
import ssl
import sys
import urllib.error
import urllib.request

from common import errors, models

DEFAULT_TIMEOUT_S = 30


def request(cfg):
    """(status, body bytes). Dkron's headers: a JSON array of "Name: value" strings."""
    headers = {}
    for line in json.loads(cfg.get("headers") or "[]"):
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    body = cfg.get("body", "").encode() or None
    req = urllib.request.Request(cfg["url"], data=body, headers=headers, method=cfg["method"].upper())
    context = ssl.create_default_context(cafile=cfg.get("tlsRootCAsFile") or None)
    if cfg.get("tlsNoVerifyPeer", "").lower() == "true":
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if cfg.get("tlsCertificateFile"):
        context.load_cert_chain(cfg["tlsCertificateFile"], cfg.get("tlsCertificateKeyFile") or None)
    timeout = str(cfg.get("timeout", "")).strip()
    seconds = models.executor_timeout_ms("http", timeout) / 1000 if timeout else DEFAULT_TIMEOUT_S
    try:
        with urllib.request.urlopen(req, timeout=seconds or None, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def verdict(cfg, status, body):
    """None when the response is what the job expects, else why not. No expectCode: any 2xx."""
    codes = [c.strip() for c in cfg.get("expectCode", "").split(",") if c.strip()]
    if codes and str(status) not in codes:
        return f"http: status {status}, expected {', '.join(codes)}"
    if not codes and not 200 <= status < 300:
        return f"http: status {status}, expected 2xx"
    if cfg.get("expectBody") and not re.search(cfg["expectBody"], body.decode(errors="replace")):
        return f"http: body does not match {cfg['expectBody']!r}"
    return None


def main():
    cfg = json.loads(sys.stdin.read() or "{}")
    try:
        status, body = request(cfg)
    except (OSError, ValueError, errors.BadRequest) as exc:
        print(f"http: request failed: {exc}", flush=True)
        return 1
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    problem = verdict(cfg, status, body)
    if problem:
        print(f"\n{problem}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
