"""`loop_asn_backfill` with `dag.test()`: catches what the primary flow missed, never doubles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.dag_harness import rmas_by_loop_id, run_dags_at_once

DAG_ID = "loop_asn_backfill"


def _day_window() -> dict[str, str]:
    """The last two days; the end is clamped to the task's "now", after every seeded return."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(days=2)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }


def test_a_return_the_primary_poll_never_saw_is_caught_and_reported_as_a_miss(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=30)
    missed = truth.rma_ids()[:4]
    seen = [rid for rid in truth.rma_ids() if rid not in missed]
    assert run_dag("loop_returns_to_whiplash", {"return_ids": seen})["state"] == "success"
    assert not set(missed) & set(rmas_by_loop_id(sandbox))

    summary = run_dag(DAG_ID, _day_window())
    assert summary["state"] == "success"
    assert sorted(summary["loop_return_ids"]["created"]) == sorted(missed)
    assert summary["missed_by_primary_flow"] == len(missed)
    assert summary["counts"]["already_synced"] == len(seen)
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids()) and set(rmas.values()) == {1}


def test_running_the_same_interval_twice_creates_nothing_extra(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=25)
    window = _day_window()
    first = run_dag(DAG_ID, window)
    second = run_dag(DAG_ID, window)
    assert first["counts"]["created"] == len(truth.rma_ids())
    assert "created" not in second["counts"]
    assert set(rmas_by_loop_id(sandbox).values()) == {1}


def test_backfill_and_primary_dag_running_at_once_make_one_rma_each(
    pipeline_env: Any, run_dag: Any, tmp_path: Path
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=40)
    run_dags_at_once(
        [(DAG_ID, _day_window()), ("loop_returns_to_whiplash", {})], tmp_path / "at-once"
    )
    run_dag(DAG_ID, _day_window())  # whatever one of them left busy, the next run finishes
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids())
    assert set(rmas.values()) == {1}


def test_dry_run_creates_nothing(pipeline_env: Any, run_dag: Any) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=15)
    summary = run_dag(DAG_ID, {**_day_window(), "dry_run": True})
    assert summary["state"] == "success"
    assert summary["counts"]["would_create"] == len(truth.rma_ids())
    assert not rmas_by_loop_id(sandbox)


def test_an_invalid_form_fails_at_once(pipeline_env: Any, run_dag: Any) -> None:
    summary = run_dag(DAG_ID, {"start": "2026-10-31", "end": "2026-10-01"})
    assert summary["state"] == "failed"


def test_a_backfill_of_explicit_return_ids_creates_their_rmas_with_the_label(
    pipeline_env: Any, run_dag: Any
) -> None:
    """Explicit ids are read from Return Details, which may carry no label (strict)."""
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=15)
    chosen = truth.rma_ids()[:3]
    summary = run_dag(DAG_ID, {"return_ids": chosen})
    assert summary["state"] == "success"
    assert sorted(summary["loop_return_ids"]["created"]) == sorted(chosen)
    for cr in sandbox.whiplash.consumer_returns():
        loop = sandbox.loop.get(str(cr["reference"]))
        assert (cr["carrier"], cr["tracking"]) == (loop["carrier"], loop["tracking_number"])
