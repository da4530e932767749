"""common/metrics.py (counters, gauges, histograms with labels; snapshots, merge, Prometheus
text) and the api's /metrics, which gathers every local service's snapshot over ctl."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common import metrics

from fakeclient import make_conf

DROPS = metrics.WIRE_DROPPED


def families(text):
    return {s.name: s for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels} | {(s.name, tuple(sorted(s.labels.items()))): s
                                for f in text_string_to_metric_families(text) for s in f.samples}


def test_counters_count_per_label_set_and_never_go_down():
    registry = metrics.Registry()
    runs = registry.add(metrics.JOB_EXECUTIONS)
    runs.inc(job="a", status="success")
    runs.inc(2, job="a", status="success")
    runs.inc(job="a", status="failed")
    assert runs.value(job="a", status="success") == 3 and runs.value(job="b", status="success") == 0
    with pytest.raises(ValueError):
        runs.inc(-1, job="a", status="success")
    with pytest.raises(ValueError, match="labels"):
        runs.inc(job="a")
    assert registry.add(metrics.JOB_EXECUTIONS) is runs  # the same spec twice is one metric


def test_a_view_is_the_loops_dropped_counter():
    registry = metrics.Registry()
    dropped = registry.add(DROPS).view(service="raft")
    dropped["version"] += 1
    dropped["version"] += 1
    dropped["size"] += 1
    assert dict(dropped) == {"version": 2, "size": 1} and dropped["never"] == 0 and len(dropped) == 2
    other = registry.add(DROPS).view(service="gossip")
    other["size"] += 5
    assert dict(dropped) == {"version": 2, "size": 1}  # views keep to their own service
    with pytest.raises(ValueError):
        dropped["size"] = 0


def test_histograms_bucket_sum_and_count():
    registry = metrics.Registry()
    late = registry.add(metrics.SCHEDULER_LATENESS)
    for value in (0.0005, 0.003, 0.2, 120):
        late.observe(value)
    assert late.value() == (4, pytest.approx(120.2035))
    text = metrics.render(registry.snapshot())
    found = families(text)
    assert found[("pykron_scheduler_lateness_seconds_bucket", (("le", "0.001"),))].value == 1
    assert found[("pykron_scheduler_lateness_seconds_bucket", (("le", "0.25"),))].value == 3
    assert found[("pykron_scheduler_lateness_seconds_bucket", (("le", "+Inf"),))].value == 4
    assert found["pykron_scheduler_lateness_seconds_count"].value == 4


def test_merge_adds_counters_and_histograms_and_keeps_the_last_gauge():
    a, b = metrics.Registry(), metrics.Registry()
    a.add(DROPS).inc(service="raft", reason="size")
    b.add(DROPS).inc(3, service="raft", reason="size")
    b.add(DROPS).inc(service="gossip", reason="size")
    a.add(metrics.RAFT_COMMIT).observe(0.002)
    b.add(metrics.RAFT_COMMIT).observe(0.2)
    a.add(metrics.RAFT_TERM).set(3)
    b.add(metrics.RAFT_TERM).set(4)
    found = families(metrics.render(metrics.merge([a.snapshot(), b.snapshot()])))
    assert found[("pykron_wire_dropped_total", (("reason", "size"), ("service", "raft")))].value == 4
    assert found[("pykron_wire_dropped_total", (("reason", "size"), ("service", "gossip")))].value == 1
    assert found["pykron_raft_commit_seconds_count"].value == 2
    assert found["pykron_raft_term"].value == 4


def test_label_values_are_escaped():
    registry = metrics.Registry()
    registry.add(metrics.TICKS_SKIPPED).inc(job='we"ird\\job', reason="line\nbreak")
    text = metrics.render(registry.snapshot())
    assert 'job="we\\"ird\\\\job"' in text and 'reason="line\\nbreak"' in text
    sample = next(s for f in text_string_to_metric_families(text) for s in f.samples)
    assert sample.labels == {"job": 'we"ird\\job', "reason": "line\nbreak"}


def test_the_endpoint_gathers_every_service_and_says_which_answered(app_with, fake):
    raft = metrics.Registry()
    raft.add(DROPS).inc(2, service="raft", reason="version")
    raft.add(metrics.RAFT_TERM).set(7)
    fake.services = {"raft": {"metrics": raft.snapshot()}, "gossip": {"metrics": []}, "executor": {}}
    api = app_with()
    resp = api.simulate_get("/metrics")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = families(resp.text)
    up = {svc: found[("pykron_service_up", (("service", svc),))].value
          for svc in ("api", "gossip", "raft", "scheduler", "dispatcher", "executor")}
    assert up == {"api": 1, "gossip": 1, "raft": 1, "scheduler": 0, "dispatcher": 0, "executor": 1}
    assert found[("pykron_wire_dropped_total", (("reason", "version"), ("service", "raft")))].value == 2
    assert found["pykron_raft_term"].value == 7
    asked = [c[1] for c in fake.calls if c[0] == "call_once"]
    run_dir = make_conf().node.run_dir
    assert f"ipc://{run_dir}/raft.ctl" in asked and not any("api.ctl" in a for a in asked)
