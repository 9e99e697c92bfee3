"""`loop_returns_to_whiplash`, run with `dag.test()` against the sandbox over real HTTP."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from include.returns_sync.sandbox import FaultConfig
from tests.support.dag_harness import rmas_by_loop_id

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


# --- issue 12: Return Details without a label, line outcomes "default", refused credentials ---

RETURN_ACTIONS = {
    "refund": "refund",
    "exchange": "exchange",
    "store_credit": "credit",
    "gift_card": "credit",
}


def test_a_manual_return_ids_trigger_creates_the_rma_with_the_returns_label(
    pipeline_env: Any, run_dag: Any
) -> None:
    """Read by id, a return comes from Return Details, which may carry no label (strict)."""
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=20)
    chosen = truth.rma_ids()[:4]
    not_shipped = [
        rid for rid, fact in truth.returns.items() if fact.state == "open" and not fact.eligible
    ][:2]
    summary = run_dag(DAG_ID, {"return_ids": chosen + not_shipped})
    assert summary["state"] == "success"
    assert summary["counts"]["created"] == len(chosen)
    assert set(summary["loop_return_ids"].get("ineligible:LABEL_NOT_SHIPPED", [])) == set(
        not_shipped
    )
    assert "unmappable:LABEL_UNKNOWN" not in summary["loop_return_ids"]
    for cr in sandbox.whiplash.consumer_returns():
        loop = sandbox.loop.get(str(cr["originator"]["original_id"]))
        assert (cr["carrier"], cr["tracking"]) == (loop["carrier"], loop["tracking_number"])


def test_a_retried_unmappable_return_gets_its_rma_once_it_maps(
    pipeline_env: Any, run_dag: Any, monkeypatch: Any
) -> None:
    """Retries read the return by id (Return Details): its label must still be known."""
    monkeypatch.setenv("RETURNS_SYNC_POLL_OVERLAP_MINUTES", "0")  # the next poll lists nothing
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=60)
    stuck = [rid for rid, reason in truth.unmappable().items() if reason == "UNKNOWN_SKU"]
    assert stuck, "the seed has no unknown-SKU return to test with"
    first = run_dag(DAG_ID)
    assert set(stuck) <= set(first["loop_return_ids"]["unmappable:UNKNOWN_SKU"])
    for rid in stuck:  # the merchant adds the missing SKUs to Whiplash
        for line in sandbox.loop.get(rid)["line_items"]:
            if sandbox.whiplash.item_by_sku(line["sku"]) is None:
                sandbox.whiplash.add_item(line["sku"], line["title"], line["price"])
    again = run_dag(DAG_ID)
    assert again["state"] == "success"
    assert set(stuck) <= set(again["loop_return_ids"]["created"])
    assert {rid: rmas_by_loop_id(sandbox)[rid] for rid in stuck} == dict.fromkeys(stuck, 1)


def test_rma_lines_carry_the_return_action_of_the_loop_outcome(
    pipeline_env: Any, run_dag: Any
) -> None:
    """Line items may say outcome "default" (strict): the return's outcome decides."""
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=40)
    webhook_like = truth.rma_ids()[:3]  # read by id too, from Return Details
    assert run_dag(DAG_ID)["state"] == "success"
    assert run_dag(DAG_ID, {"return_ids": webhook_like})["state"] == "success"
    rmas = sandbox.whiplash.consumer_returns()
    assert len(rmas) == len(truth.rma_ids())
    outcomes = set()
    for cr in rmas:
        loop = sandbox.loop.get(str(cr["originator"]["original_id"]))
        outcomes.add(loop["outcome"])
        expected = RETURN_ACTIONS[loop["outcome"]]
        assert {item["return_action"] for item in cr["return_items"]} == {expected}, loop["id"]
    assert len(outcomes) > 1


def test_refused_whiplash_credentials_on_create_fail_the_run_loudly(
    pipeline_env: Any, run_dag: Any, monkeypatch: Any
) -> None:
    """A 403 on create (e.g. a read-only token) is a deployment problem, not a per-return one."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.returns_sync import runtime
    from include.returns_sync.sandbox.whiplash_records import WhiplashApiError
    from include.returns_sync.tasks import rma

    sandbox = pipeline_env
    truth = sandbox.seed_day(n=10)

    def refuse(*_: Any) -> Any:
        raise WhiplashApiError(403, "The access token is not allowed to create consumer returns")

    monkeypatch.setattr(sandbox.whiplash, "create_consumer_return", refuse)
    summary = run_dag(DAG_ID)
    assert summary["state"] == "failed"
    assert not rmas_by_loop_id(sandbox)
    store = runtime.state_store()
    assert store.sync_status_counts()["unmappable"] == 0
    assert not (store.get_sync_records(truth.rma_ids()))  # claims handed back, nothing recorded
    with pytest.raises(AirflowFailException, match="connection 'whiplash_default'") as failure:
        rma.create_rmas({"returns": [], "ids": truth.rma_ids()[:1]}, source="manual")
    assert "HTTP 403" in str(failure.value) and "check the" in str(failure.value)


def test_the_announcing_webhook_gives_the_label_when_the_list_does_not_show_the_return(
    pipeline_env: Any,
) -> None:
    """The label webhook's status (kept in the inbox) decides when the list misses the return."""
    from include.returns_sync import runtime
    from include.returns_sync.domain.eligibility import ineligibility
    from include.returns_sync.domain.rma import fetch_by_ids
    from include.returns_sync.tasks import rma
    from include.returns_sync.webhooks.drain import INBOX_KEY

    class ListShowsNothing:
        def list_returns(self, **_: Any) -> list[Any]:
            return []

    sandbox = pipeline_env
    truth = sandbox.seed_day(n=10)
    rid = truth.rma_ids()[0]
    store = runtime.state_store()
    payload = {"topic": "label", "trigger": "label.updated", "id": rid}
    event_id, _ = store.inbox_put(
        "loop", f"label|{rid}", "label.updated", rid, {**payload, "label_status": "in_transit"}
    )
    found, _ = fetch_by_ids(runtime.loop_hook(), [rid])
    batch = {"returns": [], "ids": [rid], INBOX_KEY: [event_id]}
    [loop_return] = rma._with_labels(found, batch, store, ListShowsNothing())
    assert ineligibility(loop_return) is None
    if sandbox.strict:  # Details carried no label: the webhook's status was taken
        assert loop_return.label_status == "in_transit"


def test_a_single_label_webhook_creates_the_rma_of_a_return_the_poll_does_not_list(
    pipeline_env: Any, run_dag: Any
) -> None:
    """One webhook event: its return is read by id (Return Details), not prefetched."""
    from include.returns_sync import runtime
    from include.returns_sync.webhooks.payloads import parse_loop

    sandbox = pipeline_env
    sandbox.seed_day(n=10)
    assert run_dag(DAG_ID)["state"] == "success"  # the poll's watermark is now
    [rid] = sandbox.seed_missed(n=1, age=timedelta(hours=3))  # outside the next poll window
    label = sandbox.loop.get(rid)
    event = parse_loop(
        json.dumps(
            {
                "topic": "label",
                "trigger": "label.created",
                "id": rid,
                "label_status": label["label_status"],
                "label_updated_at": label["label_updated_at"],
            }
        ).encode()
    )
    runtime.state_store().inbox_put("loop", event.dedup_key, event.topic, rid, event.stored)
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert summary["loop_return_ids"]["created"] == [rid]
    [cr] = [c for c in sandbox.whiplash.consumer_returns() if c["reference"] == rid]
    assert cr["tracking"] == label["tracking_number"]
