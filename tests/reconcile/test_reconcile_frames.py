"""Specification of the expected / received / context frames built from vendor records."""

from __future__ import annotations

import pandas as pd
from reconcile_builders import consumer_return, loop_return

from include.returns_sync.domain.sku import BLANK_SKU
from include.returns_sync.models import LoopReturn
from include.returns_sync.reconcile import (
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
)
from include.returns_sync.reconcile.frames import NO_SKU


def test_expected_counts_one_unit_per_loop_line_item_and_sums_their_prices() -> None:
    loop = LoopReturn.model_validate(
        {
            "id": 4711,
            "state": "open",
            "line_items": [
                {"line_item_id": 1, "sku": "SKU-1", "price": "19.99"},
                {"line_item_id": 2, "sku": " sku-1 ", "price": "19.99"},
                {"line_item_id": 3, "sku": "SKU-2", "price": None},
                {"line_item_id": 4, "sku": None, "price": "5"},
            ],
        }
    )
    frame = expected_frame([(12, loop)])
    assert list(frame.columns) == ["whiplash_return_id", "loop_return_id", "sku", "units", "value"]
    assert frame.astype({"sku": "str", "loop_return_id": "str"}).to_dict("records") == [
        {
            "whiplash_return_id": 12,
            "loop_return_id": "4711",
            "sku": NO_SKU,
            "units": 1,
            "value": 5.0,
        },
        {
            "whiplash_return_id": 12,
            "loop_return_id": "4711",
            "sku": "SKU-1",
            "units": 2,
            "value": 39.98,
        },
        {
            "whiplash_return_id": 12,
            "loop_return_id": "4711",
            "sku": "SKU-2",
            "units": 1,
            "value": 0.0,
        },
    ]


def test_received_sums_repeated_skus_and_keeps_items_without_a_sku() -> None:
    receipt = consumer_return(
        8, "L8", [("SKU-1", 1, 0), ("sku-1", 0, 1), (None, 2, 0), ("  ", 1, 0), ("SKU-3", 0, 0)]
    )
    frame = received_frame([receipt])
    assert list(frame.columns) == ["whiplash_return_id", "sku", "good", "damaged"]
    assert frame.astype({"sku": "str"}).to_dict("records") == [
        {"whiplash_return_id": 8, "sku": BLANK_SKU, "good": 3, "damaged": 0},
        {"whiplash_return_id": 8, "sku": "SKU-1", "good": 1, "damaged": 1},
        {"whiplash_return_id": 8, "sku": "SKU-3", "good": 0, "damaged": 0},
    ]


def test_received_reads_what_arrived_not_what_whiplash_expected() -> None:
    receipt = consumer_return(8, "L8", [("SKU-1", 1, 0)]).model_copy(deep=True)
    item = receipt.return_items[0].model_copy(update={"quantity": 5})
    frame = received_frame([receipt.model_copy(update={"return_items": [item]})])
    assert frame[["good", "damaged"]].to_numpy().tolist() == [[1, 0]]


def test_frames_of_nothing_are_empty_but_typed() -> None:
    expected = expected_frame([])
    received = received_frame([])
    context = context_frame([])
    assert expected.empty and received.empty and context.empty
    assert expected["units"].dtype == "int64" and expected["value"].dtype == "float64"
    assert received["good"].dtype == "int64"
    assert context["known"].dtype == bool


def test_a_return_without_line_items_expects_nothing() -> None:
    assert expected_frame([(1, loop_return("L1", []))]).empty


def test_context_keeps_unknown_loop_returns_as_missing_values() -> None:
    frame = context_frame(
        [ReturnContext(1, "L1", "open", True), ReturnContext(2, None, None, False)]
    )
    assert frame["whiplash_return_id"].tolist() == [1, 2]
    assert frame["known"].tolist() == [True, False]
    assert pd.isna(frame["loop_return_id"].iloc[1]) and pd.isna(frame["loop_state"].iloc[1])
