"""What every returns-sync DAG shares: owner, retries with backoff, failure alerting.

Imported by the DAG files at parse time, so it stays tiny: no heavy imports here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from include.returns_sync.settings import settings

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["returns-sync", "loop", "whiplash"]


def _alert(context: Any) -> None:
    from include.returns_sync.alerts import on_failure

    on_failure(context)


def default_args() -> dict[str, Any]:
    """Task defaults: 3 retries with exponential backoff (`RETURNS_SYNC_RETRY_DELAY_SECONDS`,
    default 30 s, capped at 10 min) and the failure alert of `alerts.on_failure`."""
    return {
        "owner": "returns-sync",
        "retries": 3,
        "retry_delay": timedelta(seconds=settings().retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": _alert,
    }
