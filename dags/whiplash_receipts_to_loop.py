"""
### Whiplash receipts -> Loop Process / Flag

When Whiplash has received a return package (consumer return status `Completed`/300 by default,
configurable in the criteria file), compare what arrived with what the Loop return expected and
tell Loop to **Process** it, or **Flag** it with a Return Note that says why.

* **Schedule**: every 15 minutes (`RETURNS_SYNC_RECEIPTS_SCHEDULE_MINUTES`) and whenever the RMA
  DAG's asset is updated; consumer returns whose `updated_at` moved since the durable watermark
  (minus an overlap). Trigger with `consumer_return_ids` to handle given returns now.
* **Webhooks**: Whiplash `consumer_return.completed` / `status_changed` webhooks land in the
  state store's inbox; the asset `returns_sync://webhooks/whiplash` is updated by its watcher
  within seconds and starts a run that reconciles those returns (no poll window). Every run
  claims the waiting webhook events and marks them done after it succeeded (docs/WEBHOOKS.md).
  Loop `return.closed` / `return.processing.failed` webhooks (asset
  `returns_sync://webhooks/loop_return`) settle queued Processes the same way.
* **Process is asynchronous**: Loop's `true` means queued. A queued Process is done only once
  Loop shows the return `closed`; one Loop says failed is reported as `PROCESS_FAILED` and the
  run fails (alert) after writing its report. An unconfirmed Process is re-sent only after
  `RETURNS_SYNC_PROCESS_SETTLE_MINUTES` (default 30).
* **Reconciliation**: one vectorised pandas pass over the batch, one row per (return, SKU) with
  expected, good, damaged, missing and extra units; merchant criteria from
  `include/criteria.yaml` (`RETURNS_SYNC_CRITERIA` overrides the path; see docs/CRITERIA.md).
* **Never twice**: one decision per consumer return, recorded before acting; every Loop action
  has a durable intent/result record; an unconfirmed action is resolved from Loop's state and
  notes before anything is sent again. A Loop return that is not `open` is never acted on.
* **`dry_run`** (the form field, or `RETURNS_SYNC_DRY_RUN=true` for the whole deployment):
  decide and report; send nothing to Loop, record no decision, leave the webhook events waiting
  and the watermark where it was, so the first live run takes every action it skipped.
* **Report**: `$AIRFLOW_HOME/returns_sync/reports/whiplash_receipts_to_loop/<run_id>/`
  (`summary.json`, `lines.csv` per return and SKU, `verdicts.csv`, `actions.csv`).
* **Merchants**: with a merchants file (`RETURNS_SYNC_MERCHANTS`), one such DAG per merchant,
  `whiplash_receipts_to_loop__<id>` (the merchant `default` keeps this id), tagged
  `merchant:<id>`, with its own criteria file (`criteria`), Whiplash customer, records, cadence
  (`receipts_every_minutes`) and staggered minute (docs/OPERATIONS.md#merchants).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, dag, task

from include.returns_sync.dag_defaults import (
    START_DATE,
    dag_merchants,
    default_args,
    form_field,
    receipts_every,
    tags,
)
from include.returns_sync.merchants import Merchant
from include.returns_sync.webhooks.assets import receipt_webhooks, rma_asset

BASE_DAG_ID = "whiplash_receipts_to_loop"
DECISIONS_URI = "returns_sync://loop/decisions"


def decisions_asset(merchant: Merchant) -> Asset:
    """The Loop decisions of one merchant (the default merchant keeps today's URI)."""
    uri = DECISIONS_URI if merchant.is_default else f"{DECISIONS_URI}/{merchant.id}"
    return Asset(uri, group="returns_sync")


def build(merchant: Merchant) -> None:
    """The receipts DAG of one merchant (registered with the DAG bag when called)."""
    decisions = decisions_asset(merchant)

    @dag(
        dag_id=merchant.dag_id(BASE_DAG_ID),
        schedule=AssetOrTimeSchedule(
            timetable=receipts_every(merchant),
            assets=rma_asset(merchant.id) | receipt_webhooks(merchant.id),
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        tags=tags(merchant),
        default_args=default_args(),
        params={
            "consumer_return_ids": form_field(
                [],
                type="array",
                title="Whiplash consumer return ids",
                description="Reconcile only these consumer returns now (leave empty to poll).",
            ),
            "dry_run": form_field(
                False,
                type="boolean",
                title="Dry run",
                description="Decide and report; send nothing.",
            ),
        },
    )
    def whiplash_receipts_to_loop() -> None:
        @task(pool="whiplash_api")
        def plan(params: dict, data_interval_end: datetime | None = None, **context) -> dict:
            from include.returns_sync.tasks import receipts
            from include.returns_sync.webhooks.assets import webhook_only_run

            return receipts.plan(params, data_interval_end, webhook_only=webhook_only_run(context))

        @task(pool="loop_api", outlets=[decisions])
        def reconcile_and_act(options: dict, **context) -> dict:
            from include.returns_sync.tasks import receipts

            summary = receipts.run_with_inbox(
                dag_id=context["dag"].dag_id, run_id=context["run_id"], options=options
            )
            context["outlet_events"][decisions].extra = {
                "verdicts": summary["verdicts"],
                "actions": summary["actions"],
            }
            return {"verdicts": summary["verdicts"], "actions": summary["actions"]}

        reconcile_and_act(plan())

    whiplash_receipts_to_loop()


for _merchant in dag_merchants(BASE_DAG_ID):
    build(_merchant)
