"""Bad input from the vendors affects only the return it belongs to (issue 8, item 2).

The sandbox serves one record badly (`sandbox/corruption.py`): fields missing, wrong types,
nulls, empty and huge arrays, Unicode and whitespace in SKUs, a SKU spelled two ways, ids as
integers or strings, negative counts, an HTML page instead of JSON. Each such return gets a
reason code and a readable message in the run report; the run succeeds; every other return is
synced exactly as without the bad one; and once the vendor serves the record properly again,
the next runs finish it, exactly once.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.domain.sku import normalise_sku
from include.returns_sync.sandbox.corruption import HTML_ERROR_PAGE, on_items, replace, without
from tests.reliability.outcome import check_outcome, loop_calls
from tests.support.dag_harness import RECEIPTS_DAG, RMA_DAG, Pipeline, rmas_by_loop_id

Mutator = Callable[[dict[str, Any]], Any]


def _csv_rows(folder: Path | None, name: str) -> list[dict[str, str]]:
    assert folder is not None, "the run wrote no report"
    with (folder / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rma_units(sandbox: Any, loop_return_id: str) -> dict[str, int]:
    (rma,) = [
        cr
        for cr in sandbox.whiplash.consumer_returns()
        if str((cr.get("originator") or {}).get("original_id")) == loop_return_id
    ]
    units: Counter[str] = Counter()
    for item in rma["return_items"]:
        units[item["sku"]] += item["quantity"]
    return dict(units)


def _twice_one_sku(truth: Any, taken: set[str]) -> str:
    """A return that needs an RMA, not used yet, with at least two units of one SKU."""
    return next(
        rid
        for rid in truth.rma_ids()
        if rid not in taken and max(truth.returns[rid].expected_units.values()) >= 2
    )


def _spelled_two_ways(line: dict[str, Any]) -> dict[str, Any]:
    """Every other unit's SKU in lower case with a trailing space (same SKU, other spelling)."""
    if line["line_item_id"] % 2:
        return {**line, "sku": line["sku"].lower() + " "}
    return line


def _unicode_and_whitespace(line: dict[str, Any]) -> dict[str, Any]:
    """Full-width letters and hyphen, lower case, padded with a no-break space and a tab."""
    wide = line["sku"].lower().replace("sku", "ｓｋｕ").replace("-", "－")
    return {**line, "sku": f"\u00a0{wide}\t"}


def test_malformed_loop_returns_affect_only_themselves_and_sync_once_fixed(
    pipeline: Pipeline,
) -> None:
    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=80)
    need = truth.rma_ids()
    taken: set[str] = set()

    def pick() -> str:
        rid = next(r for r in need if r not in taken)
        taken.add(rid)
        return rid

    # An HTML page instead of one return's details, on the path that reads returns by id.
    html_victim, partner = pick(), pick()
    sandbox.loop.corrupt(html_victim, HTML_ERROR_PAGE)
    by_id = pipeline.run(RMA_DAG, {"return_ids": [html_victim, partner]})
    assert by_id.state == "success"
    assert by_id.summary["loop_return_ids"]["unmappable:INVALID_LOOP_DATA"] == [html_victim]
    assert by_id.summary["loop_return_ids"]["created"] == [partner]
    (row,) = [r for r in _csv_rows(by_id.folder, "returns") if r["loop_return_id"] == html_victim]
    assert "HTML page" in row["detail"]

    # Bad records inside the detailed list the poll reads: (mutator, report bucket, message).
    rejected: dict[str, tuple[Mutator, str, str]] = {
        pick(): (without("state"), "unmappable:INVALID_LOOP_DATA", "state"),
        pick(): (replace(line_items="3 items"), "unmappable:INVALID_LOOP_DATA", "line_items"),
        pick(): (
            replace(label_updated_at="last tuesday"),
            "unmappable:INVALID_LOOP_DATA",
            "label_updated_at",
        ),
        pick(): (replace(line_items=None), "unmappable:NO_ITEMS", "no line items"),
        pick(): (replace(line_items=[]), "unmappable:NO_ITEMS", "no line items"),
        pick(): (on_items(lambda line: {**line, "sku": None}), "unmappable:UNKNOWN_SKU", "SKU"),
    }
    huge = pick()
    odd_skus = pick()
    two_spellings = _twice_one_sku(truth, taken)
    taken.add(two_spellings)
    int_ids = pick()
    accepted: dict[str, Mutator] = {
        huge: on_items(lambda line: [line] * 250),
        odd_skus: on_items(_unicode_and_whitespace),
        two_spellings: on_items(_spelled_two_ways),
        int_ids: replace(id=int(int_ids), order_id=7_999_999, provider_order_id=None),
    }
    for rid, (mutate, _, _) in rejected.items():
        sandbox.loop.corrupt(rid, mutate)
    for rid, mutate in accepted.items():
        sandbox.loop.corrupt(rid, mutate)

    poll = pipeline.run(RMA_DAG)
    assert poll.state == "success"
    buckets = poll.summary["loop_return_ids"]
    details = {r["loop_return_id"]: r["detail"] for r in _csv_rows(poll.folder, "returns")}
    for rid, (_, bucket, words) in rejected.items():
        assert rid in buckets.get(bucket, []), (rid, bucket, buckets)
        assert words in details[rid], (rid, details[rid])
    rmas = rmas_by_loop_id(sandbox)
    assert not set(rejected) & set(rmas)
    assert rmas[huge] == 1
    assert _rma_units(sandbox, huge) == {
        sku: units * 250 for sku, units in truth.returns[huge].expected_units.items()
    }
    for rid in (odd_skus, two_spellings, int_ids):
        assert rmas[rid] == 1, rid
        assert _rma_units(sandbox, rid) == truth.returns[rid].expected_units, rid
    # Everyone else is synced as if nothing had happened.
    others = check_outcome(sandbox, pipeline.store(), ignore=[html_victim, *rejected])
    assert others.problems() == {}

    # The vendor serves the records properly again: the next poll finishes them, once each.
    sandbox.loop.corruptions.clear()
    again = pipeline.run(RMA_DAG)
    assert again.state == "success"
    outcome = check_outcome(sandbox, pipeline.store())
    assert outcome.problems() == {}
    assert set(rmas_by_loop_id(sandbox).values()) == {1}


def _receipt(truth: Any, rid: str) -> int:
    consumer_return_id: int = truth.returns[rid].consumer_return_id
    return consumer_return_id


def _split_good_units(item: dict[str, Any]) -> Any:
    """Received units of one SKU on two lines, the second with its id as a string."""
    good = item["quantity_good"]
    if good < 2:
        return item
    return [
        {**item, "quantity_good": 1},
        {**item, "id": str(item["id"]), "quantity_good": good - 1, "quantity": 0},
    ]


def _ids_as_strings(view: dict[str, Any]) -> dict[str, Any]:
    """Ids the other way round: the RMA's as strings, the Loop return id as an integer."""
    originator = {**view["originator"], "original_id": int(view["originator"]["original_id"])}
    return {
        **view,
        "id": str(view["id"]),
        "order_id": str(view["order_id"]),
        "warehouse_id": str(view["warehouse_id"]),
        "originator": originator,
        "return_items": [{**item, "id": str(item["id"])} for item in view["return_items"]],
    }


def test_malformed_receipts_affect_only_themselves_and_are_decided_once_readable(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No overlap between poll windows: only the watermark can bring a left-over receipt back.
    monkeypatch.setenv("RETURNS_SYNC_POLL_OVERLAP_MINUTES", "0")
    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=80)
    assert pipeline.run(RMA_DAG).state == "success"
    sandbox.advance_labels()
    sandbox.receive_packages({"exact": 1.0})
    arrived = [rid for rid, fact in truth.returns.items() if fact.expected_verdict == "process"]
    taken: set[str] = set()

    def pick() -> str:
        rid = next(r for r in arrived if r not in taken)
        taken.add(rid)
        return rid

    # Receipts Whiplash serves badly, and what a correct pipeline concludes from each.
    flagged: dict[str, tuple[Mutator, set[str]]] = {
        pick(): (without("return_items"), {"NOTHING_RECEIVED", "MISSING_ITEMS"}),
        pick(): (replace(return_items=[]), {"NOTHING_RECEIVED", "MISSING_ITEMS"}),
        pick(): (
            on_items(lambda item: {**item, "quantity_good": None}),
            {"NOTHING_RECEIVED", "MISSING_ITEMS"},
        ),
    }
    unreadable_receipts: dict[str, tuple[Mutator, str]] = {
        pick(): (on_items(lambda item: {**item, "quantity_good": "two"}), "quantity_good"),
        pick(): (on_items(lambda item: {**item, "quantity_damaged": -1}), "negative"),
        pick(): (replace(id="one-eight-zero"), "id"),
    }
    split = _twice_one_sku(truth, taken | {r for r in truth.returns if r not in arrived})
    taken.add(split)
    processed: dict[str, Mutator] = {
        pick(): on_items(lambda item: [item] + [{**item, "quantity_good": 0}] * 400),
        pick(): on_items(
            lambda item: {**item, "sku": f" {item['sku'].lower().replace('-', '－')}\t"}
        ),
        split: on_items(_split_good_units),
        pick(): _ids_as_strings,
    }
    # ...and Loop returns Loop serves badly when the receipt is reconciled.
    unreadable_loop: dict[str, tuple[Any, str]] = {
        pick(): (HTML_ERROR_PAGE, "HTML page"),
        pick(): (without("state"), "state"),
    }
    for rid, (mutate, _) in flagged.items():
        sandbox.whiplash.corrupt(_receipt(truth, rid), mutate)
    for rid, (mutate, _) in unreadable_receipts.items():
        sandbox.whiplash.corrupt(_receipt(truth, rid), mutate)
    for rid, mutate in processed.items():
        sandbox.whiplash.corrupt(_receipt(truth, rid), mutate)
    for rid, (page, _) in unreadable_loop.items():
        sandbox.loop.corrupt(rid, page)

    run = pipeline.run(RECEIPTS_DAG)
    assert run.state == "success"
    decisions = pipeline.store().get_decisions([_receipt(truth, rid) for rid in arrived])
    for rid, (_, reasons) in flagged.items():
        decision = decisions[_receipt(truth, rid)]
        assert str(decision.verdict) == "flag", rid
        assert set(decision.reason_codes) <= reasons and decision.reason_codes, decision
        assert len(sandbox.loop.notes_for(rid)) == 1, rid
    for rid in processed:
        assert str(decisions[_receipt(truth, rid)].verdict) == "process", rid
    undecided = {**unreadable_receipts, **unreadable_loop}
    problems = {r["loop_return_id"]: r for r in _csv_rows(run.folder, "unreadable")}
    for rid, (_, words) in undecided.items():
        assert _receipt(truth, rid) not in decisions, rid
        assert not sandbox.loop.actions_for(rid), rid
        assert words in problems[rid]["detail"], (rid, problems[rid])
    assert {problems[rid]["reason_code"] for rid in unreadable_receipts} == {
        "INVALID_WHIPLASH_DATA"
    }
    assert {problems[rid]["reason_code"] for rid in unreadable_loop} == {"INVALID_LOOP_DATA"}
    assert sum(len(ids) for ids in run.summary["unreadable"].values()) == len(undecided)
    # Every other receipt was decided and acted on exactly as without the bad ones.
    others = check_outcome(sandbox, pipeline.store(), ignore=[*flagged, *undecided])
    assert others.problems() == {}

    # The vendors serve the records properly again: the next run decides the ones left over
    # (the watermark stopped before them), and acts on each once.
    sandbox.whiplash.corruptions.clear()
    sandbox.loop.corruptions.clear()
    again = pipeline.run(RECEIPTS_DAG)
    assert again.state == "success"
    assert again.summary["unreadable"] == {}
    outcome = check_outcome(sandbox, pipeline.store(), ignore=flagged)
    assert outcome.problems() == {}
    calls = loop_calls(sandbox)["accepted"]
    for rid in flagged:
        assert (calls[f"{rid}:flag"], calls[f"{rid}:process"]) == (1, 0), rid
    assert pipeline.run(RECEIPTS_DAG).summary["actions"] == {}


def test_whiplash_items_are_found_by_normalised_sku(pipeline: Pipeline) -> None:
    """A Loop SKU typed differently from Whiplash's (case, full-width, spaces) maps to it."""
    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=10)
    victim = truth.rma_ids()[0]
    sandbox.loop.corrupt(victim, on_items(_unicode_and_whitespace))
    assert pipeline.run(RMA_DAG, {"return_ids": [victim]}).state == "success"
    units = _rma_units(sandbox, victim)
    assert units == truth.returns[victim].expected_units
    assert all(normalise_sku(sku) == sku for sku in units)


def test_a_bad_record_on_a_full_page_neither_ends_nor_breaks_the_listing(
    pipeline: Pipeline,
) -> None:
    """Paging counts the records the vendor sent, not the ones that validated: a bad record
    on a full page does not make it look like the last page."""
    from include.returns_sync import runtime

    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=30)
    assert pipeline.run(RMA_DAG).state == "success"
    sandbox.receive_packages({"exact": 1.0})
    receipts = sorted(f.consumer_return_id for f in truth.returns.values() if f.expected_verdict)
    bad = receipts[1]
    sandbox.whiplash.corrupt(bad, replace(status="three hundred"))
    invalid: list[Any] = []
    listed = list(
        runtime.whiplash_hook().list_consumer_returns(
            statuses=[300], per_page=2, on_invalid=lambda raw, error: invalid.append((raw, error))
        )
    )
    assert sorted(cr.id for cr in listed) == [r for r in receipts if r != bad]
    ((raw, error),) = invalid
    assert raw["id"] == bad and "status" in error.message
    strict = runtime.whiplash_hook().list_consumer_returns(statuses=[300], per_page=2)
    with pytest.raises(Exception, match="did not validate"):
        list(strict)  # without `on_invalid` the caller still hears about it


def test_one_malformed_return_in_the_loop_list_is_reported_not_fatal(pipeline: Pipeline) -> None:
    from datetime import UTC, datetime, timedelta

    from include.returns_sync import runtime

    sandbox = pipeline.sandbox
    truth = sandbox.seed_day(n=20)
    victim = truth.rma_ids()[3]
    sandbox.loop.corrupt(victim, replace(state=None))
    invalid: list[Any] = []
    now = datetime.now(UTC)
    listed = list(
        runtime.loop_hook().list_returns(
            start=now - timedelta(days=2),
            end=now,
            state=None,
            page_size=5,
            on_invalid=lambda raw, error: invalid.append((raw, error)),
        )
    )
    assert victim not in {r.id for r in listed}
    assert len(listed) + 1 == len([f for f in truth.returns.values() if f.state != "cancelled"])
    ((raw, error),) = invalid
    assert raw["id"] == victim and "state" in error.message
