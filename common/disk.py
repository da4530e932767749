"""Free space under a node's data dir, for the services that write there: below the reserve,
writes are refused with a clear error (HTTP 507) before SQLite meets a full disk mid-transaction,
and taken again by themselves once space returns."""

from __future__ import annotations

import os
import time

from common import errors

CHECK_EVERY_S = 0.2  # statvfs is cheap, but a burst of proposals need not each ask


class FreeSpace:
    def __init__(self, path, reserve_bytes, clock=time.monotonic):
        self.path, self.reserve, self.clock = path, reserve_bytes, clock
        self.checked_at, self.free = None, None

    def bytes_free(self):
        now = self.clock()
        if self.checked_at is None or now - self.checked_at >= CHECK_EVERY_S:
            st = os.statvfs(self.path)
            self.free, self.checked_at = st.f_bavail * st.f_frsize, now
        return self.free

    def low(self):
        return self.bytes_free() < self.reserve

    def check(self, what="writes"):
        if self.low():
            raise errors.InsufficientStorage(
                f"disk full: {self.free // 2**20} MiB free under {self.path}, below the reserve of "
                f"{self.reserve // 2**20} MiB ([node] min_free_bytes): {what} are refused until space returns")
