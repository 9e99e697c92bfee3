"""Build the two sides of a reconciliation (expected, received) and its context as DataFrames.

This is the only place that walks typed records one by one; everything after it is vectorised
over the batch. Both sides are keyed by (whiplash_return_id, normalised SKU) and repeated SKUs
are summed here, explicitly: Loop has one line item per unit (two units of SKU-1 are two line
items), and Whiplash may list a SKU on two return items. The engine sums again after applying
the merchant's SKU aliases, which can make two different SKUs one. SKUs and Loop ids come back
as categoricals (a batch repeats a few thousand SKUs a million times), sorted by return and SKU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pandas as pd

from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.models import ConsumerReturn, LoopReturn

#: A Loop line item without a SKU. Deliberately different from Whiplash's `<BLANK>`: a unit we
#: cannot identify on one side never "matches" an unidentified unit on the other.
NO_SKU = "<NO SKU>"

EXPECTED_COLUMNS = ("whiplash_return_id", "loop_return_id", "sku", "units", "value")
RECEIVED_COLUMNS = ("whiplash_return_id", "sku", "good", "damaged")
CONTEXT_COLUMNS = ("whiplash_return_id", "loop_return_id", "loop_state", "known")


class ReturnContext(NamedTuple):
    """What the pipeline knows about one Whiplash return besides its items."""

    whiplash_return_id: int
    #: The Loop return the RMA was created for (None if the RMA names none).
    loop_return_id: str | None
    #: The Loop return's current state; None when the Loop return could not be found.
    loop_state: str | None
    #: True when our state store holds the RMA (we created it).
    known: bool


def expected_frame(pairs: Iterable[tuple[int, LoopReturn]]) -> pd.DataFrame:
    """Units and value Loop expects back, per (Whiplash return, SKU).

    `pairs` gives each Whiplash return id with the Loop return it was created for. Every Loop
    line item is one unit; `value` is the sum of their prices (a missing price counts as 0).
    """
    whiplash_ids: list[int] = []
    loop_ids: list[str | None] = []
    skus: list[str] = []
    prices: list[float] = []
    for whiplash_return_id, loop_return in pairs:
        for line_item in loop_return.line_items:
            whiplash_ids.append(whiplash_return_id)
            loop_ids.append(loop_return.id)
            skus.append(_expected_sku(line_item.sku))
            prices.append(float(line_item.price) if line_item.price is not None else 0.0)
    units = pd.DataFrame(
        {
            "whiplash_return_id": pd.Series(whiplash_ids, dtype="int64"),
            "loop_return_id": pd.Series(loop_ids, dtype="str"),
            "sku": pd.Series(skus, dtype="str"),
            "units": pd.Series(1, index=range(len(skus)), dtype="int64"),
            "value": pd.Series(prices, dtype="float64"),
        }
    )
    keys = ["whiplash_return_id", "loop_return_id", "sku"]
    summed = units.groupby(keys, sort=True, dropna=False)[["units", "value"]].sum()
    return _categorical(summed.reset_index()[list(EXPECTED_COLUMNS)], "loop_return_id", "sku")


def received_frame(returns: Iterable[ConsumerReturn]) -> pd.DataFrame:
    """Good and damaged units Whiplash received, per (Whiplash return, SKU).

    Whiplash's own `quantity` (what the RMA expected) is not used: Loop's line items are the
    source of truth for what was expected. An item without a SKU is kept as `<BLANK>` so its
    units surface as UNEXPECTED_SKU instead of vanishing.
    """
    whiplash_ids: list[int] = []
    skus: list[str] = []
    good: list[int] = []
    damaged: list[int] = []
    for consumer_return in returns:
        for item in consumer_return.return_items:
            whiplash_ids.append(consumer_return.id)
            skus.append(normalise_sku(item.sku))
            good.append(item.quantity_good)
            damaged.append(item.quantity_damaged)
    lines = pd.DataFrame(
        {
            "whiplash_return_id": pd.Series(whiplash_ids, dtype="int64"),
            "sku": pd.Series(skus, dtype="str"),
            "good": pd.Series(good, dtype="int64"),
            "damaged": pd.Series(damaged, dtype="int64"),
        }
    )
    summed = lines.groupby(["whiplash_return_id", "sku"], sort=True)[["good", "damaged"]].sum()
    return _categorical(summed.reset_index()[list(RECEIVED_COLUMNS)], "sku")


def context_frame(rows: Iterable[ReturnContext]) -> pd.DataFrame:
    """One row per Whiplash return being reconciled: its Loop return, Loop state and ownership."""
    records = list(rows)
    return pd.DataFrame(
        {
            "whiplash_return_id": pd.Series(
                [row.whiplash_return_id for row in records], dtype="int64"
            ),
            "loop_return_id": pd.Series([row.loop_return_id for row in records], dtype="str"),
            "loop_state": pd.Series([row.loop_state for row in records], dtype="str"),
            "known": pd.Series([bool(row.known) for row in records], dtype="bool"),
        }
    )


def _categorical(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Repeated strings (SKUs, Loop ids) as categoricals: less memory, factorised for free."""
    return frame.astype({column: "category" for column in columns})


def _expected_sku(raw: str | None) -> str:
    sku = normalise_sku(raw)
    return NO_SKU if sku == BLANK_SKU else sku
