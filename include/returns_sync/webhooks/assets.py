"""The assets that carry webhook arrivals into Airflow's scheduler.

Each vendor's inbox is an asset watched by a `WebhookInboxTrigger`; a DAG scheduled on it (with
`AssetOrTimeSchedule`, next to its polling timetable) gets a run within seconds of a webhook.
DAG files import this module at parse time, so it imports only the Airflow SDK and the trigger.

`RMA_ASSET` is not a webhook asset: the RMA DAG updates it and the receipts DAG is scheduled on
it. It is defined here, once, because both DAG files need it and this module is cheap to import.

`RETURNS_SYNC_WEBHOOK_POLL_SECONDS` sets how often the triggerer reads the inbox
(docs/OPERATIONS.md#settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset, AssetAny, AssetWatcher

from include.returns_sync.settings import settings
from include.returns_sync.webhooks.triggers import WebhookInboxTrigger

WEBHOOK_URI_PREFIX = "returns_sync://webhooks/"
POLL_SECONDS = settings().webhook_poll_seconds


def webhook_asset(source: str) -> Asset:
    """The asset of one vendor's inbox, with the watcher that turns arrivals into events."""
    trigger = WebhookInboxTrigger(source=source, poll_interval=POLL_SECONDS)
    return Asset(
        f"{WEBHOOK_URI_PREFIX}{source}",
        group="returns_sync",
        watchers=[AssetWatcher(name=f"returns_sync_{source}_webhook_inbox", trigger=trigger)],
    )


#: Whiplash consumer returns created by `loop_returns_to_whiplash` (it schedules the receipts DAG).
RMA_ASSET = Asset("returns_sync://whiplash/consumer_returns", group="returns_sync")

LOOP_WEBHOOKS = webhook_asset("loop")
#: Loop `return.closed` / `return.processing.failed`: how a queued Process ended (receipts DAG).
LOOP_RETURN_WEBHOOKS = webhook_asset("loop_return")
WHIPLASH_WEBHOOKS = webhook_asset("whiplash")


def webhook_only_run(context: Mapping[str, Any]) -> bool:
    """True for a run that only webhook assets triggered: it drains the inbox and skips the
    poll window (a scheduled, manual or otherwise asset-triggered run polls as before)."""
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) != "asset_triggered":
        return False
    events = context.get("triggering_asset_events") or {}
    uris = [str(getattr(asset, "uri", "")) for asset in events]
    return bool(uris) and all(uri.startswith(WEBHOOK_URI_PREFIX) for uri in uris)


# ---- Per merchant (issue 13). MINIMAL VERSION by H4 so the per-merchant DAGs parse; H5 owns
# this module and its version (one shared watcher per vendor) replaces this block at merge. ----


def loop_webhooks(merchant_id: str) -> Asset:
    """The asset of one merchant's Loop `label` webhooks (default: `LOOP_WEBHOOKS`)."""
    if merchant_id == "default":
        return LOOP_WEBHOOKS
    return Asset(f"{WEBHOOK_URI_PREFIX}loop/{merchant_id}", group="returns_sync")


def receipt_webhooks(merchant_id: str) -> AssetAny:
    """The assets that wake one merchant's receipts DAG: its Whiplash events and its Loop
    `return.*` events."""
    if merchant_id == "default":
        return AssetAny(WHIPLASH_WEBHOOKS, LOOP_RETURN_WEBHOOKS)
    return AssetAny(
        Asset(f"{WEBHOOK_URI_PREFIX}whiplash/{merchant_id}", group="returns_sync"),
        Asset(f"{WEBHOOK_URI_PREFIX}loop_return/{merchant_id}", group="returns_sync"),
    )


def rma_asset(merchant_id: str) -> Asset:
    """The RMAs one merchant's RMA DAG created (it schedules that merchant's receipts DAG)."""
    if merchant_id == "default":
        return RMA_ASSET
    return Asset(f"returns_sync://whiplash/consumer_returns/{merchant_id}", group="returns_sync")
