"""The obvious way to reconcile receipts: a Python loop, return by return, row by row.

It applies exactly the rules of `include.returns_sync.reconcile.engine` (PRODUCT.md 2.2 and
docs/CRITERIA.md) with dicts and ints, and writes the same Return Notes (with the shared
`compose_note`), so the benchmark compares like with like: it checks that the vectorised engine
decides the same thing and measures what vectorising buys. It is not used by the pipeline; the
tests use it as an independent oracle.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.reconcile.criteria import Criteria
from include.returns_sync.reconcile.frames import NO_SKU
from include.returns_sync.reconcile.notes import NoteRow, compose_note
from include.returns_sync.vocabulary import ReasonCode

#: (verdict, reason codes, note) for one return.
Decision = tuple[str, tuple[str, ...], str | None]


def baseline_verdicts(
    expected: pd.DataFrame,
    received: pd.DataFrame,
    context: pd.DataFrame,
    criteria: Criteria,
) -> dict[int, Decision]:
    """Verdict, reason codes and note per whiplash_return_id, computed one return at a time."""
    canonical: dict[tuple[object, str], str] = {}

    def sku_of(raw: object, blank: str) -> str:
        key = (raw, blank)
        if key not in canonical:
            sku = normalise_sku(raw if isinstance(raw, str) else None, criteria.sku_aliases)
            canonical[key] = blank if sku in (BLANK_SKU, NO_SKU) else sku
        return canonical[key]

    expected_units: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    expected_value: dict[int, float] = defaultdict(float)
    for return_id, raw_sku, units, value in zip(
        expected["whiplash_return_id"].tolist(),
        expected["sku"].tolist(),
        expected["units"].tolist(),
        expected["value"].tolist(),
        strict=True,
    ):
        expected_units[return_id][sku_of(raw_sku, NO_SKU)] += units
        expected_value[return_id] += value

    received_units: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for return_id, raw_sku, good, damaged in zip(
        received["whiplash_return_id"].tolist(),
        received["sku"].tolist(),
        received["good"].tolist(),
        received["damaged"].tolist(),
        strict=True,
    ):
        counts = received_units[return_id].setdefault(sku_of(raw_sku, BLANK_SKU), [0, 0])
        counts[0] += good
        counts[1] += damaged

    decisions: dict[int, Decision] = {}
    for return_id, loop_state, known in zip(
        context["whiplash_return_id"].tolist(),
        context["loop_state"].tolist(),
        context["known"].tolist(),
        strict=True,
    ):
        if not known:
            decisions[return_id] = ("skip", (ReasonCode.UNKNOWN_RETURN.value,), None)
            continue
        if not isinstance(loop_state, str) or loop_state.strip().lower() != "open":
            decisions[return_id] = ("skip", (ReasonCode.NOT_ACTIONABLE.value,), None)
            continue
        decisions[return_id] = _decide(
            expected_units.get(return_id, {}),
            received_units.get(return_id, {}),
            expected_value.get(return_id, 0.0),
            criteria,
        )
    return decisions


def _decide(
    expected: dict[str, int],
    received: dict[str, list[int]],
    value: float,
    criteria: Criteria,
) -> Decision:
    missing = damaged = extra = unexpected = total_received = 0
    discrepancies: list[tuple[bool, str, int, int, int]] = []
    for sku in set(expected) | set(received):
        want = expected.get(sku, 0)
        good, broken = received.get(sku, (0, 0))
        got = good + broken
        total_received += got
        if want == 0:
            unexpected += got
        else:
            missing += max(want - got, 0)
            extra += max(got - want, 0)
            damaged += broken
        if got != want or broken:
            discrepancies.append((want == 0, sku, want, good, broken))
    reasons: list[str] = []
    if total_received == 0:
        reasons.append(ReasonCode.NOTHING_RECEIVED)
    if missing and criteria.on_shortfall == "flag":
        reasons.append(ReasonCode.MISSING_ITEMS)
    if damaged and criteria.on_damaged == "flag":
        reasons.append(ReasonCode.DAMAGED)
    if extra and criteria.on_overage == "flag":
        reasons.append(ReasonCode.EXTRA_ITEMS)
    if unexpected and criteria.on_unexpected_sku == "flag":
        reasons.append(ReasonCode.UNEXPECTED_SKU)
    threshold = criteria.value_threshold
    over = threshold is not None and round(value, 6) > float(threshold)
    if over:
        reasons.append(ReasonCode.OVER_VALUE_THRESHOLD)
    if not reasons:
        return ("process", (), None)
    rows: list[NoteRow] = [line[1:] for line in sorted(discrepancies)]
    note = compose_note(
        rows,
        nothing_received=total_received == 0,
        expected_value=round(value, 6) if over else None,
        value_threshold=threshold,
    )
    return ("flag", tuple(str(reason) for reason in reasons), note)
