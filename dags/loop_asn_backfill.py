"""
### Daily backfill: every RMA the primary flow missed

Once a day (02:00 UTC, `RETURNS_SYNC_BACKFILL_CRON`) this DAG reads Loop's returns for the run's
data interval `[data_interval_start, data_interval_end)` plus an overlap
(`RETURNS_SYNC_BACKFILL_OVERLAP_HOURS`, default 6) on the return's `updated_at` — never "now",
so re-running a past day gives the same result — and creates every missing RMA through **the
same code path** as `loop_returns_to_whiplash` (claim -> look up -> adopt or create -> record),
so both DAGs can run at once without a duplicate.

**Source**: Loop's *detailed returns list* (`state=open`), not the ASN report: the ASN report
has one row per line item and, as documented, no return id, while the detailed list carries the
return id, label status and line items together — everything RMA creation needs, with no extra
call per return. Only `open` returns can be eligible, so one state is enough.

**Manual trigger** (Trigger DAG w/ config): `start` and `end` (ISO dates or date-times, UTC; any
window — Loop's 120-day limit is handled by splitting it), or `return_ids`, and `dry_run`
(also on for every run while `RETURNS_SYNC_DRY_RUN=true`: report what would be created).
From the CLI: `airflow dags trigger loop_asn_backfill -c '{"start": "2026-10-01", "end": "2026-10-31"}'`
or, over past intervals, `airflow backfill create --dag-id loop_asn_backfill --from-date 2026-10-01 --to-date 2026-10-31`.

**Coverage report**: returns seen, already synced, created now (each one a miss of the primary
flow, logged as a warning with how long after its label it was caught), ineligible, unmappable
by reason: `$AIRFLOW_HOME/returns_sync/reports/loop_asn_backfill/<run_id>/`.

**Merchants**: with a merchants file (`RETURNS_SYNC_MERCHANTS`), one such DAG per merchant,
`loop_asn_backfill__<id>` (the merchant `default` keeps this id), tagged `merchant:<id>`, at its
`backfill_at` time or on its own minute of the configured hour (docs/OPERATIONS.md#merchants).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.returns_sync.dag_defaults import (
    START_DATE,
    backfill_cron,
    dag_merchants,
    default_args,
    form_field,
    tags,
)
from include.returns_sync.merchants import Merchant

BASE_DAG_ID = "loop_asn_backfill"


def build(merchant: Merchant) -> None:
    """The backfill DAG of one merchant (registered with the DAG bag when called)."""

    @dag(
        dag_id=merchant.dag_id(BASE_DAG_ID),
        schedule=CronDataIntervalTimetable(backfill_cron(merchant), timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        tags=tags(merchant, "backfill"),
        default_args=default_args(),
        params={
            "start": form_field(
                None,
                type=["null", "string"],
                title="Start (UTC)",
                description="First day or moment to cover, e.g. 2026-10-01 or 2026-10-01T00:00:00Z. "
                "Leave empty to use the run's data interval.",
            ),
            "end": form_field(
                None,
                type=["null", "string"],
                title="End (UTC)",
                description="Last day (inclusive) or moment (exclusive) to cover, e.g. 2026-10-31.",
            ),
            "return_ids": form_field(
                [],
                type="array",
                title="Loop return ids",
                description="Instead of a window: sync exactly these Loop returns.",
            ),
            "dry_run": form_field(
                False, type="boolean", title="Dry run", description="Report what would be created."
            ),
        },
    )
    def loop_asn_backfill() -> None:
        @task(retries=0)
        def plan(params: dict, data_interval_start=None, data_interval_end=None) -> dict:
            from include.returns_sync.tasks import backfill

            return backfill.plan(params, data_interval_start, data_interval_end)

        @task(pool="loop_api")
        def collect(options: dict) -> list[dict]:
            from include.returns_sync.tasks import backfill

            return backfill.collect(options)

        @task(pool="whiplash_api")
        def create_rmas(batch: dict, options: dict) -> list[dict]:
            from include.returns_sync.tasks import rma

            return rma.create_batch(batch, options)

        @task
        def report(options: dict, results: list, **context) -> dict:
            from include.returns_sync.tasks import rma

            summary = rma.report(
                options, results, dag_id=context["dag"].dag_id, run_id=context["run_id"]
            )
            return summary["counts"]

        options = plan()
        results = create_rmas.partial(options=options).expand(batch=collect(options))
        report(options, results)

    loop_asn_backfill()


for _merchant in dag_merchants(BASE_DAG_ID):
    build(_merchant)
