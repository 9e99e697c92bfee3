"""Send-time reservations on the `rate_limits` table: the shared half of the vendor limiter.

One row per vendor account holds GCRA's theoretical arrival time (`tat`, seconds since the
epoch). `reserve_send_slot` is one short write transaction: lock the row, read "now", reserve
`send_at = max(tat, now)`, store `tat = send_at + interval`, commit. The caller sleeps outside
the transaction (see `clients/limiter.py`), so no lock is ever held across a wait or an HTTP call.

Whose clock: PostgreSQL's (`clock_timestamp()`, read after the row lock is granted), so workers
on several hosts share one time line whatever their own clocks say; SQLite lives on one host,
so there it is the store's clock (injectable in tests), read while holding the write lock.
The lock: `SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the store's write transaction
(`BEGIN IMMEDIATE`) already serialises every writer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update

from include.returns_sync.state._base import StoreBase, require_text
from include.returns_sync.state.schema import rate_limits

log = logging.getLogger(__name__)

#: A reservation further ahead than this means a broken row (a clock that jumped back, or a
#: rate changed from very slow to fast): it is reset to "now" instead of making callers wait.
MAX_BACKLOG_SECONDS = 3600.0


@dataclass(frozen=True)
class SlotReservation:
    """A reserved send time, and when it was reserved, on the store's clock.

    `local_before` / `local_after` bracket (on this process's `time.monotonic()`) the moment
    the store's clock was read, so the caller can turn `wait_seconds` into its own time line:
    sleeping until `local_after + wait_seconds` is never early, and a wake later than
    `local_before + wait_seconds` by more than the caller tolerates means the slot was missed.
    """

    send_at: float
    now: float
    local_before: float
    local_after: float

    @property
    def wait_seconds(self) -> float:
        return max(0.0, self.send_at - self.now)


def next_send(tat: float | None, now: float, interval: float) -> tuple[float, float]:
    """GCRA without burst: (send_at, new tat) for one request at `now`.

    A missing or absurd `tat` (further ahead than `MAX_BACKLOG_SECONDS`) starts afresh at `now`.
    """
    if interval < 0:
        raise ValueError(f"interval must be >= 0, got {interval}")
    if tat is None or tat - now > MAX_BACKLOG_SECONDS:
        if tat is not None:
            log.warning(
                "rate limit row was %.0fs ahead of now (clock jump?); starting afresh", tat - now
            )
        tat = now
    send_at = max(tat, now)
    return send_at, send_at + interval


def reserve_send_slot(store: StoreBase, key: str, interval_seconds: float) -> SlotReservation:
    """Reserve the next send time of vendor account `key`, one request per `interval_seconds`."""
    account = require_text(key, "key")
    if interval_seconds < 0:
        raise ValueError(f"interval_seconds must be >= 0, got {interval_seconds}")
    with store._write() as conn:
        tat = _locked_tat(store, conn, account)
        before = time.monotonic()
        now = _store_now(store, conn)
        after = time.monotonic()
        send_at, new_tat = next_send(tat, now, interval_seconds)
        conn.execute(update(rate_limits).where(rate_limits.c.key == account).values(tat=new_tat))
    return SlotReservation(send_at=send_at, now=now, local_before=before, local_after=after)


def _locked_tat(store: StoreBase, conn: Connection, key: str) -> float:
    """The row's tat under the row lock; a missing row is created first (tat 0: "idle")."""
    query = select(rate_limits.c.tat).where(rate_limits.c.key == key)
    if store._is_postgres:
        query = query.with_for_update()
    tat = conn.execute(query).scalar_one_or_none()
    if tat is None:
        # Two first callers may race to create the row: both insert-or-nothing, then lock it.
        create = store._insert(rate_limits).values(key=key, tat=0.0)
        conn.execute(create.on_conflict_do_nothing(index_elements=[rate_limits.c.key]))
        tat = conn.execute(query).scalar_one()
    return float(tat)


def _store_now(store: StoreBase, conn: Connection) -> float:
    if store._is_postgres:
        return float(
            conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one()
        )
    return store._now().timestamp()


def read_tat(store: StoreBase, key: str) -> float | None:
    """The stored tat of `key` (tests, diagnostics)."""
    with store._read() as conn:
        value = conn.execute(
            select(rate_limits.c.tat).where(rate_limits.c.key == require_text(key, "key"))
        ).scalar_one_or_none()
    return None if value is None else float(value)
