"""The assets that carry webhook arrivals into Airflow's scheduler, per merchant.

Each merchant's webhook inbox is an asset watched by a `WebhookInboxTrigger`; a DAG scheduled on
it (with `AssetOrTimeSchedule`, next to its polling timetable) gets a run within seconds of a
webhook. DAG files import this module at parse time, so it imports only the Airflow SDK and the
trigger.

Per merchant (`<id>`):
| function | URI | watched sources | consumer |
| --- | --- | --- | --- |
| `loop_webhooks(id)` | `returns_sync://webhooks/loop/<id>` | `loop` (label events) | RMA DAG |
| `receipt_webhooks(id)` | `returns_sync://webhooks/receipts/<id>` | `loop_return` + `whiplash` | receipts DAG |
| `rma_asset(id)` | `returns_sync://whiplash/consumer_returns/<id>` | (updated by the RMA DAG) | receipts DAG |

One receipts asset per merchant (both vendors' events) means one watcher per receipts DAG, so N
merchants cost 2N triggers. The merchant `default` keeps today's URIs and objects
(`LOOP_WEBHOOKS`, `RMA_ASSET`, and for receipts `WHIPLASH_WEBHOOKS | LOOP_RETURN_WEBHOOKS`), so
an existing deployment's DAGs keep their asset history; that one merchant has three triggers.
However many triggers there are, they share one inbox query per source set and interval in a
triggerer process (`triggers.SharedInboxPoller`).

`RMA_ASSET` is not a webhook asset: the RMA DAG updates it and the receipts DAG is scheduled on
it. It is defined here, once, because both DAG files need it and this module is cheap to import.

`RETURNS_SYNC_WEBHOOK_POLL_SECONDS` sets how often the triggerer reads the inbox
(docs/OPERATIONS.md#settings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAny, AssetWatcher

from include.returns_sync.settings import settings
from include.returns_sync.webhooks.triggers import DEFAULT_MERCHANT_ID, WebhookInboxTrigger

WEBHOOK_URI_PREFIX = "returns_sync://webhooks/"
RMA_URI = "returns_sync://whiplash/consumer_returns"
POLL_SECONDS = settings().webhook_poll_seconds
GROUP = "returns_sync"


def _watched(uri: str, name: str, merchant: str, sources: Sequence[str]) -> Asset:
    trigger = WebhookInboxTrigger(sources=sources, merchant=merchant, poll_interval=POLL_SECONDS)
    return Asset(uri, group=GROUP, watchers=[AssetWatcher(name=name, trigger=trigger)])


def webhook_asset(source: str) -> Asset:
    """The default merchant's asset of one vendor inbox (today's URI and watcher name)."""
    return _watched(
        f"{WEBHOOK_URI_PREFIX}{source}",
        f"returns_sync_{source}_webhook_inbox",
        DEFAULT_MERCHANT_ID,
        [source],
    )


#: Whiplash consumer returns created by `loop_returns_to_whiplash` (it schedules the receipts DAG).
RMA_ASSET = Asset(RMA_URI, group=GROUP)

LOOP_WEBHOOKS = webhook_asset("loop")
#: Loop `return.closed` / `return.processing.failed`: how a queued Process ended (receipts DAG).
LOOP_RETURN_WEBHOOKS = webhook_asset("loop_return")
WHIPLASH_WEBHOOKS = webhook_asset("whiplash")


def loop_webhooks(merchant_id: str) -> Asset:
    """One merchant's Loop `label` webhooks (they schedule its RMA DAG)."""
    if merchant_id == DEFAULT_MERCHANT_ID:
        return LOOP_WEBHOOKS
    return _watched(
        f"{WEBHOOK_URI_PREFIX}loop/{merchant_id}",
        f"returns_sync_loop_webhook_inbox__{merchant_id}",
        merchant_id,
        ["loop"],
    )


def receipt_webhooks(merchant_id: str) -> Asset | AssetAny:
    """One merchant's Loop `return.*` and Whiplash webhooks (they schedule its receipts DAG):
    one asset and one watcher; `default` keeps today's two assets."""
    if merchant_id == DEFAULT_MERCHANT_ID:
        return AssetAny(WHIPLASH_WEBHOOKS, LOOP_RETURN_WEBHOOKS)
    return _watched(
        f"{WEBHOOK_URI_PREFIX}receipts/{merchant_id}",
        f"returns_sync_receipts_webhook_inbox__{merchant_id}",
        merchant_id,
        ["loop_return", "whiplash"],
    )


def rma_asset(merchant_id: str) -> Asset:
    """The RMAs one merchant's RMA DAG created (it schedules that merchant's receipts DAG)."""
    if merchant_id == DEFAULT_MERCHANT_ID:
        return RMA_ASSET
    return Asset(f"{RMA_URI}/{merchant_id}", group=GROUP)


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
