"""Builders for reconciliation tests: vendor-shaped records in, a Reconciliation out.

Tests describe a receipt the way a support agent would ("expected 2 x SKU-1, received 1 good
and 1 damaged"); these helpers turn that into real `LoopReturn` / `ConsumerReturn` records
(parsed from vendor-shaped JSON) and run them through frames.py and the engine, as the DAG does.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from include.returns_sync.models import ConsumerReturn, LoopReturn
from include.returns_sync.reconcile import (
    Criteria,
    Reconciliation,
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
    reconcile,
)

#: (sku, units) as Loop expects them; each unit becomes one Loop line item.
Expected = Sequence[tuple[str | None, int]]
#: (sku, good, damaged) as Whiplash received them; one Whiplash return item each.
Received = Sequence[tuple[str | None, int, int]]


def loop_return(
    loop_id: str, expected: Expected, *, state: str = "open", price: str = "10.00"
) -> LoopReturn:
    """A Loop return with one line item per expected unit, as Loop's API sends it."""
    line_items: list[dict[str, Any]] = []
    for sku, units in expected:
        for _ in range(units):
            line_items.append({"line_item_id": 1000 + len(line_items), "sku": sku, "price": price})
    return LoopReturn.model_validate({"id": loop_id, "state": state, "line_items": line_items})


def consumer_return(whiplash_id: int, loop_id: str, received: Received) -> ConsumerReturn:
    """A completed Whiplash consumer return as its API sends it (quantities as given)."""
    items = [
        {
            "id": 500 + index,
            "sku": sku,
            "quantity": good + damaged,
            "quantity_good": good,
            "quantity_damaged": damaged,
        }
        for index, (sku, good, damaged) in enumerate(received)
    ]
    return ConsumerReturn.model_validate(
        {
            "id": whiplash_id,
            "status": 300,
            "reference": loop_id,
            "originator": {"original_id": loop_id},
            "return_items": items,
        }
    )


def decide(
    expected: Expected,
    received: Received,
    criteria: Criteria | None = None,
    *,
    state: str | None = "open",
    known: bool = True,
    price: str = "10.00",
) -> Reconciliation:
    """Reconcile a single return (Whiplash id 1, Loop id "L1") and return the whole result."""
    loop = loop_return("L1", expected, state=state or "open", price=price)
    return reconcile(
        expected_frame([(1, loop)]),
        received_frame([consumer_return(1, "L1", received)]),
        context_frame([ReturnContext(1, "L1", state, known)]),
        criteria or Criteria(),
    )


def verdict_of(result: Reconciliation, whiplash_id: int = 1) -> tuple[str, tuple[str, ...]]:
    row = result.verdicts.set_index("whiplash_return_id").loc[whiplash_id]
    return str(row["verdict"]), tuple(row["reason_codes"])


def note_of(result: Reconciliation, whiplash_id: int = 1) -> str | None:
    note = result.verdicts.set_index("whiplash_return_id").loc[whiplash_id, "note"]
    return None if note is None else str(note)


def criteria(**options: Any) -> Criteria:
    """Criteria with some options changed; thresholds may be given as strings."""
    if isinstance(options.get("value_threshold"), str):
        options["value_threshold"] = Decimal(options["value_threshold"])
    return Criteria.model_validate(options)
