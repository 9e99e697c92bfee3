"""The vendors' request limits (Loop per minute, Whiplash per second), enforced on demand."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimit:
    """A request limit per window, enforced only while `enabled`; plus an on-demand 429 storm.

    Lenient (default): a sliding window, so a 429 ends as soon as the oldest request ages out.
    `fixed_window=True` (the strict reading of Loop, set by `Sandbox.set_strict`): Loop's
    one-minute window, so once the limit is reached every request is refused until that window
    ends. `storm(seconds)` refuses everything for `seconds` (default: one whole window), whatever
    `enabled` says, as when another client of the same key used the minute up; `arm_storm`
    starts one after a number of further requests, so a test can put it in the middle of a run.
    `window_seconds` is the knob that scales a vendor's window for tests (Loop: 60 s).

    Uses the monotonic wall clock, not `SandboxClock`: a frozen test clock must not freeze the
    limiter. `retry_after` is the header value sent with the 429 (None = no header, as Loop).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        retry_after: str | None,
        enabled: bool = False,
        fixed_window: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("RateLimit needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after
        self.enabled = enabled
        self.fixed_window = fixed_window
        self._clock = clock
        self._hits: deque[float] = deque()
        self._window_start: float | None = None
        self._window_count = 0
        self._storm_until = 0.0
        self._storm_armed: tuple[int, float] | None = None
        self._lock = threading.Lock()

    @classmethod
    def loop(cls, enabled: bool = False, window_seconds: float = 60.0) -> RateLimit:
        """Loop: 300 requests per minute per key; its 429 documents no Retry-After header."""
        return cls(300, window_seconds, retry_after=None, enabled=enabled)

    @classmethod
    def whiplash(cls, enabled: bool = False) -> RateLimit:
        """Whiplash: 10 requests per second per account; we answer 429 with `Retry-After: 1`."""
        return cls(10, 1.0, retry_after="1", enabled=enabled)

    def storm(self, seconds: float | None = None) -> None:
        """Answer 429 to every request for `seconds` from now (default: one whole window)."""
        with self._lock:
            self._storm_until = self._clock() + (
                self.window_seconds if seconds is None else seconds
            )

    def arm_storm(self, after_requests: int, seconds: float | None = None) -> None:
        """Start a `storm(seconds)` once `after_requests` more requests were admitted."""
        if after_requests < 0:
            raise ValueError("after_requests must be >= 0")
        with self._lock:
            self._storm_armed = (
                after_requests,
                self.window_seconds if seconds is None else seconds,
            )

    def admit(self) -> bool:
        """Record one request; False when it is over the limit (it is then not counted)."""
        now = self._clock()
        with self._lock:
            if self._storm_armed is not None:
                left, seconds = self._storm_armed
                if left <= 0:
                    self._storm_armed = None
                    self._storm_until = now + seconds
                else:
                    self._storm_armed = (left - 1, seconds)
            if now < self._storm_until:
                return False
            if not self.enabled:
                return True
            if self.fixed_window:
                return self._admit_fixed(now)
            while self._hits and now - self._hits[0] >= self.window_seconds:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                return False
            self._hits.append(now)
            return True

    def _admit_fixed(self, now: float) -> bool:
        if self._window_start is None or now - self._window_start >= self.window_seconds:
            self._window_start, self._window_count = now, 0
        if self._window_count >= self.limit:
            return False
        self._window_count += 1
        return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._window_start, self._window_count = None, 0
            self._storm_until, self._storm_armed = 0.0, None
