"""A fake time source for `TokenBucket` (see `include.returns_sync.clients.policy.BUCKET_TIME`).

Throttling tests assert on the waits a bucket asks for, never on the wall clock: the clock only
moves when the fake `sleep` is called (or never, with `frozen`), so the waits are exact however
loaded the machine is.
"""

from __future__ import annotations

import threading
import time

from include.returns_sync.clients.policy import BucketTime


class FakeBucketTime:
    """A thread-safe monotonic clock that advances only by the sleeps it is asked for.

    `frozen`: sleeps are recorded but the clock stays put (threads reserving at "one instant").
    `real_sleep`: also sleep for real, for tests whose other side (a sandbox rate limiter)
    counts real seconds; the bucket still computes its waits from the fake clock.
    """

    def __init__(self, *, frozen: bool = False, real_sleep: bool = False) -> None:
        self.now = 1000.0
        self.frozen = frozen
        self.real_sleep = real_sleep
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if not self.frozen:
                self.now += seconds
        if self.real_sleep:
            time.sleep(seconds)

    @property
    def total_slept(self) -> float:
        with self._lock:
            return sum(self.slept)

    def source(self) -> BucketTime:
        return BucketTime(clock=self.clock, sleep=self.sleep)
