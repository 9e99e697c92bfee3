"""`loop_returns_to_whiplash`, run with `dag.test()` against the sandbox over real HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from include.returns_sync.sandbox import FaultConfig
from tests.dags.conftest import rmas_by_loop_id

DAG_ID = "loop_returns_to_whiplash"


def test_every_eligible_return_gets_exactly_one_rma_with_the_right_items(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=60)
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"

    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids())
    assert set(rmas.values()) == {1}
    for cr in sandbox.whiplash.consumer_returns():
        loop_id = str(cr["originator"]["original_id"])
        assert str(cr["reference"]) == loop_id
        units = Counter()
        for item in cr["return_items"]:
            units[item["sku"]] += item["quantity"]
        assert dict(units) == truth.returns[loop_id].expected_units, loop_id
    assert summary["counts"]["created"] == len(truth.rma_ids())
    unmappable = summary["loop_return_ids"]
    for loop_id, reason in truth.unmappable().items():
        assert loop_id in unmappable[f"unmappable:{reason}"], (loop_id, reason)


def test_a_rerun_creates_nothing_and_reports_returns_as_already_synced(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=30)
    run_dag(DAG_ID)
    before = sum(rmas_by_loop_id(sandbox).values())
    again = run_dag(DAG_ID)  # the next poll: an overlapping window
    assert again["state"] == "success"
    assert "created" not in again["counts"]
    every = run_dag(DAG_ID, {"return_ids": truth.rma_ids()})  # and every return explicitly
    assert every["counts"] == {"already_synced": len(truth.rma_ids())}
    assert sum(rmas_by_loop_id(sandbox).values()) == before == len(truth.rma_ids())


def test_labels_that_skipped_pre_transit_are_included_and_unshipped_ones_are_not(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=80)
    run_dag(DAG_ID)
    rmas = rmas_by_loop_id(sandbox)
    by_label: dict[str | None, set[str]] = {}
    for loop_id, fact in truth.returns.items():
        if fact.state == "open" and fact.unmappable is None:
            by_label.setdefault(fact.label_status, set()).add(loop_id)
    for label in ("in_transit", "delivered"):
        assert by_label.get(label), f"the seed has no {label} label to test with"
        assert by_label[label] <= set(rmas), label
    for label in ("new", "failure", "error", None):
        assert not (by_label.get(label, set()) & set(rmas)), label


def test_explicit_return_ids_sync_only_those_returns(pipeline_env: Any, run_dag: Any) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=20)
    chosen = truth.rma_ids()[:3]
    summary = run_dag(DAG_ID, {"return_ids": chosen})
    assert summary["state"] == "success"
    assert set(rmas_by_loop_id(sandbox)) == set(chosen)


def test_unknown_loop_return_id_is_reported_not_fatal(pipeline_env: Any, run_dag: Any) -> None:
    pipeline_env.seed_day(n=5)
    summary = run_dag(DAG_ID, {"return_ids": ["999999999"]})
    assert summary["state"] == "success"
    assert summary["loop_return_ids"]["unmappable:LOOP_NOT_FOUND"] == ["999999999"]


def test_many_list_pages_are_all_read(pipeline_env: Any, run_dag: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("RETURNS_SYNC_LOOP_PAGE_SIZE", "10")
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=45)
    run_dag(DAG_ID)
    list_calls = sum(
        count for key, count in sandbox.stats()["loop"]["requests"].items() if "return/list" in key
    )
    assert list_calls >= 4  # 45 open-or-not returns at 10 a page
    assert set(rmas_by_loop_id(sandbox)) == set(truth.rma_ids())


def test_a_worker_killed_after_create_before_record_is_adopted_not_duplicated(
    pipeline_env: Any, run_dag: Any, monkeypatch: Any
) -> None:
    """The worker dies between 'created in Whiplash' and 'recorded': the next run adopts."""
    from include.returns_sync import runtime
    from include.returns_sync.tasks import rma

    sandbox = pipeline_env
    truth = sandbox.seed_day(n=10)
    victim = truth.rma_ids()[0]
    store = runtime.state_store()
    real_record = store.record_created

    def die_before_recording(loop_return_id: str, *args: Any, **kwargs: Any) -> Any:
        if loop_return_id == victim:
            raise SystemExit("worker killed")  # not an Exception: nothing may catch it
        return real_record(loop_return_id, *args, **kwargs)

    monkeypatch.setattr(store, "record_created", die_before_recording)
    batch = {"returns": [], "ids": [victim]}
    with pytest.raises(SystemExit):
        rma.create_rmas(batch, source="poll")
    monkeypatch.setattr(store, "record_created", real_record)
    assert rmas_by_loop_id(sandbox)[victim] == 1
    monkeypatch.setenv("RETURNS_SYNC_STALE_CLAIM_MINUTES", "0")  # the dead worker's claim is stale
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert victim in summary["loop_return_ids"]["adopted"]
    assert rmas_by_loop_id(sandbox)[victim] == 1
    assert set(rmas_by_loop_id(sandbox).values()) == {1}


def test_two_concurrent_creations_of_the_same_returns_make_one_rma_each(
    pipeline_env: Any,
) -> None:
    from include.returns_sync.tasks import rma

    sandbox = pipeline_env
    truth = sandbox.seed_day(n=12)
    batch = {"returns": [], "ids": truth.rma_ids()}
    results: list[list[dict]] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        results.append(rma.create_rmas(batch, source="poll"))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids()) and set(rmas.values()) == {1}
    outcomes = Counter(row["outcome"] for rows in results for row in rows)
    assert outcomes["created"] == len(truth.rma_ids())


def test_faults_at_ten_percent_still_end_with_exactly_one_rma_each(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=60)
    sandbox.set_faults(
        FaultConfig(
            rate=0.10,
            kinds=("429", "500", "503", "timeout", "drop"),
            timeout_seconds=1.5,
            after_commit_rate=0.05,
            seed=7,
        )
    )
    for _ in range(4):  # Airflow would run the next poll 5 minutes later; we run it now
        run_dag(DAG_ID)
        if set(rmas_by_loop_id(sandbox)) == set(truth.rma_ids()):
            break
    sandbox.set_faults(FaultConfig())
    run_dag(DAG_ID)
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids())
    assert set(rmas.values()) == {1}, {k: v for k, v in rmas.items() if v > 1}
    faults = sandbox.stats()
    assert sum(faults["whiplash"]["faults"].values()) + sum(faults["loop"]["faults"].values()) > 0
