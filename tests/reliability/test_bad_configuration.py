"""Bad configuration fails fast, with a message that names the fix (issue 8, item 3).

"Fast" means the task fails on its first attempt, without Airflow's retries (which would only
repeat the same error for minutes before anyone is alerted), and nothing is sent to a vendor
or left half-done in the state store. The message is read where an operator reads it: the
failure alert (`RETURNS_SYNC_ALERT ...`), which carries the task's exception.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.dag_harness import (
    BACKFILL_DAG,
    RECEIPTS_DAG,
    RMA_DAG,
    DagResult,
    Pipeline,
    failure_alerts,
)


def _failed_at_once(result: DagResult, task_id: str, alerts: list[str]) -> str:
    """The run failed in `task_id` on its first attempt; returns that task's alert."""
    assert result.state == "failed"
    tries = {key: n for key, n in result.task_tries.items() if key.startswith(f"{task_id}[")}
    assert tries and set(tries.values()) == {1}, result.task_tries
    (alert,) = [message for message in alerts if f"task={task_id} " in message]
    return alert


def _edit_connection(name: str, **fields: str) -> None:
    connection = json.loads(os.environ[name])
    connection.update(fields)
    os.environ[name] = json.dumps(connection)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("version: 1\non_damaged: maybe\n", ["on_damaged", "must be one of flag, process"]),
        ("version: 1\non_shortfall: [flag\n", ["not valid YAML"]),
        ("version: 1\nsku_alias:\n  A: B\n", ["sku_alias"]),
    ],
    ids=["bad-value", "bad-yaml", "unknown-key"],
)
def test_a_malformed_criteria_file_fails_the_receipts_run_at_once_naming_the_fix(
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    names: list[str],
) -> None:
    sandbox = pipeline.sandbox
    sandbox.seed_day(n=10)
    assert pipeline.run(RMA_DAG).state == "success"
    sandbox.receive_packages({"exact": 1.0})
    criteria = tmp_path / "criteria.yaml"
    criteria.write_text(content)
    monkeypatch.setenv("RETURNS_SYNC_CRITERIA", str(criteria))
    with failure_alerts() as alerts:
        result = pipeline.run(RECEIPTS_DAG)
    alert = _failed_at_once(result, "reconcile_and_act", alerts)
    for words in [str(criteria), *names, "docs/CRITERIA.md", "RETURNS_SYNC_CRITERIA"]:
        assert words in alert, (words, alert)
    assert not sandbox.loop.actions()


@pytest.mark.parametrize(
    ("variable", "task_id", "fields"),
    [
        ("AIRFLOW_CONN_LOOP_DEFAULT", "collect", "password = the API key"),
        ("AIRFLOW_CONN_WHIPLASH_DEFAULT", "create_rmas", "login = the OAuth client id"),
    ],
    ids=["loop", "whiplash"],
)
def test_a_missing_connection_fails_at_once_saying_how_to_define_it(
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    task_id: str,
    fields: str,
) -> None:
    pipeline.sandbox.seed_day(n=10)
    monkeypatch.delenv(variable)
    conn_id = variable.removeprefix("AIRFLOW_CONN_").lower()
    with failure_alerts() as alerts:
        result = pipeline.run(RMA_DAG)
    alert = _failed_at_once(result, task_id, alerts)
    expected = (
        f"connection '{conn_id}' is not defined: set {variable} or create it in Admin > Connections"
    )
    assert expected in alert, alert
    assert fields in alert, alert
    assert not pipeline.sandbox.whiplash.consumer_returns()
    assert pipeline.store().sync_status_counts()["claimed"] == 0


def test_a_wrong_loop_api_key_fails_at_once_naming_the_key(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.sandbox.seed_day(n=10)
    monkeypatch.setenv("AIRFLOW_CONN_LOOP_DEFAULT", os.environ["AIRFLOW_CONN_LOOP_DEFAULT"])
    _edit_connection("AIRFLOW_CONN_LOOP_DEFAULT", password="not-the-key")
    with failure_alerts() as alerts:
        result = pipeline.run(RMA_DAG)
    alert = _failed_at_once(result, "collect", alerts)
    assert "HTTP 401" in alert
    assert "connection 'loop_default'" in alert
    assert "check the API key (password field)" in alert
    assert "not-the-key" not in alert


def test_a_wrong_whiplash_secret_fails_at_once_and_leaves_no_claim_behind(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=10)
    secret = os.environ["AIRFLOW_CONN_WHIPLASH_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_WHIPLASH_DEFAULT", secret)
    _edit_connection("AIRFLOW_CONN_WHIPLASH_DEFAULT", password="not-the-secret")
    with failure_alerts() as alerts:
        result = pipeline.run(RMA_DAG)
    alert = _failed_at_once(result, "create_rmas", alerts)
    assert "HTTP 401" in alert and "invalid_client" in alert
    assert "connection 'whiplash_default'" in alert
    assert "client secret (password)" in alert
    assert "not-the-secret" not in alert
    store = pipeline.store()
    assert store.sync_status_counts()["claimed"] == 0  # the failed attempt handed its claims back
    assert not sandbox.whiplash.consumer_returns()

    # Fixed connection: the next run syncs everything at once (no claim to wait out).
    monkeypatch.setenv("AIRFLOW_CONN_WHIPLASH_DEFAULT", secret)
    fixed = pipeline.run(RMA_DAG)
    assert fixed.state == "success"
    assert sorted(fixed.summary["loop_return_ids"]["created"]) == sorted(truth.rma_ids())


@pytest.mark.parametrize("dag_id", [RMA_DAG, RECEIPTS_DAG, BACKFILL_DAG])
def test_an_unreadable_shadow_mode_setting_fails_every_dag_at_its_first_task(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, dag_id: str
) -> None:
    """`RETURNS_SYNC_DRY_RUN=shadow` is neither true nor false: guessing either way could write
    to the vendors during a shadow period, or silently not; so nothing runs, and the alert says
    which variable to fix."""
    sandbox = pipeline.sandbox
    sandbox.seed_day(n=10)
    sandbox.reset_stats()
    monkeypatch.setenv("RETURNS_SYNC_DRY_RUN", "shadow")
    with failure_alerts() as alerts:
        result = pipeline.run(dag_id)
    alert = _failed_at_once(result, "plan", alerts)
    assert "RETURNS_SYNC_DRY_RUN must be true or false (got 'shadow')" in alert, alert
    assert sandbox.stats()["loop"]["total"] == sandbox.stats()["whiplash"]["total"] == 0
