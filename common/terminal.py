"""How pykronctl writes to a terminal: tables and key/value lists (or JSON with --json), a
spinner while it waits (a single progress line when stderr is not a terminal), live output of
runs, and job files in and out (JSON or YAML, one job or a list)."""

from __future__ import annotations

import json
import sys
import threading

import yaml

from common import errors, models

SPIN_FRAMES = "|/-\\"
SPIN_EVERY_S = 0.1


class Printer:
    def __init__(self, out, as_json):
        self.out, self.json = out, as_json

    def print(self, text):
        print(text, file=self.out, flush=True)

    def dump(self, doc):
        self.print(json.dumps(doc, indent=2))

    def show(self, doc):
        """One object: `key  value` lines, or JSON."""
        if self.json:
            return self.dump(doc)
        width = max((len(k) for k in doc), default=0)
        for key, value in doc.items():
            self.print(f"{key:<{width}}  {cell(value)}")

    def table(self, rows, columns):
        """Rows of objects: a table with a header line, or a JSON array of the objects."""
        if self.json:
            return self.dump(rows)
        cells = [[cell(row.get(c)) or "-" for c in columns] for row in rows]  # no blank a reader's eye skips
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        self.print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in cells:
            self.print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())

    def output(self, data):
        """Bytes of a run's output, as they come (JSON lines with --json)."""
        if self.json:
            return self.print(json.dumps({"output": data.decode(errors="replace")}))
        if hasattr(self.out, "buffer"):
            self.out.buffer.write(data)
        else:
            self.out.write(data.decode(errors="replace"))
        self.out.flush()


class Progress:
    """A spinner on stderr while something is awaited; `done()` (or leaving the block) clears
    it. When stderr is not a terminal the message is printed once, as a plain line."""

    def __init__(self, message, stream=None):
        self.message, self.stream = message, stream or sys.stderr
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.stream.isatty():
            self.thread = threading.Thread(target=self.spin, daemon=True)
            self.thread.start()
        else:
            print(f"pykronctl: {self.message}", file=self.stream, flush=True)
        return self

    def spin(self):
        frame = 0
        while not self.stop.wait(SPIN_EVERY_S):
            self.stream.write(f"\r{SPIN_FRAMES[frame % len(SPIN_FRAMES)]} {self.message}")
            self.stream.flush()
            frame += 1

    def done(self):
        if self.thread is not None and not self.stop.is_set():
            self.stop.set()
            self.thread.join()
            self.stream.write("\r\033[K")  # clear the spinner's line before output takes it
            self.stream.flush()
        self.stop.set()

    def __exit__(self, *exc):
        self.done()


def confirm(what, verb, stdin=None, stream=None):
    """Ask before something that cannot be taken back; BadRequest unless the answer is yes. With
    no terminal to ask on (a script, a pipe) it refuses rather than guess, naming the flag."""
    stdin, stream = stdin or sys.stdin, stream or sys.stderr
    if not stdin.isatty():
        raise errors.BadRequest(f"{what}; stdin is not a terminal to confirm on: add --yes to {verb}")
    print(f"pykronctl: {what}. Go on? [y/N] ", end="", file=stream, flush=True)
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise errors.BadRequest(f"{verb}: not confirmed, nothing done")


def cell(value):
    """A value as a person reads it: Go's zero time, which Dkron sends for "no time" (a job with no
    next run, a run not started or not finished), says "-" here; --json keeps it as Dkron does."""
    if value is None or value == models.ZERO_TIME:
        return "-"
    text = " ".join(str(value).split()) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_text(path, limit=1 << 20):
    """A file's text, or stdin's for "-"; BadRequest naming the file when it cannot be read."""
    try:
        if path == "-":
            text = sys.stdin.read(limit + 1)
        else:
            with open(path) as fh:
                text = fh.read(limit + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(text) > limit:
        raise errors.BadRequest(f"{path}: over {limit} characters")
    return text


def read_jobs(path):
    """A JSON (or YAML) file, or "-" for stdin, holding one job or a list of jobs."""
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        doc = _yaml(text, path, exc)
    docs = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(d, dict) for d in docs):
        raise errors.BadRequest(f"{path}: expected a job object or a list of job objects")
    return docs


def write_jobs(path, docs):
    """Jobs as a JSON array (Dkron's restore format), to a file or "-" for stdout."""
    text = json.dumps(docs, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise errors.BadRequest(f"{path}: {exc.strerror}") from None


def _yaml(text, path, json_error):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"{path}: neither valid JSON ({json_error}) nor YAML ({exc})") from None
