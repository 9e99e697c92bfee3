"""What a backfill run covers: its data interval, an operator's date range, or explicit ids.

Pure validation, so a bad manual trigger fails at once with a message that says what to fix
(the task turns `BackfillRequestError` into a failure without retries).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_RETURN_ID = re.compile(r"^\d{1,20}$")


class BackfillRequestError(ValueError):
    """The manual trigger's form was filled in wrongly; the message names the field."""


@dataclass(frozen=True)
class BackfillPlan:
    """Either a window `[start, end)` on Loop's `updated_at`, or explicit Loop return ids."""

    start: datetime | None
    end: datetime | None
    return_ids: tuple[str, ...] = ()

    def window(self) -> dict[str, str] | None:
        if self.start is None or self.end is None:
            return None
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_moment(field: str, value: object, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time, in UTC when no offset is given. A plain date used as `end`
    means the end of that day (the whole day is included)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                day = date.fromisoformat(text)
                parsed = datetime.combine(day + timedelta(days=1 if end_of_day else 0), time())
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BackfillRequestError(
                f"{field}: {text!r} is not a date (YYYY-MM-DD) or an ISO date-time "
                "(YYYY-MM-DDTHH:MM:SSZ)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def plan_backfill(
    *,
    start: object = None,
    end: object = None,
    return_ids: Sequence[object] | None = None,
    interval_start: datetime | None,
    interval_end: datetime | None,
    overlap: timedelta,
    now: datetime,
) -> BackfillPlan:
    """Decide the run's scope from the form (if filled in) or the data interval (plus overlap)."""
    ids = [str(i).strip() for i in (return_ids or []) if str(i).strip()]
    bad = [i for i in ids if not _RETURN_ID.match(i)]
    if bad:
        raise BackfillRequestError(
            f"return_ids: {', '.join(repr(b) for b in bad[:5])} "
            "is not a Loop return id (digits only, e.g. 48000017)"
        )
    first = parse_moment("start", start)
    last = parse_moment("end", end, end_of_day=True)
    if ids:
        if first or last:
            raise BackfillRequestError("give either return_ids or start/end, not both")
        return BackfillPlan(None, None, tuple(dict.fromkeys(ids)))
    if first or last:
        if first is None or last is None:
            raise BackfillRequestError("start and end must be given together")
        if last <= first:
            raise BackfillRequestError(
                f"end ({last.isoformat()}) must be after start ({first.isoformat()})"
            )
        if first >= now:
            raise BackfillRequestError(
                f"start ({first.isoformat()}) is in the future: nothing to do"
            )
        return BackfillPlan(first, min(last, now))
    if interval_start is None or interval_end is None:
        raise BackfillRequestError("no data interval: give start and end, or return_ids")
    if interval_end <= interval_start:
        raise BackfillRequestError("the run's data interval is empty: give start and end")
    return BackfillPlan(interval_start - overlap, interval_end + overlap)
