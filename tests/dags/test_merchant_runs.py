"""A merchant's DAGs run on its own connections and keep their records under its name.

`dag.test()` against the sandbox over HTTP (the single-shop sandbox: the merchant's connection
ids point at it; the multi-shop sandbox is tests/e2e's), a fresh SQLite state store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync import runtime
from include.returns_sync.alerts import on_failure
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.state import StateStore
from tests.support.dag_harness import (
    Pipeline,
    failure_alerts,
    rmas_by_loop_id,
    wire_merchants,
)

needs_scoped_store = pytest.mark.skipif(
    not hasattr(StateStore, "for_merchant"),
    reason="StateStore.for_merchant (H1, branch h/state) is not merged yet",
)

ACME = {
    "id": "acme",
    "whiplash_conn_id": "whiplash_acme",
    "whiplash_customer_id": 4711,
    "warehouse_id": 7,
}


@pytest.fixture
def sandbox() -> Any:
    with Sandbox(seed=0) as running:
        yield running


@pytest.fixture
def pipeline(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return Pipeline(sandbox, tmp_path, monkeypatch)


def test_the_current_merchant_picks_connections_customer_criteria_and_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [
        {"id": "default", "whiplash_customer_id": 11},
        {"id": "acme", "whiplash_customer_id": 12, "warehouse_id": 3, "criteria": "acme.yaml"},
    ]
    monkeypatch.setenv("AIRFLOW_CONN_LOOP_DEFAULT", '{"conn_type": "http", "host": "h"}')
    monkeypatch.setenv("AIRFLOW_CONN_WHIPLASH_DEFAULT", '{"conn_type": "http", "host": "h"}')
    wire_merchants(tmp_path, monkeypatch, entries)
    assert runtime.current_merchant().id == "default"  # no task, no use_merchant
    with runtime.use_merchant("acme") as acme:
        assert runtime.current_merchant() == acme
        assert runtime.loop_hook().http_conn_id == "loop_acme"
        whiplash = runtime.whiplash_hook()
        assert (whiplash.http_conn_id, whiplash.customer_id) == ("whiplash_default", 12)
        assert runtime.rma_settings().warehouse_id == 3
        assert runtime.criteria_path() == str(tmp_path / "acme.yaml")
    assert runtime.whiplash_hook().customer_id == 11
    with (
        pytest.raises(KeyError, match="'globex' is not configured"),
        runtime.use_merchant("globex"),
    ):
        pass


def test_an_alert_names_the_merchant_of_the_failed_run(caplog: pytest.LogCaptureFixture) -> None:
    class TaskInstance:
        dag_id = "whiplash_receipts_to_loop__acme"
        task_id = "reconcile_and_act"

    with caplog.at_level(logging.ERROR, logger="returns_sync.alerts"):
        on_failure({"ti": TaskInstance(), "run_id": "r1", "exception": ValueError("boom")})
    assert "RETURNS_SYNC_ALERT merchant=acme dag=whiplash_receipts_to_loop__acme" in caplog.text


@needs_scoped_store
def test_a_merchants_rma_run_uses_its_connections_and_records_under_its_name(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_merchants(tmp_path, monkeypatch, [ACME], keep_default_connections=False)
    truth = pipeline.sandbox.seed_day(n=20)
    result = pipeline.run("loop_returns_to_whiplash__acme")
    assert result.state == "success"
    assert result.folder is not None and result.folder.parent.name.endswith("__acme")
    assert set(rmas_by_loop_id(pipeline.sandbox)) == set(truth.rma_ids())
    assert result.summary["counts"]["created"] == len(truth.rma_ids())
    assert {cr["warehouse_id"] for cr in pipeline.sandbox.whiplash.consumer_returns()} == {7}
    assert pipeline.sandbox.whiplash.last_customer_id == "4711"  # X-Customer-ID was sent

    store = runtime.shared_state_store()
    acme, default = store.for_merchant("acme"), store.for_merchant("default")
    ids = truth.rma_ids()
    assert set(acme.get_sync_records(ids)) == set(ids)
    assert default.get_sync_records(ids) == {}
    assert acme.get_watermark("loop_returns_to_whiplash.updated_at") is not None
    assert default.get_watermark("loop_returns_to_whiplash.updated_at") is None


@needs_scoped_store
def test_a_merchant_with_invalid_criteria_fails_alone_with_an_alert_naming_it(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\non_damaged: maybe\n")
    entries = [{"id": "default"}, {**ACME, "criteria": str(broken)}]
    wire_merchants(tmp_path, monkeypatch, entries)
    with failure_alerts() as alerts:
        failed = pipeline.run("whiplash_receipts_to_loop__acme")
        healthy = pipeline.run("whiplash_receipts_to_loop")
    assert failed.state == "failed"
    assert healthy.state == "success"
    assert any(
        "merchant=acme" in alert and "Invalid criteria of merchant 'acme'" in alert
        for alert in alerts
    ), alerts
    assert not any("merchant=default" in alert for alert in alerts), alerts


@needs_scoped_store
def test_a_run_of_a_merchant_removed_from_the_file_fails_at_once_naming_it(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from tests.support.dag_harness import load_dag

    path = wire_merchants(tmp_path, monkeypatch, [ACME])
    dag = load_dag("loop_returns_to_whiplash__acme")  # parsed while acme was listed
    path.write_text("merchants:\n  - id: globex\n")  # then removed
    with failure_alerts() as alerts:
        run = dag.test(logical_date=datetime.now(UTC))
    assert str(run.state) == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert plan.try_number == 1  # a configuration problem: no retries
    assert any("merchant=acme" in a and "'acme' is not configured" in a for a in alerts), alerts


@needs_scoped_store
def test_a_peers_rma_that_a_shared_account_lists_is_neither_reported_nor_decided(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-shop sandbox ignores `X-Customer-ID`: acme's receipts poll lists default's
    RMAs too, as a Whiplash read that is not scoped by customer would."""
    entries = [
        {"id": "default", "whiplash_customer_id": 1},
        {"id": "acme", "whiplash_customer_id": 2},
    ]
    wire_merchants(tmp_path, monkeypatch, entries)
    pipeline.sandbox.seed_day(n=12)
    assert pipeline.run("loop_returns_to_whiplash").state == "success"
    assert pipeline.sandbox.receive_packages({"exact": 1.0})

    acme = pipeline.run("whiplash_receipts_to_loop__acme")
    assert acme.state == "success"
    assert acme.summary["candidates"] == 0, acme.summary
    assert not any(acme.summary["reason_codes"].values()), acme.summary
    default = pipeline.run("whiplash_receipts_to_loop")
    assert default.state == "success"
    assert default.summary["verdicts"].get("process", 0) > 0, default.summary
