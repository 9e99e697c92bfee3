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
* **Exactly once**: claim in the state store -> look up Whiplash by originator/reference ->
  adopt or create -> record. A 409 means "exists" and is adopted.
* **Unmappable** returns (unknown SKU/order, no items, Loop 404) are recorded with a reason, shown
  in the report and retried on later runs; the run fails only when more than
  `RETURNS_SYNC_MAX_UNMAPPABLE` pile up.
* **Report**: `$AIRFLOW_HOME/returns_sync/reports/loop_returns_to_whiplash/<run_id>/`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, DeltaTriggerTimetable, Param, dag, task

from include.returns_sync.dag_defaults import START_DATE, TAGS, default_args
from include.returns_sync.webhooks.assets import LOOP_WEBHOOKS

RMA_ASSET = Asset("returns_sync://whiplash/consumer_returns", group="returns_sync")
SCHEDULE = timedelta(minutes=int(os.environ.get("RETURNS_SYNC_RMA_SCHEDULE_MINUTES", "5")))


@dag(
    dag_id="loop_returns_to_whiplash",
    schedule=AssetOrTimeSchedule(timetable=DeltaTriggerTimetable(SCHEDULE), assets=LOOP_WEBHOOKS),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=TAGS,
    default_args=default_args(),
    params={
        "return_ids": Param(
            [],
            type="array",
            title="Loop return ids",
            description="Sync only these Loop returns now (leave empty to poll the window).",
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Decide and report, create nothing."
        ),
    },
)
def loop_returns_to_whiplash() -> None:
    @task(pool="loop_api")
    def plan_window(
        params: dict, data_interval_end: datetime | None = None, **context
    ) -> dict | None:
        from include.returns_sync.tasks import rma
        from include.returns_sync.webhooks.assets import webhook_only_run

        if params.get("return_ids") or webhook_only_run(context):
            return None  # an explicit or webhook run reads only the returns it was given
        return rma.plan_window(data_interval_end or datetime.now(UTC))

    @task(pool="loop_api")
    def collect(window: dict | None, params: dict, **context) -> list[dict]:
        from include.returns_sync.tasks import rma

        return rma.collect_with_inbox(
            window,
            [str(i) for i in params.get("return_ids") or []],
            dry_run=bool(params.get("dry_run")),
            claimer=f"{context['run_id']}/collect",
        )

    @task(pool="whiplash_api")
    def create_rmas(batch: dict, params: dict) -> list[dict]:
        from include.returns_sync.tasks import rma

        source = "manual" if params.get("return_ids") else "poll"
        return rma.create_batch(batch, source=source, dry_run=bool(params.get("dry_run")))

    @task(outlets=[RMA_ASSET])
    def report(window: dict | None, results: list, params: dict, **context) -> dict:
        from include.returns_sync.tasks import rma

        summary = rma.finalize(
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            window=window,
            results=results,
            advance_watermark=not params.get("dry_run"),
        )
        context["outlet_events"][RMA_ASSET].extra = {
            "created": summary["loop_return_ids"].get("created", [])[:500],
            "counts": summary["counts"],
        }
        return summary["counts"]

    window = plan_window()
    batches = collect(window)
    results = create_rmas.partial().expand(batch=batches)
    report(window, results)


loop_returns_to_whiplash()
