"""Pure parts of the dispatcher core for where runs go: the target nodes of a job by its tags,
and the frames that carry a job's runs (one on a tag topic when it can, else one per node)."""

from __future__ import annotations


def select_targets(job, members, rng, untagged="one"):
    """Alive members offering the job's executor whose tags match all of the job's; a tag value
    "v:N" caps the count at N (the smallest N wins). No tags: one node (Dkron: every node),
    unless the cluster setting untagged_jobs is "all"."""
    wanted, count = {}, None
    for key, value in (job.get("tags") or {}).items():
        value, sep, cap = value.partition(":")
        wanted[key] = value
        if sep:
            limit = int(cap) if cap.isdigit() else 0  # as Dkron: a count that is not a number selects none
            count = limit if count is None else min(count, limit)
    candidates = sorted(
        x["name"] for x in members
        if x["status"] == "alive" and job["executor"] in x.get("executors", [])
        and all(x["tags"].get(k) == v for k, v in wanted.items()))
    if not wanted and untagged != "all":
        count = 1
    if count is None or len(candidates) <= count:
        return candidates
    return sorted(rng.sample(candidates, count))


def tag_topic(job):
    """A job that runs on every node with one tag goes out once, on that tag's topic."""
    tags = job.get("tags") or {}
    if len(tags) == 1:
        (key, value), = tags.items()
        if ":" not in value:
            return f"{key}={value}"
    return None


def frames(runs):
    """Runs of one job go out in one frame on a tag topic when they can, else one per node:
    (executions, job, (topic kind, topic name)) each."""
    by_job, out = {}, []
    for run in runs:
        by_job.setdefault(run.job["name"], []).append(run)
    for runs in by_job.values():
        job, topic = runs[0].job, tag_topic(runs[0].job)
        if topic and len(runs) > 1:
            out.append(([r.execution for r in runs], job, ("tag", topic)))
        else:
            out.extend(([r.execution], job, ("node", r.execution["node"])) for r in runs)
    return out
