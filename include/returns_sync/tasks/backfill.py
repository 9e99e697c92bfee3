"""Task bodies of `loop_asn_backfill` that are its own; RMA creation is `tasks.rma`'s."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from include.returns_sync import runtime

log = logging.getLogger(__name__)


def plan(
    params: dict[str, Any], interval_start: datetime | None, interval_end: datetime | None
) -> dict[str, Any]:
    """Validate the form (or take the data interval) and return the run's scope.

    A wrongly filled form fails the task at once, without retries, with the message of
    `BackfillRequestError` (which names the field and says what to fix).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.returns_sync.domain.backfill import BackfillRequestError, plan_backfill

    overlap = timedelta(hours=runtime.env_int("RETURNS_SYNC_BACKFILL_OVERLAP_HOURS", 6) or 0)
    try:
        scope = plan_backfill(
            start=params.get("start"),
            end=params.get("end"),
            return_ids=params.get("return_ids") or [],
            interval_start=interval_start,
            interval_end=interval_end,
            overlap=overlap,
            now=datetime.now(UTC),
        )
    except BackfillRequestError as exc:
        raise AirflowFailException(f"Invalid backfill request: {exc}") from exc
    window = scope.window()
    if window:
        log.info("Backfill window %s -> %s (updated_at)", window["start"], window["end"])
    else:
        log.info("Backfill of %d explicit Loop return ids", len(scope.return_ids))
    return {"window": window, "return_ids": list(scope.return_ids)}
