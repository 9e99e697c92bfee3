"""What every returns-sync DAG shares: owner, retries with backoff, failure alerting, and the
merchants the DAG files build DAGs for, with each merchant's staggered schedule.

Imported by the DAG files at parse time, so it stays tiny: no heavy imports here.

Why staggered schedules: 200 merchants on the same "every 5 minutes" would start 400 runs in
the same second, every 5 minutes. With a merchants file, each merchant's polls sit on their own
minute within the cadence (`stagger_minutes`: a stable hash of the merchant id, so the minute
never moves between parses or machines), on a cron trigger; its daily backfill on its own minute
of the hour. Without a merchants file nothing changes: the default merchant keeps today's
`DeltaTriggerTimetable` cadences and backfill cron. docs/OPERATIONS.md#merchants lists the
task starts per hour this gives at N merchants.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from include.returns_sync.merchants import (
    CLOCK_MINUTES,
    Merchant,
    MerchantsFileError,
    configured_merchants,
)
from include.returns_sync.settings import settings

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["returns-sync", "loop", "whiplash"]

#: The JSON Schema dialect of every trigger-form field (`form_field`).
FORM_DIALECT = "http://json-schema.org/draft-07/schema#"


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


def form_field(default: Any, *, type: str | list[str], title: str, description: str) -> Any:
    """One field of a DAG's trigger form: an Airflow `Param` whose schema names its dialect.

    Why the dialect: Airflow validates every Param with `jsonschema.validate` each time a DAG
    is built, compared or serialized (about 16 times per DAG and parse), and that call first
    checks the schema itself against its dialect's meta-schema. Unnamed, the dialect is
    2020-12, whose meta-schema check costs about 4x draft-07's (0.34-0.46 vs 0.09 ms); with 600
    DAGs that was a third of the dag-processor's time (docs/BENCHMARKS.md "Parse time"). The
    fields use only keywords both dialects read alike (type, title, description), so naming
    draft-07 changes nothing else: the form, the validation of a trigger's conf.
    """
    from airflow.sdk import Param

    return Param(
        default,
        description=description,
        schema={"$schema": FORM_DIALECT, "type": type, "title": title},
    )


def dag_merchants(base_dag_id: str) -> list[Merchant]:
    """The merchants to build `base_dag_id`'s DAGs for: the good entries of the merchants file
    (no file: the default merchant). A file that cannot be used builds none here:
    `dags/returns_sync_merchants.py` shows it as the one import error.

    A worker that parses the file to run one task builds only that task's DAG (Airflow's
    parsing context names it): with 200 merchants, building all 200 on every task start would
    cost about a second of CPU each time.
    """
    from airflow.sdk import get_parsing_context

    try:
        merchants = configured_merchants()
    except MerchantsFileError:
        return []
    wanted = get_parsing_context().dag_id
    if not wanted:  # the dag-processor (or an empty variable): every merchant
        return merchants
    return [merchant for merchant in merchants if merchant.dag_id(base_dag_id) == wanted]


def tags(merchant: Merchant, *extra: str) -> list[str]:
    """Our tags plus `merchant:<id>` (filter the DAG list by merchant)."""
    return [*TAGS, *extra, merchant.tag]


def staggered() -> bool:
    """Schedules are staggered when a merchants file is configured."""
    return settings().merchants is not None


def stagger_minutes(merchant_id: str, period_minutes: int) -> int:
    """A stable offset in `[0, period_minutes)` for one merchant (CRC-32 of its id)."""
    return zlib.crc32(merchant_id.encode("utf-8")) % period_minutes


def every(minutes: int, merchant: Merchant) -> Any:
    """The timetable of a poll every `minutes`: today's `DeltaTriggerTimetable` without a
    merchants file (or for a global cadence that does not fit a clock), else a cron trigger
    on the merchant's staggered minute."""
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable

    if not staggered() or minutes not in CLOCK_MINUTES:
        return DeltaTriggerTimetable(timedelta(minutes=minutes))
    return CronTriggerTimetable(staggered_cron(minutes, merchant.id), timezone="UTC")


def staggered_cron(minutes: int, merchant_id: str) -> str:
    """A cron expression firing every `minutes` (a divisor of 60, or whole hours dividing 24)
    on the merchant's offset: every 5 minutes for offset 3 is `3-59/5 * * * *`."""
    offset = stagger_minutes(merchant_id, minutes)
    if minutes <= 60:
        if minutes == 1:
            return "* * * * *"
        return f"{offset} * * * *" if minutes == 60 else f"{offset}-59/{minutes} * * * *"
    hours = minutes // 60
    minute, hour = offset % 60, offset // 60
    return f"{minute} {hour} * * *" if hours == 24 else f"{minute} {hour}-23/{hours} * * *"


def rma_every(merchant: Merchant) -> Any:
    """The RMA DAG's poll: the merchant's `rma_every_minutes`, else the deployment's."""
    return every(merchant.rma_every_minutes or settings().rma_schedule_minutes, merchant)


def receipts_every(merchant: Merchant) -> Any:
    """The receipts DAG's poll: `receipts_every_minutes`, else the deployment's."""
    minutes = merchant.receipts_every_minutes or settings().receipts_schedule_minutes
    return every(minutes, merchant)


def backfill_cron(merchant: Merchant) -> str:
    """The backfill's daily cron: the merchant's `backfill_at` ("HH:MM" UTC) as given, else
    `RETURNS_SYNC_BACKFILL_CRON`, moved by the merchant's offset within the hour when it is a
    plain "M H * * *" and a merchants file is configured (other expressions run as written)."""
    if merchant.backfill_at is not None:
        hour, minute = merchant.backfill_at.split(":")
        return f"{int(minute)} {int(hour)} * * *"
    cron = settings().backfill_cron
    fields = cron.split()
    if not staggered() or len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        return cron
    if not (fields[0].isdigit() and fields[1].isdigit()):
        return cron
    total = int(fields[1]) * 60 + int(fields[0]) + stagger_minutes(merchant.id, 60)
    return f"{total % 60} {(total // 60) % 24} * * *"
