"""A restore's plan, for the client library (common/client.py): Dkron's restore file checked
whole, put in order (parents first) and cut into batches of one Raft entry each (job.put_batch,
protocol 4); while a server speaks an older protocol the client puts one job to an entry."""

from __future__ import annotations

from common import errors, messages as m, models, wire

# Of an entry's bytes, what a batch's jobs may fill: the command around them (its session, author,
# request id and the refusals it echoes) and the server's own check of each job, which may set
# fields the client's left out, take the rest.
ENTRY_SHARE = 0.75
ENTRY_SPARE_BYTES = 4096


def order(docs, stored_names):
    """docs → (names in order, parents first; {name: packed size of the job as checked}).
    BadRequest, and nothing stored, when a job is invalid, named twice, or its parent is neither
    in the list nor stored, or when parents form a cycle. stored_names() is asked only when a
    parent is not in the list."""
    parents, sizes = {}, {}
    for doc in docs:
        job = models.validate_job(doc)
        if job["name"] in parents:
            raise errors.BadRequest(f"job {job['name']!r} appears twice")
        parents[job["name"]] = job["parent_job"]
        sizes[job["name"]] = max(len(wire.pack(job)), len(wire.pack(doc)))
    stored, names, placed = None, [], set()
    for name in parents:
        chain, at = [], name
        while at in parents and at not in placed:
            if at in chain:
                raise errors.BadRequest(f"parent jobs form a cycle: {' -> '.join(chain + [at])}")
            chain.append(at)
            at = parents[at]
        if at and at not in placed and at not in parents:
            stored = stored_names() if stored is None else stored
            if at not in stored:
                raise errors.BadRequest(f"job {chain[-1]!r}: parent job {at!r} is neither in the list nor stored")
        names.extend(reversed(chain))
        placed.update(chain)
    return names, sizes


def batches(names, sizes, entry_bytes):
    """names → lists of names in the same order, each list's jobs within one entry's share of
    `entry_bytes` and the message's bounds; a job too large to share an entry is a list alone
    (put on its own, it is refused or not as any job.put is)."""
    most = budget(entry_bytes)
    cut, filled = [], 0
    for name in names:
        if cut and (filled + sizes[name] > most or len(cut) >= m.MAX_LISTED):
            yield cut
            cut, filled = [], 0
        cut.append(name)
        filled += sizes[name]
    if cut:
        yield cut


def fits(size, entry_bytes):
    return size <= budget(entry_bytes)


def budget(entry_bytes):
    """The bytes of jobs one batch may carry: its share of an entry, within the message's bound."""
    return min(int(entry_bytes * ENTRY_SHARE) - ENTRY_SPARE_BYTES, m.JOB_BYTES - m.SMALL_BYTES)
