"""Specification of the optional dispositions: which outcome each Loop line item gets, once.

Planning is a pure function of the Loop return and the receipt's lines; sending is guarded by
the real state store on a SQLite file, with a small in-memory Loop standing in for the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.clients.errors import LoopActionRejected, VendorError
from include.returns_sync.domain.dispositions import (
    Dispositions,
    plan_and_record,
    plan_dispositions,
    send_dispositions,
)
from include.returns_sync.models import LoopReturn
from include.returns_sync.state import StateStore

ON = Dispositions(enabled=True)


def loop_return(*skus: str | None) -> LoopReturn:
    """One line item per unit, ids 11, 12, ... in the order given."""
    items = [{"line_item_id": 11 + i, "sku": sku} for i, sku in enumerate(skus)]
    return LoopReturn.model_validate({"id": "77", "state": "open", "line_items": items})


def outcomes(items: list[dict[str, Any]]) -> dict[int, str]:
    return {item["line_item_id"]: item["disposition_outcome"] for item in items}


@pytest.mark.parametrize(
    ("skus", "received", "expected"),
    [
        (("A", "A"), {"A": (2, 0)}, {11: "back_to_stock", 12: "back_to_stock"}),
        (("A", "A"), {"A": (1, 1)}, {11: "back_to_stock", 12: "resale_hold"}),
        (("A", "A"), {"A": (0, 1)}, {11: "resale_hold", 12: "missing"}),
        (("A", "B"), {"A": (1, 0)}, {11: "back_to_stock", 12: "missing"}),
        (("A",), {"A": (3, 2), "X": (1, 0)}, {11: "back_to_stock"}),  # extra units: no item
        ((None,), {"<BLANK>": (1, 0)}, {11: "missing"}),  # a unit without SKU matches nothing
    ],
    ids=["all good", "one damaged", "short", "a SKU missing", "overage", "no SKU"],
)
def test_each_line_item_gets_the_outcome_of_one_received_unit(
    skus: tuple[str | None, ...], received: dict[str, tuple[int, int]], expected: dict[int, str]
) -> None:
    assert outcomes(plan_dispositions(loop_return(*skus), received, ON)) == expected


def test_skus_are_compared_normalised_and_through_the_merchants_aliases() -> None:
    planned = plan_dispositions(
        loop_return(" sku-1 ", "alt-2"), {"SKU-1": (1, 0), "SKU-2": (0, 1)}, ON, {"ALT-2": "SKU-2"}
    )
    assert outcomes(planned) == {11: "back_to_stock", 12: "resale_hold"}


def test_the_merchant_chooses_the_outcomes_and_the_processor() -> None:
    options = Dispositions(
        enabled=True, good="donate", damaged="recycle", return_processor="wh@example.com"
    )
    planned = plan_dispositions(loop_return("A", "A", "A"), {"A": (1, 1)}, options)
    assert outcomes(planned) == {11: "donate", 12: "recycle", 13: "missing"}
    assert {item["return_processor"] for item in planned} == {"wh@example.com"}
    assert planned[1]["note"] == "returns-sync: received damaged at the warehouse"


@dataclass
class FakeLoop:
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    fail_next: Exception | None = None

    def assess_dispositions(self, items: list[dict[str, Any]]) -> None:
        self.calls.append(items)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc


def rejected(message: str) -> LoopActionRejected:
    return LoopActionRejected("loop", 200, "UNPROCESSABLE", message, "POST", "/dispositions")


def vendor_failure(status: int | None) -> VendorError:
    return VendorError("loop", status, None, f"HTTP {status}", "POST", "/dispositions")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


def send(loop: FakeLoop, store: StateStore) -> str:
    return send_dispositions(loop, store, "77").outcome


def acted(store: StateStore) -> None:
    store.begin_action("77", "process")
    store.finish_action("77", "process", "sent")


def test_planned_dispositions_wait_for_the_process_then_go_exactly_once(
    store: StateStore,
) -> None:
    items = plan_dispositions(loop_return("A", "A"), {"A": (1, 1)}, ON)
    assert plan_and_record(store, "77", items) is True
    assert plan_and_record(store, "77", []) is False  # a later run cannot change the plan
    assert store.waiting_dispositions() == []  # the Process is not done yet
    acted(store)
    assert store.waiting_dispositions() == ["77"]
    loop = FakeLoop()
    assert send(loop, store) == "sent"
    assert send(loop, store) == "already_done"
    assert loop.calls == [items]
    assert store.waiting_dispositions() == []


def test_a_lost_answer_is_sent_again_with_the_same_items_and_a_refusal_is_final(
    store: StateStore,
) -> None:
    items = plan_dispositions(loop_return("A"), {"A": (1, 0)}, ON)
    plan_and_record(store, "77", items)
    acted(store)
    loop = FakeLoop(fail_next=vendor_failure(None))
    assert send(loop, store) == "unknown"
    assert store.waiting_dispositions() == ["77"]
    assert send(loop, store) == "sent"
    assert loop.calls == [items, items]

    store.begin_action("78", "disposition", '[{"line_item_id": 1}]')
    store.begin_action("78", "process")
    store.finish_action("78", "process", "sent")
    refusing = FakeLoop(fail_next=rejected("line item 1 is not ours"))
    outcome = send_dispositions(refusing, store, "78")
    assert outcome.outcome == "failed"
    assert store.waiting_dispositions() == []


def test_a_refused_disposition_does_not_hide_an_unfinished_process(store: StateStore) -> None:
    store.record_decision(5, verdict="process", reason_codes=[], loop_return_id="77", note=None)
    plan_and_record(store, "77", [{"line_item_id": 11, "disposition_outcome": "missing"}])
    store.finish_action("77", "disposition", "failed", "403")
    assert list(store.unfinished_decisions()) == [5]
