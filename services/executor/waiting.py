"""Pure parts of the executor core for runs that wait for their start time: the runs waiting
(claimed ahead, or jittered), and which of them get their child forked ahead, in a burst."""

from __future__ import annotations

import collections
import heapq

from common import models

BURST_MS, BURST_RUNS = 20, 4  # runs of this node due within 20 ms of each other, 4 or more: a burst
HOLD_AFTER_MS = 1  # runs that began to wait are looked at this much later, so a burst's are all counted
FORKING, HELD = "forking", "held"


class Waiting:
    """Runs published before their start time (claimed ahead, or jittered) wait here, so that
    at the tick the executor starts them on its own clock: no publication, no transport and no
    dispatcher round lies between the tick and the start."""

    def __init__(self):
        self.runs = {}   # execution id → (execution, job)
        self.heap = []   # (start time, execution id); ids taken early are skipped when popped

    def add(self, execution, job):
        """False when the run already waits (a run.start sent again)."""
        if execution["id"] in self.runs:
            return False
        self.runs[execution["id"]] = (execution, job)
        heapq.heappush(self.heap, (models.start_time(execution), execution["id"]))
        return True

    def take(self, execution_id):
        """The run, no longer waiting (started early by a kill, or dropped); None if it was not."""
        return self.runs.pop(execution_id, None)

    def deadline(self):
        while self.heap and self.heap[0][1] not in self.runs:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def due(self, now):
        """The runs whose start time has come, in start order."""
        out = []
        while self.heap and self.heap[0][0] <= now:
            _, execution_id = heapq.heappop(self.heap)
            run = self.runs.pop(execution_id, None)
            if run is not None:
                out.append(run)
        return out

    def __contains__(self, execution_id):
        return execution_id in self.runs

    def __iter__(self):
        return iter(list(self.runs))

    def __len__(self):
        return len(self.runs)


class Bursts:
    """Children forked ahead: the child of a run waiting for its time is forked now and becomes
    the command at the start, so that a burst of ticks starts with a write per run, not a fork
    per run. Only in a burst: a held child costs a shell more than a plain start, which a steady
    stream of runs pays for nothing (at 300 runs/s on 3 servers and 2 agents it made the p99
    lateness worse, 212 ms against 78). At most `limit` children are forked ahead at once."""

    def __init__(self, limit):
        self.limit = limit
        self.forks = {}                         # id → FORKING (asked for) or HELD (ready)
        self.announced = collections.Counter()  # start time // BURST_MS → runs waiting for it
        self.to_hold = collections.deque()      # (execution, job) waiting, not yet looked at
        self.hold_at = None

    def waits(self, execution, job, now):
        self.announced[models.start_time(execution) // BURST_MS] += 1
        if self.hold_at is None:
            self.hold_at = now + HOLD_AFTER_MS
        self.to_hold.append((execution, job))

    def hold(self, now, waiting):
        """The runs to fork a child ahead for, of those that began to wait since the last look."""
        self.hold_at = None
        past = now // BURST_MS - 1
        for bucket in [b for b in self.announced if b < past]:
            del self.announced[bucket]
        chosen = []
        while self.to_hold:
            execution, job = self.to_hold.popleft()
            bucket = models.start_time(execution) // BURST_MS
            burst = self.announced[bucket - 1] + self.announced[bucket] + self.announced[bucket + 1] >= BURST_RUNS
            key = execution["id"]
            if burst and key in waiting and key not in self.forks and len(self.forks) < self.limit:
                self.forks[key] = FORKING
                chosen.append((execution, job))
        return chosen

    def forked(self, execution_id, ok, wanted):
        """A child asked for is forked (ok) or could not be; True when it is to be discarded
        (its run is no longer `wanted` waiting: started, killed or drained meanwhile)."""
        state = self.forks.pop(execution_id, None)
        if not ok:
            return False
        if state == FORKING and wanted:
            self.forks[execution_id] = HELD
            return False
        return True

    def release(self, execution_id):
        """The run no longer waits (launched, or finished before it could be): True when it had
        a child held, which the launch takes over or the finish discards."""
        if self.forks.get(execution_id) == HELD:
            del self.forks[execution_id]
            return True
        return False

    def stop(self):
        """A drain: nothing more is forked ahead; the ids of the children held, to discard."""
        self.to_hold.clear()
        self.hold_at = None
        held = [key for key, state in self.forks.items() if state == HELD]
        for key in held:
            del self.forks[key]
        return held
