"""The vendor rate limiter: one send schedule per vendor account, shared by every process.

Loop allows 300 requests per minute per API key, Whiplash 10 per second per account
(docs/loop-api.md 1.3, docs/whiplash-api.md 3.5). Both count requests in a window, so "over the
limit" means: more than `requests` requests arrive within any `per_seconds` (the sandbox checks
a sliding window, and a fixed one for strict Loop; a sliding window holding at most `requests`
implies every fixed one does too).

How (GCRA without burst): every request reserves its send time on the account's one row
(`state/rate_limits.py`: one short transaction; the caller then sleeps outside it), one request
per `interval` = 1 / rate, so any `requests + 1` consecutive sends span `requests * interval`.
The default rate is `HEADROOM` (92 %) of the vendor's: one task alone gets 92 % of the nominal
rate, and the span of `requests + 1` sends exceeds the window by a margin (Whiplash: 87 ms;
Loop: 5.2 s) that absorbs how late a send reaches the vendor after its reserved time. A sender
that wakes later than half that margin (an overloaded host, a stalled process) gives its slot
up and reserves again rather than crowding the sends reserved after it, so even then no window
holds more than the vendor's limit. No burst is allowed: a burst is exactly what a window
counter punishes.

Which limiter:
- `SharedLimiter(store)`: the deployment-wide one, over the state store (SQLite on one host;
  PostgreSQL across hosts, on the database's clock). Runtime hands it to the hooks
  (`limiter=`); clients/ never builds one from Airflow itself.
- `process_limiter()`: the same arithmetic in this process only, for when no store is given
  (unit tests, the doctor, a hook built by hand). It knows nothing of other processes.

Keys name a vendor account, never its secret: `loop:<sha256 of the API key, 16 hex>`,
`whiplash:<sha256 of base URL + client id, 16 hex>` (`account_key`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from include.returns_sync.clients import policy
from include.returns_sync.state.rate_limits import SlotReservation, next_send, reserve_send_slot

if TYPE_CHECKING:
    from include.returns_sync.state._base import StoreBase

log = logging.getLogger(__name__)

#: The share of the vendor's nominal rate the hooks use by default.
HEADROOM = 0.92
#: Reservations a late sender may make before it sends anyway (and says so).
MAX_RESERVATIONS = 8


@dataclass(frozen=True)
class VendorLimit:
    """A vendor's published limit: at most `requests` per `per_seconds`, per account."""

    requests: int
    per_seconds: float

    @property
    def rate_per_second(self) -> float:
        return self.requests / self.per_seconds

    @property
    def default_rate_per_second(self) -> float:
        """What the hooks use unless told otherwise: `HEADROOM` of the nominal rate."""
        return self.rate_per_second * HEADROOM


LOOP_LIMIT = VendorLimit(300, 60.0)
WHIPLASH_LIMIT = VendorLimit(10, 1.0)


@dataclass(frozen=True)
class Pace:
    """What one account's sends must keep to: one per `interval`, at most `late_tolerance` late.

    `late_tolerance` is half the margin by which `requests + 1` sends at this pace overrun the
    vendor's window; past it a send could crowd the next window, so it is re-reserved.
    """

    key: str
    interval: float
    late_tolerance: float

    @classmethod
    def for_rate(cls, key: str, rate_per_second: float, limit: VendorLimit) -> Pace:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be > 0, got {rate_per_second}")
        interval = 1.0 / rate_per_second
        margin = limit.requests * interval - limit.per_seconds
        # At or above the vendor's own rate there is no margin; keep a sane tolerance anyway.
        tolerance = margin / 2 if margin > 0 else interval / 4
        return cls(key=key, interval=interval, late_tolerance=tolerance)


def account_key(vendor: str, *identity: str) -> str:
    """`<vendor>:<first 16 hex of SHA-256 over identity>`: names an account, hides its secret."""
    digest = hashlib.sha256("\x00".join(identity).encode()).hexdigest()[:16]
    return f"{vendor}:{digest}"


class RateLimiter(Protocol):
    """What the hooks call before every HTTP request (`acquire` sleeps until it may be sent)."""

    def acquire(self, pace: Pace) -> float:
        """Wait for this request's turn; returns the seconds slept."""
        ...


class _ReservingLimiter:
    """Reserve a send time, sleep until it, re-reserve when woken too late (shared logic)."""

    def _reserve(self, pace: Pace) -> SlotReservation:
        raise NotImplementedError

    def _time(self) -> tuple[Callable[[], float], Callable[[float], None]]:
        raise NotImplementedError

    def acquire(self, pace: Pace) -> float:
        clock, sleep = self._time()
        slept = 0.0
        for attempt in range(1, MAX_RESERVATIONS + 1):
            reservation = self._reserve(pace)
            wait = reservation.wait_seconds
            remaining = reservation.local_after + wait - clock()
            if remaining > 0:
                sleep(remaining)
                slept += remaining
            late = clock() - (reservation.local_before + wait)
            if late <= pace.late_tolerance:
                return slept
            log.info(
                "%s: woke %.3fs after the reserved send time (tolerance %.3fs); reserving "
                "again (attempt %d)",
                pace.key,
                late,
                pace.late_tolerance,
                attempt,
            )
        log.warning(
            "%s: late for %d reserved send times in a row (overloaded host?); sending now",
            pace.key,
            MAX_RESERVATIONS,
        )
        return slept


class SharedLimiter(_ReservingLimiter):
    """The deployment-wide limiter: send times reserved on the state store's `rate_limits` row.

    `store` is a `StateStore` (any store part with its transactions). `clock`/`sleep` are this
    process's monotonic clock and sleep (tests may record the sleeps).
    """

    def __init__(
        self,
        store: StoreBase,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self._clock = clock
        self._sleep = sleep

    def _reserve(self, pace: Pace) -> SlotReservation:
        return reserve_send_slot(self.store, pace.key, pace.interval)

    def _time(self) -> tuple[Callable[[], float], Callable[[float], None]]:
        return self._clock, self._sleep

    def __repr__(self) -> str:
        return f"SharedLimiter({self.store!r})"


class ProcessLimiter(_ReservingLimiter):
    """The same schedule kept in this process only (threads share it; other processes do not).

    Time comes from `policy.BUCKET_TIME` at each call unless `clock`/`sleep` are given, so tests
    can swap in a fake clock.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def _time(self) -> tuple[Callable[[], float], Callable[[float], None]]:
        source = policy.BUCKET_TIME
        return self._clock or source.clock, self._sleep or source.sleep

    def _reserve(self, pace: Pace) -> SlotReservation:
        clock, _sleep = self._time()
        with self._lock:
            now = clock()
            send_at, self._tats[pace.key] = next_send(self._tats.get(pace.key), now, pace.interval)
        return SlotReservation(send_at=send_at, now=now, local_before=now, local_after=now)

    def reset(self) -> None:
        """Forget every schedule (tests)."""
        with self._lock:
            self._tats.clear()


_PROCESS_LIMITER = ProcessLimiter()


def process_limiter() -> ProcessLimiter:
    """The fallback shared by every hook of this process that was given no limiter."""
    return _PROCESS_LIMITER
