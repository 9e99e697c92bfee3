"""The simulators' clock: real time by default, frozen and moved by tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """The simulators' notion of "now" (UTC, timezone-aware).

    Real time by default; tests freeze it with `set` and move it with `advance`, so that "the
    last 24 hours" or "process after N seconds" are deterministic.
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen_at = as_utc(frozen_at) if frozen_at else None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime) -> None:
        """Freeze the clock at `moment` (naive datetimes are taken as UTC)."""
        with self._lock:
            self._frozen_at = as_utc(moment)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (a frozen clock stays frozen, at the later time)."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta

    def unfreeze(self) -> None:
        """Go back to real time."""
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(0)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
