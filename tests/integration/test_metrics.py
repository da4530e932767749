"""/metrics and /health on a real node: Prometheus text gathered from every service's ctl
socket (parsed here with prometheus_client's own parser), a job run N times counted exactly N
times, wire drops counted per service and reason, and health for load balancers."""

import requests
import zmq
from prometheus_client.parser import text_string_to_metric_families

from common import wire

RUNS = 5
NAMES = ("pykron_job_executions_total", "pykron_scheduler_lateness_seconds", "pykron_ticks_skipped_total",
         "pykron_raft_commit_seconds", "pykron_raft_leader_changes_total", "pykron_raft_term",
         "pykron_gossip_members", "pykron_wire_dropped_total")


def scrape(node):
    resp = requests.get(f"{node.api()}/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}, resp.text


def sample(families, name, **labels):
    """The value of one sample (0 when absent); the parser names counter families without _total."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0


def test_every_service_answers_and_every_named_family_is_exported(node):
    families, text = scrape(node)
    for service in ("api", "gossip", "raft", "scheduler", "dispatcher", "executor"):
        assert sample(families, "pykron_service_up", service=service) == 1, service
    for name in NAMES:
        assert f"# TYPE {name} " in text, f"{name} is not exported"


def test_a_job_run_n_times_counts_exactly_n_executions(node, eventually):
    job = {"name": "metered", "schedule": "@manually", "executor": "shell", "executor_config": {"command": "true"}}
    assert requests.post(f"{node.api()}/v1/jobs", json=job, timeout=10).status_code == 201
    counted = lambda: sample(scrape(node)[0], "pykron_job_executions_total", job="metered", status="success")  # noqa: E731
    before = counted()
    for _ in range(RUNS):
        assert requests.post(f"{node.api()}/v1/jobs/metered", timeout=10).status_code == 202
    eventually(lambda: len([x for x in node.client().executions("metered") if x["finished_at"]]) == RUNS,
               what=f"{RUNS} finished runs")
    eventually(lambda: counted() == before + RUNS, timeout=10, what=f"the counter at {before + RUNS}")
    families, _ = scrape(node)
    total = sum(s.value for f in families.values() for s in f.samples
                if s.name == "pykron_job_executions_total" and s.labels.get("job") == "metered")
    assert total == RUNS  # and no other status counted them


def test_scheduled_runs_are_observed_as_lateness(node, eventually):
    """Observed at each scheduled run's start on its executor (ticks are claimed ahead)."""
    observed = lambda: sample(scrape(node)[0], "pykron_scheduler_lateness_seconds_count")  # noqa: E731
    before = observed()
    job = {"name": "late-meter", "schedule": "@every 1s", "executor": "shell", "executor_config": {"command": "true"}}
    assert requests.post(f"{node.api()}/v1/jobs", json=job, timeout=10).status_code == 201
    eventually(lambda: observed() >= before + 2, timeout=20, what="two scheduled runs observed")
    requests.post(f"{node.api()}/v1/jobs", json={**job, "disabled": True}, timeout=10).raise_for_status()


def test_malformed_frames_are_counted_by_service_and_reason(node):
    before = sample(scrape(node)[0], "pykron_wire_dropped_total", service="raft", reason="version")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    node.dial(sock, "s1", node.client().node_info()["addrs"]["raft"])
    for _ in range(3):
        sock.send_multipart([wire.pack([9, "job.list", "t", b"1" * 16, b"", 0]), wire.pack({})])
        assert sock.poll(3000)  # each is answered with bad_request once it was counted
        sock.recv_multipart()
    sock.close()
    after = sample(scrape(node)[0], "pykron_wire_dropped_total", service="raft", reason="version")
    assert after == before + 3


def test_health_is_200_with_the_leader_named(node):
    resp = requests.get(f"{node.api()}/health", timeout=5)
    assert resp.status_code == 200 and resp.json() == {"status": "healthy", "leader": "s1"}
