"""The views' read model over a store written through its public methods, SQLite and PostgreSQL.

Each test writes what the pipelines write (claims, RMAs, decisions, Loop actions, stamped with
the run that wrote them) and reads it back through `views.queries` as the pages do.
"""

from __future__ import annotations

import json
from datetime import timedelta

from include.returns_sync.state import StateStore
from include.returns_sync.views import queries
from tests.views.conftest import Clock

RMA_DAG = "loop_returns_to_whiplash"
RECEIPTS_DAG = "whiplash_receipts_to_loop"
BACKFILL_DAG = "loop_asn_backfill"


def create_rma(
    store: StateStore,
    clock: Clock,
    lid: str,
    wid: int,
    *,
    source: str = "poll",
    dag_id: str = RMA_DAG,
    run_id: str = "scheduled__1",
    order: str | None = None,
    tracking: str | None = None,
    label_hours_ago: float | None = 2.0,
) -> None:
    run = store.for_run(dag_id, run_id)
    shipped = clock.now - timedelta(hours=label_hours_ago) if label_hours_ago else None
    claim = run.claim_for_creation(
        lid,
        token=f"t{lid}",
        source=source,
        label_status="pre_transit",
        label_pre_transit_at=shipped,
        order_name=order,
        tracking_number=tracking,
    )
    assert claim.won
    run.record_created(lid, wid, adopted=False, token=f"t{lid}")


def unmappable(store: StateStore, lid: str, reason: str, *, run_id: str = "scheduled__1") -> None:
    run = store.for_run(RMA_DAG, run_id)
    assert run.claim_for_creation(lid, token=f"u{lid}", source="webhook").won
    run.record_unmappable(lid, reason, f"detail of {reason}", token=f"u{lid}")


def decide(
    store: StateStore,
    lid: str,
    wid: int,
    verdict: str,
    reasons: list[str] = [],  # noqa: B006 (never mutated)
    *,
    run_id: str = "scheduled__9",
    note: str | None = None,
) -> None:
    lines = [{"sku": "SKU-A", "expected": 2, "good": 1, "damaged": 0, "missing": 1, "extra": 0}]
    store.for_run(RECEIPTS_DAG, run_id).record_decision(
        wid,
        verdict=verdict,
        reason_codes=reasons,
        loop_return_id=lid,
        note=note,
        detail={"lines": lines},
        run_id=run_id,
    )


def act(
    store: StateStore,
    lid: str,
    action: str,
    status: str,
    code: str | None = None,
    *,
    run_id: str = "scheduled__9",
) -> None:
    run = store.for_run(RECEIPTS_DAG, run_id)
    assert run.begin_action(lid, action).created
    run.finish_action(lid, action, status, code, f"{action} said {code}")


def test_search_is_exact_and_case_insensitive_on_every_key(store: StateStore, clock: Clock) -> None:
    create_rma(store, clock, "4100123", 9001, order="#A1001", tracking="1Zabc")
    create_rma(store, clock, "4100124", 9002, order="#A10011", tracking="1ZABCD")

    def found(q: str) -> list[tuple[str, str]]:
        return [(r.loop_return_id, r.matched_on) for r in queries.search(store, q)]

    assert found("4100123") == [("4100123", "loop_return_id")]
    assert found("#a1001") == [("4100123", "order_name")]
    assert found("A1001") == [("4100123", "order_name")]  # without the `#` Loop shows
    assert found("1ZABC") == [("4100123", "tracking_number")]
    assert found("9002") == [("4100124", "whiplash_return_id")]
    assert found("A100") == [] and found("410012") == [] and found("  ") == []


def test_search_and_timeline_keep_merchants_apart(store: StateStore, clock: Clock) -> None:
    create_rma(store, clock, "77", 1, order="#1001")
    create_rma(store.for_merchant("acme"), clock, "77", 2, order="#1001")

    hits = queries.search(store, "#1001")
    assert [(r.merchant, r.whiplash_return_id) for r in hits] == [("acme", 2), ("default", 1)]
    assert [r.merchant for r in queries.search(store, "77", merchant="acme")] == ["acme"]
    acme = queries.timeline(store, "acme", "77")
    assert acme is not None and acme.rma is not None and acme.rma.whiplash_return_id == 2
    assert queries.timeline(store, "other", "77") is None


def test_timeline_tells_the_whole_story_with_each_steps_run(
    store: StateStore, clock: Clock
) -> None:
    hostile = '<script>alert("x")</script>'
    create_rma(store, clock, "500", 7000, source="webhook", run_id="manual__a", order="#9")
    clock.advance(timedelta(days=3))
    decide(store, "500", 7000, "flag", ["MISSING_ITEMS"], note=f"Missing 1 x {hostile}")
    act(store, "500", "flag", "sent")
    act(store, "500", "note", "sent")

    story = queries.timeline(store, "default", "500")
    assert story is not None and story.seen is not None and story.rma is not None
    assert story.seen.label_status == "pre_transit" and story.seen.first_trigger == "webhook"
    assert story.rma.status == "created" and story.rma.whiplash_return_id == 7000
    assert story.rma.run.model_dump() == {
        "dag_id": RMA_DAG,
        "run_id": "manual__a",
        "trigger": "webhook",
    }
    (receipt,) = story.receipts
    assert receipt.verdict == "flag" and receipt.reason_codes == ["MISSING_ITEMS"]
    assert receipt.note == f"Missing 1 x {hostile}"  # exact text; escaping is the page's job
    assert [(x.sku, x.expected, x.good, x.missing) for x in receipt.lines] == [("SKU-A", 2, 1, 1)]
    assert receipt.run.run_id == "scheduled__9" and receipt.run.dag_id == RECEIPTS_DAG
    assert [(x.action, x.status, x.run.run_id) for x in story.actions] == [
        ("flag", "sent", "scheduled__9"),
        ("note", "sent", "scheduled__9"),
    ]
    assert [s.kind for s in story.steps] == ["seen", "rma", "verdict", "action", "action"]
    json.dumps(story.model_dump(mode="json"))  # JSON as it is


def test_queues_count_age_reason_and_page(store: StateStore, clock: Clock) -> None:
    start = clock.now
    for i in range(5):
        unmappable(store, f"u{i}", "SKU_NOT_FOUND" if i < 3 else "ORDER_NOT_FOUND")
        clock.advance(timedelta(hours=1))
    create_rma(store, clock, "p1", 11)
    decide(store, "p1", 11, "process")
    run = store.for_run(RECEIPTS_DAG, "scheduled__9")
    run.begin_action("p1", "process")
    run.finish_action("p1", "process", "failed", "PROCESS_FAILED", "Loop could not process")
    create_rma(store, clock, "f1", 12)
    decide(store, "f1", 12, "flag", ["MISSING_ITEMS", "DAMAGED_ITEMS"], note="n")
    act(store, "f1", "flag", "failed", "422")
    create_rma(store, clock, "f2", 13)
    decide(store, "f2", 13, "flag", ["DAMAGED_ITEMS"], note="n2")
    create_rma(store, clock, "b1", 14, source="backfill", dag_id=BACKFILL_DAG, label_hours_ago=30)
    clock.advance(timedelta(hours=1))

    seen = queries.queues(store, page_size=2, now=clock.now)
    assert seen.unmappable.count == 5
    assert seen.unmappable.by_reason == {"ORDER_NOT_FOUND": 2, "SKU_NOT_FOUND": 3}
    assert seen.unmappable.oldest_age_seconds == (clock.now - start).total_seconds()
    assert [r.loop_return_id for r in seen.unmappable.rows] == ["u0", "u1"]  # oldest first
    page3 = queries.queue(store, "unmappable", page=3, page_size=2, now=clock.now)
    assert [r.loop_return_id for r in page3.rows] == ["u4"]
    assert page3.rows[0].run is not None and page3.rows[0].run.trigger == "webhook"
    assert seen.process_failed.count == 1 and seen.process_failed.rows[0].loop_return_id == "p1"
    assert seen.action_refused.by_reason == {"422": 1}
    assert seen.action_refused.rows[0].loop_return_id == "f1"
    assert seen.flagged.count == 2
    assert seen.flagged.by_reason == {"DAMAGED_ITEMS": 2, "MISSING_ITEMS": 1}
    assert [r.loop_return_id for r in seen.flagged.rows] == ["f2", "f1"]  # newest first
    assert seen.backfill_misses.count == 1
    (miss,) = seen.backfill_misses.rows
    assert miss.loop_return_id == "b1" and miss.late_seconds == 30 * 3600
    assert seen.backfill_misses.by_reason == {"24-48 h": 1}
    assert seen.model_dump()["needs_attention"] == 7

    store.for_run(RMA_DAG, "scheduled__2").claim_for_creation("u0", token="x", source="poll")
    store.record_created("u0", 99, adopted=True, token="x")
    later = queries.queues(store, merchant="default", now=clock.now)
    assert later.unmappable.count == 4  # an RMA takes it out of the queue
    assert queries.queues(store, merchant="acme", now=clock.now).unmappable.count == 0
    clock.advance(timedelta(days=31))
    old = queries.queues(store, now=clock.now)
    assert old.flagged.count == 0 and old.backfill_misses.count == 0 and old.unmappable.count == 4


def test_trend_counts_each_utc_day_by_trigger_with_the_median_label_time(
    store: StateStore, clock: Clock
) -> None:
    create_rma(store, clock, "a", 1, source="poll", label_hours_ago=1)
    create_rma(store, clock, "b", 2, source="webhook", label_hours_ago=3)
    create_rma(store, clock, "c", 3, source="poll", label_hours_ago=5)
    decide(store, "a", 1, "process")
    clock.advance(timedelta(days=1))
    create_rma(store, clock, "d", 4, source="backfill", dag_id=BACKFILL_DAG, label_hours_ago=40)
    decide(store, "b", 2, "flag", ["MISSING_ITEMS"])
    decide(store, "c", 3, "skip", ["NOT_OPEN"])

    days = queries.trend(store, days=3, now=clock.now)
    assert [d.day.isoformat() for d in days] == ["2026-03-09", "2026-03-10", "2026-03-11"]
    empty, first, second = days
    assert empty.rmas == 0 and empty.median_label_to_rma_seconds is None
    assert first.rmas == 3 and first.rmas_by_trigger == {"poll": 2, "webhook": 1}
    assert first.median_label_to_rma_seconds == 3 * 3600
    assert (first.processed, first.flagged, first.misses) == (1, 0, 0)
    assert second.rmas_by_trigger == {"backfill": 1} and second.misses == 1
    assert (second.processed, second.flagged) == (0, 1)
    assert queries.trend(store, "acme", days=3, now=clock.now)[1].rmas == 0


def test_run_summary_counts_a_runs_outcomes_and_knows_our_dags(
    store: StateStore, clock: Clock
) -> None:
    create_rma(store, clock, "1", 10, run_id="scheduled__A")
    create_rma(store, clock, "2", 20, run_id="scheduled__A")
    unmappable(store, "3", "SKU_NOT_FOUND", run_id="scheduled__A")
    create_rma(store, clock, "4", 40, run_id="scheduled__B")
    decide(store, "1", 10, "process", run_id="scheduled__A")
    act(store, "1", "process", "sent", run_id="scheduled__A")
    decide(store, "2", 20, "flag", ["MISSING_ITEMS"], run_id="scheduled__A")
    act(store, "2", "flag", "failed", "422", run_id="scheduled__A")

    rma = queries.run_summary(store, RMA_DAG, "scheduled__A")
    assert rma is not None and rma.flow == "rma"
    assert rma.counts == {"created": 2, "unmappable": 1}
    assert rma.reasons == {"unmappable:SKU_NOT_FOUND": 1}
    assert [r.loop_return_id for r in rma.returns] == ["1", "2", "3"]
    receipts = queries.run_summary(store, RECEIPTS_DAG, "scheduled__A")
    assert receipts is not None and receipts.counts == {"flag": 1, "process": 1}
    assert receipts.actions == {"flag:failed": 1, "process:sent": 1}
    empty = queries.run_summary(store, f"{RMA_DAG}__acme", "scheduled__A")
    assert empty is not None and empty.merchant == "acme" and empty.returns == []
    assert queries.run_summary(store, "example_bash_operator", "scheduled__A") is None
    assert queries.run_summary(store, f"{RMA_DAG}__", "x") is None
    bound = queries.ReturnViews(store)
    assert bound.run_summary(RMA_DAG, "scheduled__A") == rma
    assert [r.loop_return_id for r in bound.search("4")] == ["4"]
