"""Failed authentications per client address, in a sliding minute: guessing keys gets a 429.

In-process and bounded: each API process counts its own callers (behind a proxy, every caller
is the proxy's address, so put the limit there too). Only failures count, but while an address is
over the limit every request from it is refused, a right guess included: otherwise the limit would
not stop guessing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000  # the oldest address is forgotten first: memory stays bounded under a flood


class FailureLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and now - times[0] >= WINDOW_S:
            times.popleft()
        return times

    def retry_after(self, address: str) -> int:
        """Seconds until this address may try again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if len(times) < self.per_minute:
                return 0
            return max(1, int(WINDOW_S - (now - times[0])) + 1)

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            times.append(now)
            if len(times) > self.per_minute:
                times.popleft()  # the window never needs more than the limit
            self._failures[address] = times
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)
