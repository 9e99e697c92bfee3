"""
### Loop returns -> Whiplash RMAs

Creates exactly one Whiplash *consumer return* (RMA) for every Loop return that is `open` and
whose label reached `pre_transit` (or a later status, if `pre_transit` was skipped).

* **Schedule**: every 5 minutes (`RETURNS_SYNC_RMA_SCHEDULE_MINUTES`), overlapping windows
  `[watermark - overlap, data_interval_end)` on the Loop return's `updated_at`; the watermark is
  kept in the state store (`returns_sync_db`) and advances only after a fully successful run.
* **Webhooks**: Loop `label` webhooks land in the state store's inbox (plugin
  `returns_sync_webhooks`); the asset `returns_sync://webhooks/loop` is updated by its watcher
  within seconds and starts a run that drains the inbox (no poll window). Every run claims the
  waiting webhook events; each is marked done once its batch was handled (docs/WEBHOOKS.md).
* **Explicit ids**: trigger with `return_ids` to sync those returns now, through the same code.
* **Dry run** (the `dry_run` field, or `RETURNS_SYNC_DRY_RUN=true` for the whole deployment):
  the first task, `plan`, settles the run's options once; the run then reads and reports what
  it would create, creates nothing, leaves the webhook events waiting and the watermark where
  it was, so the first live run creates every RMA it skipped.
* **Exactly once**: claim in the state store -> look up Whiplash by originator/reference ->
  adopt or create -> record. A 409 means "exists" and is adopted.
* **Unmappable** returns (unknown SKU/order, no items, Loop 404) are recorded with a reason, shown
  in the report and retried on later runs; the run fails only when more than
  `RETURNS_SYNC_MAX_UNMAPPABLE` pile up.
* **Report**: `$AIRFLOW_HOME/returns_sync/reports/loop_returns_to_whiplash/<run_id>/`.
* **Merchants**: with a merchants file (`RETURNS_SYNC_MERCHANTS`), one such DAG per merchant,
  `loop_returns_to_whiplash__<id>` (the merchant `default` keeps this id), tagged
  `merchant:<id>`, on its own connections, records, cadence (`rma_every_minutes`) and staggered
  minute (docs/OPERATIONS.md#merchants).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import AssetOrTimeSchedule, dag, task

from include.returns_sync.dag_defaults import (
    START_DATE,
    dag_merchants,
    default_args,
    form_field,
    rma_every,
    tags,
)
from include.returns_sync.merchants import Merchant
from include.returns_sync.webhooks.assets import loop_webhooks, rma_asset

BASE_DAG_ID = "loop_returns_to_whiplash"


def build(merchant: Merchant) -> None:
    """The RMA DAG of one merchant (registered with the DAG bag when called)."""
    rma_created = rma_asset(merchant.id)

    @dag(
        dag_id=merchant.dag_id(BASE_DAG_ID),
        schedule=AssetOrTimeSchedule(
            timetable=rma_every(merchant), assets=loop_webhooks(merchant.id)
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        tags=tags(merchant),
        default_args=default_args(),
        params={
            "return_ids": form_field(
                [],
                type="array",
                title="Loop return ids",
                description="Sync only these Loop returns now (leave empty to poll the window).",
            ),
            "dry_run": form_field(
                False,
                type="boolean",
                title="Dry run",
                description="Decide and report, create nothing.",
            ),
        },
    )
    def loop_returns_to_whiplash() -> None:
        @task(pool="loop_api")
        def plan(params: dict, data_interval_end: datetime | None = None, **context) -> dict:
            from include.returns_sync.tasks import rma
            from include.returns_sync.webhooks.assets import webhook_only_run

            return rma.plan(params, data_interval_end, webhook_only=webhook_only_run(context))

        @task(pool="loop_api")
        def collect(options: dict, **context) -> list[dict]:
            from include.returns_sync.tasks import rma

            return rma.collect_with_inbox(options, claimer=f"{context['run_id']}/collect")

        @task(pool="whiplash_api")
        def create_rmas(batch: dict, options: dict) -> list[dict]:
            from include.returns_sync.tasks import rma

            return rma.create_batch(batch, options)

        @task(outlets=[rma_created])
        def report(options: dict, results: list, **context) -> dict:
            from include.returns_sync.tasks import rma

            summary = rma.report(
                options, results, dag_id=context["dag"].dag_id, run_id=context["run_id"]
            )
            context["outlet_events"][rma_created].extra = {
                "created": summary["loop_return_ids"].get("created", [])[:500],
                "counts": summary["counts"],
            }
            return summary["counts"]

        options = plan()
        results = create_rmas.partial(options=options).expand(batch=collect(options))
        report(options, results)

    loop_returns_to_whiplash()


for _merchant in dag_merchants(BASE_DAG_ID):
    build(_merchant)
