"""Specification of the reconciliation engine: one verdict per return, one row per SKU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from reconcile_builders import (
    Expected,
    Received,
    consumer_return,
    criteria,
    decide,
    loop_return,
    note_of,
    verdict_of,
)

from include.returns_sync.domain.sku import BLANK_SKU
from include.returns_sync.reconcile import (
    Criteria,
    ReasonCode,
    ReconciliationInputError,
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
    reconcile,
)
from include.returns_sync.reconcile.engine import LINE_COLUMNS, VERDICT_COLUMNS
from include.returns_sync.reconcile.frames import NO_SKU

MISSING = ReasonCode.MISSING_ITEMS.value
EXTRA = ReasonCode.EXTRA_ITEMS.value
UNEXPECTED = ReasonCode.UNEXPECTED_SKU.value
DAMAGED = ReasonCode.DAMAGED.value
OVER = ReasonCode.OVER_VALUE_THRESHOLD.value
NOTHING = ReasonCode.NOTHING_RECEIVED.value

# (name, expected, received, criteria options, verdict, reason codes)
DEFAULT_CRITERIA_CASES: list[
    tuple[str, Expected, Received, dict[str, Any], str, tuple[str, ...]]
] = [
    ("everything back in good condition", [("SKU-1", 2)], [("SKU-1", 2, 0)], {}, "process", ()),
    (
        "SKUs compare ignoring case, NFKC width and whitespace",
        [("SKU-1", 1), ("ab  c", 1)],
        [(" sku-1\t", 1, 0), ("ＡＢ\u00a0C", 1, 0)],
        {},
        "process",
        (),
    ),
    ("one unit short", [("SKU-1", 2)], [("SKU-1", 1, 0)], {}, "flag", (MISSING,)),
    (
        "a whole SKU never arrived",
        [("SKU-1", 1), ("SKU-2", 1)],
        [("SKU-1", 1, 0)],
        {},
        "flag",
        (MISSING,),
    ),
    ("a unit arrived damaged", [("SKU-1", 2)], [("SKU-1", 1, 1)], {}, "flag", (DAMAGED,)),
    ("one unit too many", [("SKU-1", 1)], [("SKU-1", 2, 0)], {}, "flag", (EXTRA,)),
    (
        "a SKU Loop never expected",
        [("SKU-1", 1)],
        [("SKU-1", 1, 0), ("SKU-9", 1, 0)],
        {},
        "flag",
        (UNEXPECTED,),
    ),
    (
        "a Whiplash item without a SKU is unexpected",
        [("SKU-1", 1)],
        [("SKU-1", 1, 0), (None, 1, 0), ("   ", 0, 1)],
        {},
        "flag",
        (UNEXPECTED,),
    ),
    (
        "the wrong SKU instead of the right one",
        [("SKU-1", 1)],
        [("SKU-2", 1, 0)],
        {},
        "flag",
        (MISSING, UNEXPECTED),
    ),
    (
        "an extra unit that is damaged",
        [("SKU-1", 1)],
        [("SKU-1", 1, 1)],
        {},
        "flag",
        (DAMAGED, EXTRA),
    ),
    ("receipt completed with no items", [("SKU-1", 2)], [], {}, "flag", (NOTHING, MISSING)),
    (
        "receipt lists the items but counted none",
        [("SKU-1", 2)],
        [("SKU-1", 0, 0)],
        {},
        "flag",
        (NOTHING, MISSING),
    ),
    (
        "expected value over the review threshold",
        [("SKU-1", 2)],
        [("SKU-1", 2, 0)],
        {"value_threshold": "19.99"},
        "flag",
        (OVER,),
    ),
    (
        "expected value exactly at the threshold is not over it",
        [("SKU-1", 2)],
        [("SKU-1", 2, 0)],
        {"value_threshold": "20.00"},
        "process",
        (),
    ),
    (
        "the threshold flags whatever else is wrong too",
        [("SKU-1", 3)],
        [("SKU-1", 2, 0)],
        {"value_threshold": "0"},
        "flag",
        (MISSING, OVER),
    ),
]

OPTION_CASES: list[tuple[str, Expected, Received, dict[str, Any], str, tuple[str, ...]]] = [
    (
        "on_damaged: process accepts damaged units",
        [("SKU-1", 2)],
        [("SKU-1", 1, 1)],
        {"on_damaged": "process"},
        "process",
        (),
    ),
    (
        "on_damaged: process does not hide a shortfall",
        [("SKU-1", 3)],
        [("SKU-1", 1, 1)],
        {"on_damaged": "process"},
        "flag",
        (MISSING,),
    ),
    (
        "on_shortfall: process accepts missing units",
        [("SKU-1", 2), ("SKU-2", 1)],
        [("SKU-1", 1, 0)],
        {"on_shortfall": "process"},
        "process",
        (),
    ),
    (
        "on_shortfall: process still flags a receipt with nothing in it",
        [("SKU-1", 2)],
        [],
        {"on_shortfall": "process"},
        "flag",
        (NOTHING,),
    ),
    (
        "on_overage: ignore leaves extra units to the warehouse",
        [("SKU-1", 1)],
        [("SKU-1", 3, 0)],
        {"on_overage": "ignore"},
        "process",
        (),
    ),
    (
        "on_overage: ignore does not excuse a damaged extra unit",
        [("SKU-1", 1)],
        [("SKU-1", 1, 1)],
        {"on_overage": "ignore"},
        "flag",
        (DAMAGED,),
    ),
    (
        "on_unexpected_sku: ignore accepts stray SKUs",
        [("SKU-1", 1)],
        [("SKU-1", 1, 0), ("SKU-9", 2, 1), (None, 1, 0)],
        {"on_unexpected_sku": "ignore"},
        "process",
        (),
    ),
    (
        "on_unexpected_sku: ignore does not excuse the missing expected SKU",
        [("SKU-1", 1)],
        [("SKU-9", 1, 0)],
        {"on_unexpected_sku": "ignore"},
        "flag",
        (MISSING,),
    ),
    (
        "sku_aliases map an alternative SKU onto the expected one",
        [("TS-RED-M", 1)],
        [("tshirt red m", 1, 0)],
        {"sku_aliases": {"TSHIRT RED M": "TS-RED-M"}},
        "process",
        (),
    ),
    (
        "without the alias the same receipt is a wrong SKU",
        [("TS-RED-M", 1)],
        [("tshirt red m", 1, 0)],
        {},
        "flag",
        (MISSING, UNEXPECTED),
    ),
    (
        "an alias and its canonical SKU on one receipt are summed, not doubled",
        [("TS-RED-M", 2)],
        [("TS-RED-M", 1, 0), ("0012345", 1, 0)],
        {"sku_aliases": {"0012345": "ts-red-m"}},
        "process",
        (),
    ),
    (
        "aliases apply to Loop's side too",
        [("0012345", 1)],
        [("TS-RED-M", 1, 0)],
        {"sku_aliases": {"0012345": "TS-RED-M"}},
        "process",
        (),
    ),
    (
        "every option relaxed: only the value threshold flags",
        [("SKU-1", 2)],
        [("SKU-1", 0, 1), ("SKU-1", 2, 0), ("SKU-7", 1, 0)],
        {
            "on_damaged": "process",
            "on_shortfall": "process",
            "on_overage": "ignore",
            "on_unexpected_sku": "ignore",
            "value_threshold": "5",
        },
        "flag",
        (OVER,),
    ),
]


@pytest.mark.parametrize(
    ("expected", "received", "options", "verdict", "codes"),
    [pytest.param(*case[1:], id=case[0]) for case in DEFAULT_CRITERIA_CASES + OPTION_CASES],
)
def test_each_receipt_gets_the_verdict_and_reasons_the_criteria_call_for(
    expected: Expected,
    received: Received,
    options: dict[str, Any],
    verdict: str,
    codes: tuple[str, ...],
) -> None:
    result = decide(expected, received, criteria(**options))
    assert verdict_of(result) == (verdict, codes)
    assert (note_of(result) is not None) == (verdict == "flag")


@pytest.mark.parametrize("state", ["closed", "cancelled", "expired", "review", None])
def test_a_loop_return_that_is_not_open_is_never_acted_on(state: str | None) -> None:
    result = decide([("SKU-1", 1)], [("SKU-9", 1, 0)], state=state)
    assert verdict_of(result) == ("skip", (ReasonCode.NOT_ACTIONABLE.value,))
    assert note_of(result) is None


def test_loop_state_compares_ignoring_case_and_spaces() -> None:
    result = decide([("SKU-1", 1)], [("SKU-1", 1, 0)], state=" Open ")
    assert verdict_of(result) == ("process", ())


def test_a_whiplash_return_we_did_not_create_is_skipped_whatever_arrived() -> None:
    result = decide([("SKU-1", 1)], [("SKU-1", 1, 0)], known=False, state="closed")
    assert verdict_of(result) == ("skip", (ReasonCode.UNKNOWN_RETURN.value,))
    assert note_of(result) is None


def test_the_line_table_accounts_for_every_unit_of_the_worked_example() -> None:
    result = decide(
        [("SKU-1", 2), ("SKU-2", 1), ("SKU-3", 1)],
        [("sku-1", 1, 1), ("SKU-3", 2, 0), ("SKU-9", 1, 0), ("SKU-8", 0, 0)],
        price="12.50",
    )
    assert tuple(result.lines.columns) == LINE_COLUMNS
    assert tuple(result.verdicts.columns) == VERDICT_COLUMNS
    lines = result.lines.assign(sku=result.lines["sku"].astype("str"))
    rows = lines.drop(columns=["whiplash_return_id", "loop_return_id"]).to_dict("records")
    assert rows == [
        {**_line("SKU-1", 2, 1, 1, 0, 0), "expected_value": 25.0},
        {**_line("SKU-2", 1, 0, 0, 1, 0), "expected_value": 12.5},
        {**_line("SKU-3", 1, 2, 0, 0, 1), "expected_value": 12.5},
        {**_line("SKU-9", 0, 1, 0, 0, 1, unexpected=True), "expected_value": 0.0},
    ]
    assert set(lines["loop_return_id"]) == {"L1"}
    assert result.only_expected["sku"].astype("str").tolist() == ["SKU-2"]
    assert result.only_received["sku"].astype("str").tolist() == ["SKU-9"]
    assert result.matched["sku"].astype("str").tolist() == ["SKU-1", "SKU-3"]
    totals = result.verdicts.iloc[0]
    assert (totals["expected"], totals["good"], totals["damaged"]) == (4, 4, 1)
    assert (totals["missing"], totals["extra"], totals["unexpected_units"]) == (1, 2, 1)
    assert totals["expected_value"] == 50.0


def _line(
    sku: str, expected: int, good: int, damaged: int, missing: int, extra: int, **more: bool
) -> dict[str, Any]:
    return {
        "sku": sku,
        "expected": expected,
        "good": good,
        "damaged": damaged,
        "missing": missing,
        "extra": extra,
        "unexpected": more.get("unexpected", False),
    }


def test_a_loop_unit_without_sku_never_matches_a_whiplash_item_without_sku() -> None:
    result = decide([(None, 1)], [(None, 1, 0)])
    assert verdict_of(result) == ("flag", (MISSING, UNEXPECTED))
    assert result.lines["sku"].astype("str").tolist() == sorted([BLANK_SKU, NO_SKU])


def test_float_sums_of_cents_do_not_tip_a_return_over_the_threshold() -> None:
    # 3 x 33.33 in binary floating point is 99.99000000000001.
    result = decide(
        [("SKU-1", 3)], [("SKU-1", 3, 0)], criteria(value_threshold="99.99"), price="33.33"
    )
    assert verdict_of(result) == ("process", ())


def test_a_batch_gets_one_verdict_per_return_sorted_by_whiplash_id() -> None:
    loops = {
        "L7": loop_return("L7", [("SKU-1", 1)]),
        "L3": loop_return("L3", [("SKU-2", 2)]),
        "L5": loop_return("L5", [("SKU-3", 1)]),
    }
    result = reconcile(
        expected_frame([(7, loops["L7"]), (3, loops["L3"]), (5, loops["L5"])]),
        received_frame(
            [
                consumer_return(3, "L3", [("SKU-2", 2, 0)]),
                consumer_return(7, "L7", [("SKU-1", 0, 1)]),
            ]
        ),
        context_frame(
            [
                ReturnContext(7, "L7", "open", True),
                ReturnContext(3, "L3", "open", True),
                ReturnContext(5, "L5", "open", True),
                ReturnContext(9, None, None, False),
            ]
        ),
        Criteria(),
    )
    verdicts = result.verdicts
    assert verdicts["whiplash_return_id"].tolist() == [3, 5, 7, 9]
    assert verdicts["loop_return_id"].tolist()[:3] == ["L3", "L5", "L7"]
    assert pd.isna(verdicts["loop_return_id"].iloc[3])
    assert verdicts["verdict"].astype("str").tolist() == ["process", "flag", "flag", "skip"]
    assert result.summary() == {
        "returns": 4,
        "lines": 3,
        "verdicts": {"process": 1, "flag": 2, "skip": 1},
        "reason_codes": {
            "UNKNOWN_RETURN": 1,
            "NOT_ACTIONABLE": 0,
            "NOTHING_RECEIVED": 1,
            "MISSING_ITEMS": 1,
            "DAMAGED": 1,
            "EXTRA_ITEMS": 0,
            "UNEXPECTED_SKU": 0,
            "OVER_VALUE_THRESHOLD": 0,
        },
        "units": {"expected": 4, "good": 2, "damaged": 1, "missing": 1, "extra": 0},
    }


def test_the_loop_return_id_is_taken_from_expected_when_context_lacks_it() -> None:
    loop = loop_return("L1", [("SKU-1", 1)])
    result = reconcile(
        expected_frame([(1, loop)]),
        received_frame([consumer_return(1, "L1", [("SKU-1", 1, 0)])]),
        context_frame([ReturnContext(1, None, "open", True)]),
        Criteria(),
    )
    assert result.verdicts["loop_return_id"].tolist() == ["L1"]
    assert result.lines["loop_return_id"].tolist() == ["L1"]


def test_hand_built_frames_with_raw_skus_and_plain_dtypes_are_accepted() -> None:
    expected = pd.DataFrame(
        {
            "whiplash_return_id": [1, 1, 2],
            "loop_return_id": ["L1", "L1", "L2"],
            "sku": [" sku-1", "SKU-1 ", "alt-2"],
            "units": [1, 1, 1],
            "value": [5.0, 5.0, 7.5],
        }
    )
    received = pd.DataFrame(
        {"whiplash_return_id": [2, 1], "sku": ["SKU-2", "Sku-1"], "good": [1, 2], "damaged": [0, 0]}
    )
    context = pd.DataFrame(
        {
            "whiplash_return_id": [2, 1],
            "loop_return_id": [None, "L1"],
            "loop_state": ["open", "open"],
            "known": [True, True],
        },
    )
    result = reconcile(expected, received, context, criteria(sku_aliases={"ALT-2": "SKU-2"}))
    assert result.verdicts["verdict"].astype("str").tolist() == ["process", "process"]
    assert result.verdicts["loop_return_id"].tolist() == ["L1", "L2"]
    assert result.lines["expected"].tolist() == [2, 1]


def test_an_empty_batch_reconciles_to_empty_tables() -> None:
    result = reconcile(expected_frame([]), received_frame([]), context_frame([]), Criteria())
    assert result.lines.empty and result.verdicts.empty
    assert result.summary()["verdicts"] == {"process": 0, "flag": 0, "skip": 0}


def _frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    loop = loop_return("L1", [("SKU-1", 2)])
    return (
        expected_frame([(1, loop)]),
        received_frame([consumer_return(1, "L1", [("SKU-1", 2, 0)])]),
        context_frame([ReturnContext(1, "L1", "open", True)]),
    )


def _drop(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.drop(columns=[column])


def _set(frame: pd.DataFrame, column: str, values: Any) -> pd.DataFrame:
    return frame.assign(**{column: values})


BAD_INPUTS: list[tuple[str, str, Any, str]] = [
    ("received", "missing good", lambda f: _drop(f, "good"), "received: missing column(s) good"),
    (
        "expected",
        "return not in context",
        lambda f: _set(f, "whiplash_return_id", 99),
        "expected: whiplash_return_id not in context: 99",
    ),
    (
        "context",
        "repeated return",
        lambda f: pd.concat([f, f], ignore_index=True),
        "context: whiplash_return_id must be unique; repeated: 1",
    ),
    (
        "received",
        "negative count",
        lambda f: _set(f, "good", -1),
        "received.good: negative unit counts on whiplash_return_id 1",
    ),
    (
        "expected",
        "fractional units",
        lambda f: _set(f, "units", 1.5),
        "expected.units: unit counts must be integers",
    ),
    (
        "expected",
        "null value",
        lambda f: _set(f, "value", np.nan),
        "expected.value: null or infinite amounts",
    ),
    (
        "context",
        "known as text",
        lambda f: _set(f, "known", "yes"),
        "context.known: must be booleans without nulls",
    ),
    (
        "received",
        "null return id",
        lambda f: _set(f, "whiplash_return_id", pd.array([None], dtype="Int64")),
        "received: whiplash_return_id must be integers without nulls",
    ),
    (
        "context",
        "a different Loop return",
        lambda f: _set(f, "loop_return_id", "L2"),
        "expected: loop_return_id differs from context for whiplash_return_id 1",
    ),
]


@pytest.mark.parametrize(
    ("side", "change", "message"),
    [pytest.param(side, change, message, id=name) for side, name, change, message in BAD_INPUTS],
)
def test_malformed_input_fails_naming_the_frame_and_column(
    side: str, change: Any, message: str
) -> None:
    frames = dict(zip(("expected", "received", "context"), _frames(), strict=True))
    frames[side] = change(frames[side])
    with pytest.raises(ReconciliationInputError) as failure:
        reconcile(frames["expected"], frames["received"], frames["context"], Criteria())
    assert message in str(failure.value)
