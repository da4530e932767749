"""Counters, gauges and histograms with labels, kept by each service in its own Registry
(`loop.metrics`) and exported in its ctl.status reply; the api gathers every local service's
snapshot over the ctl sockets, merges them and renders Prometheus text. No global state."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass

LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True)
class Spec:
    """A metric family as declared once here; a service adds the ones it records."""

    kind: str  # counter | gauge | histogram
    name: str
    help: str
    labels: tuple = ()
    buckets: tuple = ()


# The families pykron exports. Each is recorded by one service (named in the help), so a
# node's /metrics never adds one figure twice.
JOB_EXECUTIONS = Spec("counter", "pykron_job_executions_total",
                      "Executions whose final status the leader's dispatcher committed, by job and status.",
                      ("job", "status"))
SCHEDULER_LATENESS = Spec("histogram", "pykron_scheduler_lateness_seconds",
                          "How long after its scheduled time (and jitter) a scheduled run started on its executor.",
                          (), LATENESS_BUCKETS)
TICKS_SKIPPED = Spec("counter", "pykron_ticks_skipped_total",
                     "Ticks recorded as skipped (misfire policy, forbid, no node), by job and reason.",
                     ("job", "reason"))
RAFT_COMMIT = Spec("histogram", "pykron_raft_commit_seconds",
                   "Time from a proposal on this server to its commit and apply.", (), COMMIT_BUCKETS)
RAFT_LEADER_CHANGES = Spec("counter", "pykron_raft_leader_changes_total",
                           "Changes of the leader this server has seen.")
RAFT_TERM = Spec("gauge", "pykron_raft_term", "This server's current Raft term.")
RAFT_STATE_DIVERGED = Spec("counter", "pykron_raft_state_diverged_total",
                           "Snapshot points at which the replicas' state hashes differed (each one a fault to recover).")
GOSSIP_MEMBERS = Spec("gauge", "pykron_gossip_members", "Members this node's gossip knows, by status.",
                      ("status",))
WIRE_DROPPED = Spec("counter", "pykron_wire_dropped_total",
                    "Messages dropped (malformed, oversize, unroutable, send queue full), by service and reason.",
                    ("service", "reason"))
SERVICE_UP = Spec("gauge", "pykron_service_up",
                  "1 when the service answered the api's status request in time, else 0.", ("service",))


SKIP_REASONS = (("concurrency forbid", "forbid"), ("misfire policy", "misfire"),
                ("missed by more than the catch-up window", "catchup_window"), ("no alive node", "no_node"),
                ("full", "node_full"))


def skip_reason(text):
    """A skipped tick's reason as a label: a few fixed words, not the free text (ids and times
    in a label would make a new series per tick)."""
    return next((label for prefix, label in SKIP_REASONS if prefix in text), "other")


class Metric:
    def __init__(self, spec):
        self.spec = spec
        self.values = {}  # label values (a tuple in spec.labels order) → value

    def key(self, labels):
        if len(labels) != len(self.spec.labels) or any(k not in labels for k in self.spec.labels):
            raise ValueError(f"{self.spec.name}: labels {sorted(labels)}, expected {list(self.spec.labels)}")
        return tuple(str(labels[k]) for k in self.spec.labels)

    def value(self, **labels):
        return self.values.get(self.key(labels), 0)

    def samples(self):
        return [[list(k), v] for k, v in sorted(self.values.items())]


class Counter(Metric):
    def inc(self, amount=1, **labels):
        if amount < 0:
            raise ValueError(f"{self.spec.name}: a counter only goes up")
        key = self.key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def view(self, **fixed):
        """A mapping over the one label not fixed: `view[reason] += 1` counts, `dict(view)` reads."""
        return CounterView(self, fixed)


class CounterView(MutableMapping):
    def __init__(self, counter, fixed):
        free = [k for k in counter.spec.labels if k not in fixed]
        if len(free) != 1:
            raise ValueError(f"{counter.spec.name}: a view leaves exactly one label free, not {free}")
        self.counter, self.fixed, self.free = counter, fixed, free[0]

    def _key(self, value):
        return self.counter.key({**self.fixed, self.free: value})

    def __getitem__(self, value):
        return self.counter.values.get(self._key(value), 0)

    def __setitem__(self, value, total):
        if total < self[value]:
            raise ValueError(f"{self.counter.spec.name}: a counter only goes up")
        self.counter.values[self._key(value)] = total

    def __delitem__(self, value):
        raise TypeError("a counter's samples are never removed")

    def __iter__(self):
        at = self.counter.spec.labels.index(self.free)
        want = {self.counter.spec.labels.index(k): str(v) for k, v in self.fixed.items()}
        return iter([k[at] for k in self.counter.values if all(k[i] == v for i, v in want.items())])

    def __len__(self):
        return sum(1 for _ in self)


class Gauge(Metric):
    def set(self, value, **labels):
        self.values[self.key(labels)] = value

    def inc(self, amount=1, **labels):
        key = self.key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def clear(self):
        """Forget every sample: for gauges re-set whole on each refresh (members by status)."""
        self.values.clear()


class Histogram(Metric):
    def observe(self, value, **labels):
        key = self.key(labels)
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [[0] * len(self.spec.buckets), 0.0, 0]
        for i, bound in enumerate(self.spec.buckets):
            if value <= bound:
                counts[0][i] += 1
                break
        counts[1] += value
        counts[2] += 1

    def value(self, **labels):
        """(count, sum) of what was observed with these labels."""
        found = self.values.get(self.key(labels))
        return (found[2], found[1]) if found else (0, 0.0)


KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


class Registry:
    """The metrics of one process, keyed by family name."""

    def __init__(self):
        self.metrics = {}

    def add(self, spec):
        """The metric for spec, made on first use; the same spec again returns the same object."""
        found = self.metrics.get(spec.name)
        if found is not None:
            if found.spec != spec:
                raise ValueError(f"{spec.name}: already declared differently")
            return found
        metric = self.metrics[spec.name] = KINDS[spec.kind](spec)
        return metric

    def snapshot(self):
        """Plain data for the wire: [{name, kind, help, labels, buckets, samples}]."""
        return [{"name": s.name, "kind": s.kind, "help": s.help, "labels": list(s.labels),
                 "buckets": list(s.buckets), "samples": m.samples()}
                for s, m in ((m.spec, m) for m in self.metrics.values())]


def merge(snapshots):
    """Several services' snapshots as one: the same family's samples with the same labels are
    added (counters, histograms) or, for gauges, the later one is kept."""
    families = {}
    for snapshot in snapshots:
        for fam in snapshot:
            into = families.setdefault(fam["name"], {**fam, "samples": {}})
            if (into["kind"], into["labels"]) != (fam["kind"], fam["labels"]):
                continue  # two services disagree on a family's shape: keep the first, never mix
            for labels, value in fam["samples"]:
                key = tuple(labels)
                have = into["samples"].get(key)
                if have is None or fam["kind"] == "gauge":
                    into["samples"][key] = value
                elif fam["kind"] == "counter":
                    into["samples"][key] = have + value
                elif len(have[0]) == len(value[0]):
                    into["samples"][key] = [[a + b for a, b in zip(have[0], value[0])], have[1] + value[1],
                                            have[2] + value[2]]
    return [{**f, "samples": [[list(k), v] for k, v in sorted(f["samples"].items())]}
            for _, f in sorted(families.items())]


def render(families):
    """Prometheus' text exposition format (version 0.0.4)."""
    lines = []
    for fam in families:
        name, names = fam["name"], fam["labels"]
        lines.append(f"# HELP {name} {_escape_help(fam['help'])}")
        lines.append(f"# TYPE {name} {fam['kind']}")
        for values, value in fam["samples"]:
            pairs = list(zip(names, values))
            if fam["kind"] != "histogram":
                lines.append(f"{name}{_labels(pairs)} {_number(value)}")
                continue
            counts, total, count = value
            running = 0
            for bound, n in zip(fam["buckets"], counts):
                running += n
                lines.append(f"{name}_bucket{_labels(pairs + [('le', _number(bound))])} {running}")
            lines.append(f"{name}_bucket{_labels(pairs + [('le', '+Inf')])} {count}")
            lines.append(f"{name}_sum{_labels(pairs)} {_number(total)}")
            lines.append(f"{name}_count{_labels(pairs)} {count}")
    return "\n".join(lines) + "\n"


def _labels(pairs):
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(str(v))}"' for k, v in pairs) + "}"


def _escape_value(text):
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))
