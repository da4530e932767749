"""Pieces the benchmark scripts share: percentiles, and the peak resident memory of each
service of a cluster, read from /proc (VmHWM) through the pids the ctl sockets report."""

from __future__ import annotations

from common.launch import services_for


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def service_memory(cluster):
    """{service: the highest peak RSS in bytes of that service on any node}."""
    peaks = {}
    for name, node in cluster.nodes.items():
        for svc in services_for(node.conf):
            pid = cluster.service_pid(name, svc.name) if svc.name != "api" else 0
            if not pid:
                continue
            try:
                with open(f"/proc/{pid}/status") as fh:
                    kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                continue
            peaks[svc.name] = max(peaks.get(svc.name, 0), kib * 1024)
    return peaks
