"""Properties of reconciliation that hold for every batch, checked with hypothesis.

No unit is ever lost (expected = good + damaged + missing - extra on every line, totals per
return preserved); verdicts do not depend on row order or on how SKUs are spelt; and the engine
decides exactly what the plain per-return loop in tests/support/baseline_reconcile.py decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from reconcile_builders import Expected, Received, consumer_return, loop_return

from include.returns_sync.reconcile import (
    Criteria,
    Reconciliation,
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
    reconcile,
)
from tests.support.baseline_reconcile import baseline_verdicts

SKUS = ["SKU-1", "SKU-2", "ab 3", "Über-4", "x"]
SETTINGS = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Receipt:
    whiplash_id: int
    expected: Expected
    received: Received
    state: str | None
    known: bool
    price: str


@dataclass(frozen=True)
class Batch:
    receipts: tuple[Receipt, ...]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        pairs = [
            (r.whiplash_id, loop_return(f"L{r.whiplash_id}", r.expected, price=r.price))
            for r in self.receipts
            if r.state is not None
        ]
        received = [
            consumer_return(r.whiplash_id, f"L{r.whiplash_id}", r.received) for r in self.receipts
        ]
        context = [
            ReturnContext(r.whiplash_id, f"L{r.whiplash_id}", r.state, r.known)
            for r in self.receipts
        ]
        return expected_frame(pairs), received_frame(received), context_frame(context)


receipts = st.builds(
    Receipt,
    whiplash_id=st.just(0),
    expected=st.lists(st.tuples(st.sampled_from([*SKUS, None]), st.integers(1, 3)), max_size=4),
    received=st.lists(
        st.tuples(st.sampled_from([*SKUS, None, " "]), st.integers(0, 3), st.integers(0, 2)),
        max_size=5,
    ),
    state=st.sampled_from(["open", "open", "open", "closed", None]),
    known=st.sampled_from([True, True, True, False]),
    price=st.sampled_from(["0.00", "9.99", "33.33", "120.00"]),
)


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    drawn = draw(st.lists(receipts, min_size=1, max_size=6))
    ids = draw(
        st.lists(st.integers(1, 10_000), min_size=len(drawn), max_size=len(drawn), unique=True)
    )
    return Batch(
        tuple(
            Receipt(i, r.expected, r.received, r.state, r.known, r.price)
            for i, r in zip(ids, drawn, strict=True)
        )
    )


criteria_options = st.builds(
    Criteria,
    on_damaged=st.sampled_from(["flag", "process"]),
    on_shortfall=st.sampled_from(["flag", "process"]),
    on_overage=st.sampled_from(["flag", "ignore"]),
    on_unexpected_sku=st.sampled_from(["flag", "ignore"]),
    value_threshold=st.sampled_from([None, Decimal("0"), Decimal("19.98"), Decimal("99.99")]),
    sku_aliases=st.sampled_from([{}, {"x": "SKU-1"}, {"ab 3": "über-4", "x": "sku-2"}]),
)

WHITESPACE = st.sampled_from(["", " ", "\t", "\u00a0", "\u3000", " \n "])


@st.composite
def respelt(draw: st.DrawFn, sku: str | None) -> str | None:
    """The same SKU as a human might type it: other case, fullwidth letters, other spaces."""
    if sku is None:
        return None
    letters = []
    for char in sku:
        if char == " ":
            letters.append(draw(st.sampled_from([" ", "  ", "\u00a0", "\t"])))
            continue
        char = char.lower() if draw(st.booleans()) else char.upper()
        if "!" <= char <= "~" and draw(st.booleans()):
            char = chr(ord(char) + 0xFEE0)  # the fullwidth form NFKC folds back
        letters.append(char)
    return draw(WHITESPACE) + "".join(letters) + draw(WHITESPACE)


def decisions(result: Reconciliation) -> dict[int, tuple[Any, ...]]:
    verdicts = result.verdicts
    return {
        return_id: (verdict, tuple(codes), note)
        for return_id, verdict, codes, note in zip(
            verdicts["whiplash_return_id"].tolist(),
            verdicts["verdict"].astype("str").tolist(),
            verdicts["reason_codes"].tolist(),
            verdicts["note"].tolist(),
            strict=True,
        )
    }


def line_records(result: Reconciliation) -> list[dict[Any, Any]]:
    return result.lines.astype({"sku": "str"}).to_dict("records")


@SETTINGS
@given(batch=batches(), criteria=criteria_options)
def test_no_unit_is_ever_lost(batch: Batch, criteria: Criteria) -> None:
    expected, received, context = batch.frames()
    result = reconcile(expected, received, context, criteria)
    lines = result.lines
    assert (
        lines["expected"] == lines["good"] + lines["damaged"] + lines["missing"] - lines["extra"]
    ).all()
    assert ((lines["missing"] == 0) | (lines["extra"] == 0)).all()
    assert (lines[["expected", "good", "damaged", "missing", "extra"]] >= 0).all().all()
    assert (lines["unexpected"] == (lines["expected"] == 0)).all()
    per_line = lines.groupby("whiplash_return_id")[["expected", "good", "damaged"]].sum()
    sent = expected.groupby("whiplash_return_id")["units"].sum()
    arrived = received.groupby("whiplash_return_id")[["good", "damaged"]].sum()
    for return_id in context["whiplash_return_id"]:
        line_totals = tuple(per_line.loc[return_id]) if return_id in per_line.index else (0, 0, 0)
        good, damaged = tuple(arrived.loc[return_id]) if return_id in arrived.index else (0, 0)
        assert line_totals == (sent.get(return_id, 0), good, damaged)
    verdict_totals = result.verdicts.set_index("whiplash_return_id")
    assert verdict_totals["expected"].sum() == expected["units"].sum()
    assert verdict_totals["good"].sum() == received["good"].sum()
    assert verdict_totals["damaged"].sum() == received["damaged"].sum()


@SETTINGS
@given(batch=batches(), criteria=criteria_options, seed=st.integers(0, 2**32 - 1))
def test_verdicts_do_not_depend_on_row_order(batch: Batch, criteria: Criteria, seed: int) -> None:
    expected, received, context = batch.frames()
    before = reconcile(expected, received, context, criteria)
    after = reconcile(
        expected.sample(frac=1, random_state=seed),
        received.sample(frac=1, random_state=seed),
        context.sample(frac=1, random_state=seed),
        criteria,
    )
    assert decisions(after) == decisions(before)
    assert line_records(after) == line_records(before)


@SETTINGS
@given(batch=batches(), criteria=criteria_options, data=st.data())
def test_verdicts_do_not_depend_on_sku_case_or_whitespace(
    batch: Batch, criteria: Criteria, data: st.DataObject
) -> None:
    respelt_batch = Batch(
        tuple(
            Receipt(
                r.whiplash_id,
                [(data.draw(respelt(sku)), units) for sku, units in r.expected],
                [(data.draw(respelt(sku)), good, bad) for sku, good, bad in r.received],
                r.state,
                r.known,
                r.price,
            )
            for r in batch.receipts
        )
    )
    before = reconcile(*batch.frames(), criteria)
    after = reconcile(*respelt_batch.frames(), criteria)
    assert decisions(after) == decisions(before)
    assert line_records(after) == line_records(before)


@SETTINGS
@given(batch=batches(), criteria=criteria_options)
def test_the_engine_decides_what_the_per_return_loop_decides(
    batch: Batch, criteria: Criteria
) -> None:
    expected, received, context = batch.frames()
    result = reconcile(expected, received, context, criteria)
    assert decisions(result) == baseline_verdicts(expected, received, context, criteria)


@SETTINGS
@given(batch=batches(), criteria=criteria_options)
def test_only_open_returns_of_ours_are_decided_and_only_flags_carry_a_note(
    batch: Batch, criteria: Criteria
) -> None:
    result = reconcile(*batch.frames(), criteria)
    by_id = {r.whiplash_id: r for r in batch.receipts}
    for return_id, (verdict, codes, note) in decisions(result).items():
        receipt = by_id[return_id]
        if not receipt.known:
            assert (verdict, codes) == ("skip", ("UNKNOWN_RETURN",))
        elif receipt.state != "open":
            assert (verdict, codes) == ("skip", ("NOT_ACTIONABLE",))
        else:
            assert verdict == ("flag" if codes else "process")
        assert (note is not None) == (verdict == "flag")
        assert note is None or 0 < len(note) < 255
