"""Task bodies of `loop_asn_backfill` that are its own; RMA creation is `tasks.rma`'s."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.returns_sync.settings import settings
from include.returns_sync.tasks.failures import fails_fast

if TYPE_CHECKING:
    from include.returns_sync.run_options import RunOptions

log = logging.getLogger(__name__)


@fails_fast
def plan(
    params: Mapping[str, Any], interval_start: datetime | None, interval_end: datetime | None
) -> dict[str, Any]:
    """Validate the form (or take the data interval) and return the run's `RunOptions` (XCom):
    its scope (a window or explicit ids) and whether it is a dry run.

    A wrongly filled form fails the task at once, without retries, with the message of
    `BackfillRequestError` (which names the field and says what to fix).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.returns_sync.domain.backfill import BackfillRequestError, plan_backfill
    from include.returns_sync.run_options import settle_or_fail

    overlap = timedelta(hours=settings().backfill_overlap_hours)
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
    return settle_or_fail(params, source="backfill", ids=scope.return_ids, window=window)


@fails_fast
def collect(options: RunOptions | Mapping[str, Any]) -> list[dict[str, Any]]:
    """`collect` of the backfill: its window's or given Loop returns, in batches (no inbox, no
    retries of earlier unmappable returns: those belong to the primary flow)."""
    from include.returns_sync.run_options import RunOptions
    from include.returns_sync.tasks import rma

    run = RunOptions.of(options)
    return rma.collect_batches(run.window, run.ids, include_retries=False)
