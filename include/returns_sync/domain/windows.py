"""Time windows for polling and backfills (pure functions, easy to test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

#: Loop rejects a `from`/`to` range longer than this on the detailed returns list.
LOOP_MAX_WINDOW = timedelta(days=120)


def poll_window(
    *,
    watermark: datetime | None,
    end: datetime,
    overlap: timedelta,
    initial_lookback: timedelta,
) -> tuple[datetime, datetime]:
    """`[watermark - overlap, end)`; without a watermark, `[end - initial_lookback, end)`.

    Overlapping windows cost a few repeated reads but never miss a return whose `updated_at`
    was written slightly late; the state store makes the repeats harmless.
    """
    start = end - initial_lookback if watermark is None else watermark - overlap
    return min(start, end), end


def chunk_window(
    start: datetime, end: datetime, size: timedelta = LOOP_MAX_WINDOW
) -> Iterator[tuple[datetime, datetime]]:
    """Split `[start, end)` into consecutive chunks no longer than `size`."""
    if end <= start:
        return
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        yield cursor, upper
        cursor = upper
