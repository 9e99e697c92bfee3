"""End to end with two merchants: real Airflow (api-server, scheduler, dag-processor, triggerer)
on 127.0.0.1, a merchants file with `default` and `acme`, the sandbox delivering signed webhooks.

The sandbox serves one Loop shop; `acme`'s connection points at it too, and the default
merchant's Loop subscriptions are removed, so every label webhook of the shop goes to
`/webhooks/loop/acme` only (as it would from acme's own shop). What must happen, through the
per-merchant watchers and the triggerer's shared poller: acme's RMA DAG (not the default's)
creates the RMA and records it as acme's; the Whiplash receipt webhook, on the one Whiplash
endpoint, is routed to acme (its RMA) and acme's receipts DAG processes the return in Loop.
About two minutes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox.connections import airflow_connections
from tests.support.webhook_stack import RMA_DAG, WebhookPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACME_RMA_DAG = f"{RMA_DAG}__acme"


class TwoMerchantPipeline(WebhookPipeline):
    """The webhook pipeline with a merchants file: `default` and `acme` (its own Loop
    connection, on the sandbox's shop, with the same webhook secret)."""

    def start(self, timeout: float = 150) -> WebhookPipeline:
        # The sandbox's URLs exist once it serves: start it first, then give acme its
        # connection, and let the pipeline find it running.
        sandbox = self.sandbox.start()
        loop = airflow_connections(
            sandbox, loop_extra={"webhook_secret": sandbox.loop_webhook_secret}
        )["AIRFLOW_CONN_LOOP_DEFAULT"]
        merchants = self.home / "merchants.yaml"
        merchants.write_text(  # one Whiplash account: each merchant names its customer
            "merchants:\n"
            "  - id: default\n    whiplash_customer_id: 1\n"
            "  - id: acme\n    whiplash_customer_id: 2\n"
        )
        self._extra_env |= {
            "AIRFLOW_CONN_LOOP_ACME": loop,
            "RETURNS_SYNC_MERCHANTS": str(merchants),
        }
        self.sandbox.start = lambda *args, **kwargs: sandbox  # type: ignore[method-assign]
        return super().start(timeout)

    def register_acme(self) -> str:
        assert self.stack is not None
        argv = [
            *(sys.executable, "-m", "include.returns_sync.webhooks.register"),
            *("--url", self.stack.url, "--allow-http", "--merchant", "acme"),
        ]
        return self.stack.run(argv, "register-acme", timeout=60)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoMerchantPipeline]:
    home: Path = tmp_path_factory.mktemp("airflow")
    running = TwoMerchantPipeline(home, seed=13)
    try:
        running.start()
        for subscription in running.sandbox.loop.subscriptions():  # the default merchant's
            running.sandbox.loop.delete_subscription(str(subscription["id"]))
        running.register_acme()
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


def inbox(pipeline: WebhookPipeline) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from include.returns_sync.state.schema import webhook_inbox as t

    with pipeline.store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(t).order_by(t.c.id)).mappings()]


def test_a_merchants_webhooks_wake_only_its_dags_and_stay_its_own(
    pipeline: TwoMerchantPipeline,
) -> None:
    urls = {s["url"] for s in pipeline.sandbox.loop.subscriptions()}
    assert urls == {f"{pipeline.stack.url}/returns-sync/webhooks/loop/acme"}  # type: ignore[union-attr]

    return_id = pipeline.new_return(units=2)
    pipeline.sandbox.loop.set_label_status(return_id, "pre_transit")
    rma = pipeline.wait_rma(return_id, timeout=120)

    acme = pipeline.store.for_merchant("acme")

    def recorded() -> Any:
        record = acme.get_sync_records([return_id]).get(return_id)
        return record if record is not None and record.whiplash_return_id else None

    record = pipeline.processes.wait_for("acme's record of the RMA", recorded, 60)
    assert record.whiplash_return_id == int(rma["id"])
    assert pipeline.store.for_merchant("default").get_sync_records([return_id]) == {}
    assert pipeline.store.merchant_of_whiplash_return(int(rma["id"])) == "acme"
    # acme's RMA DAG did it, from the webhook alone (its run reports no poll window)
    folder = pipeline.home / "reports" / ACME_RMA_DAG

    def webhook_reports() -> list[Path]:
        return sorted(folder.glob("asset_triggered*/summary.json"))

    reports = pipeline.processes.wait_for("acme's webhook run report", webhook_reports, 60)
    assert not any(json.loads(path.read_text())["window"] for path in reports)
    assert not list((pipeline.home / "reports" / RMA_DAG).glob("asset_triggered*"))

    # the warehouse receives it: the one Whiplash endpoint routes the webhook to acme
    sku = pipeline.sandbox.loop.get(return_id)["line_items"][0]["sku"]
    pipeline.sandbox.whiplash.receive(rma["id"], [(sku, 2, 0)])

    def processed() -> bool:
        actions = pipeline.sandbox.loop.actions_for(return_id)
        return any(a["action"] == "process" and a["ok"] for a in actions)

    pipeline.processes.wait_for("acme's receipts DAG to process the return", processed, 120)
    pipeline.wait_inbox_done(60)
    rows = inbox(pipeline)
    # The receipt events went to acme (its RMA). `consumer_return.created` starts no work and
    # arrives while the RMA is being created, before acme's record names it: without a
    # customer id in the payload it goes to the account's first merchant, closed at once.
    receipts = [
        r
        for r in rows
        if r["source"] == "whiplash"
        and r["resource_id"] == str(rma["id"])
        and r["topic"] != "consumer_return.created"
    ]
    assert receipts and {r["merchant"] for r in receipts} == {"acme"}
    assert {r["status"] for r in rows} == {"done"}
    label = [r for r in rows if r["source"] == "loop"]
    assert label and {r["merchant"] for r in label} == {"acme"}
    assert [a["action"] for a in pipeline.sandbox.loop.actions_for(return_id)] == ["process"]
    assert len(pipeline.rmas(return_id)) == 1
    deliveries = (
        pipeline.sandbox.loop.webhooks.deliveries() + pipeline.sandbox.whiplash.webhook_deliveries()
    )
    assert {d.status for d in deliveries} == {200}
