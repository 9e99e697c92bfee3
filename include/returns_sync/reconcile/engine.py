"""Receipt reconciliation: one vectorised pass over a whole batch of Whiplash receipts.

Shaped like datacompy's comparison, cut down to what a receipt needs:

* validate the inputs first and name the side (`expected`, `received`, `context`) at fault;
* handle repeated keys explicitly: after SKU normalisation and the merchant's aliases, each side
  is summed per (return, SKU), so the outer merge is one-to-one (and checked to be);
* return the three sets (`only_expected`, `only_received`, `matched`) as views of one line
  table, plus a verdict per return and a `summary()`.

Per line (one row per return and canonical SKU, with received = good + damaged):
``missing = max(expected - received, 0)`` and ``extra = max(received - expected, 0)``, so
``expected == good + damaged + missing - extra`` always holds; a SKU with nothing expected and
units received is `unexpected`. A SKU neither expected nor received has no line. Nothing here
loops over rows in Python; notes are written per flagged return (see notes.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.reconcile.codes import ReasonCode, Verdict
from include.returns_sync.reconcile.criteria import Criteria
from include.returns_sync.reconcile.frames import (
    CONTEXT_COLUMNS,
    EXPECTED_COLUMNS,
    NO_SKU,
    RECEIVED_COLUMNS,
)
from include.returns_sync.reconcile.inputs import (
    BoolArray,
    IntArray,
    amounts,
    flags,
    loop_return_ids,
    positions_in,
    require_columns,
    sorted_context,
    unit_counts,
)
from include.returns_sync.reconcile.notes import flag_notes

LINE_COLUMNS = (
    "whiplash_return_id",
    "loop_return_id",
    "sku",
    "expected",
    "good",
    "damaged",
    "missing",
    "extra",
    "unexpected",
    "expected_value",
)
VERDICT_COLUMNS = (
    "whiplash_return_id",
    "loop_return_id",
    "verdict",
    "reason_codes",
    "note",
    "expected",
    "good",
    "damaged",
    "missing",
    "extra",
    "unexpected_units",
    "expected_value",
)
_UNIT_COLUMNS = ("expected", "good", "damaged", "missing", "extra")
_VERDICT_ORDER = pd.Index([Verdict.PROCESS.value, Verdict.FLAG.value, Verdict.SKIP.value])
_REASONS = tuple(ReasonCode)
_BIT = {code: np.int64(1) << np.int64(position) for position, code in enumerate(_REASONS)}


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of one batch.

    `lines`: one row per (whiplash_return_id, sku), sorted by both; `sku` is categorical.
    `verdicts`: one row per return in `context`, sorted by whiplash_return_id; `verdict` is one
    of process / flag / skip, `reason_codes` a tuple of ReasonCode values in declaration order
    (empty for process), `note` the Return Note for flagged returns (None otherwise), followed
    by the return's unit totals and expected value.
    """

    lines: pd.DataFrame
    verdicts: pd.DataFrame

    @property
    def only_expected(self) -> pd.DataFrame:
        """Lines of expected SKUs of which not a single unit arrived."""
        received = self.lines["good"] + self.lines["damaged"]
        return self.lines[(self.lines["expected"] > 0) & (received == 0)]

    @property
    def only_received(self) -> pd.DataFrame:
        """Lines of SKUs that arrived although Loop expected none (`unexpected`)."""
        return self.lines[self.lines["unexpected"]]

    @property
    def matched(self) -> pd.DataFrame:
        """Lines of expected SKUs of which at least one unit arrived."""
        received = self.lines["good"] + self.lines["damaged"]
        return self.lines[(self.lines["expected"] > 0) & (received > 0)]

    def summary(self) -> dict[str, Any]:
        """Counts by verdict and by reason code (every name present, zeros included) and units."""
        verdict_counts = self.verdicts["verdict"].astype("str").value_counts()
        reason_counts: Counter[str] = Counter()
        for codes, count in self.verdicts["reason_codes"].value_counts().items():
            for code in cast(tuple[str, ...], codes):
                reason_counts[code] += int(count)
        return {
            "returns": len(self.verdicts),
            "lines": len(self.lines),
            "verdicts": {str(v): int(verdict_counts.get(str(v), 0)) for v in Verdict},
            "reason_codes": {str(code): reason_counts[code] for code in ReasonCode},
            "units": {name: int(self.lines[name].sum()) for name in _UNIT_COLUMNS},
        }


def reconcile(
    expected: pd.DataFrame,
    received: pd.DataFrame,
    context: pd.DataFrame,
    criteria: Criteria,
) -> Reconciliation:
    """Reconcile a batch: Loop's expected units against Whiplash's received units, per return.

    `expected` (whiplash_return_id, loop_return_id, sku, units, value) and `received`
    (whiplash_return_id, sku, good, damaged) come from frames.py; SKUs are normalised again
    (idempotent) and the merchant's aliases applied, so hand-built frames work too.
    `context` has one row per return to decide (whiplash_return_id, loop_return_id,
    loop_state, known); every return on either side must be in it.
    """
    require_columns(expected, "expected", EXPECTED_COLUMNS)
    require_columns(received, "received", RECEIVED_COLUMNS)
    require_columns(context, "context", CONTEXT_COLUMNS)
    context, return_ids = sorted_context(context)
    returns = pd.Index(return_ids)
    expected_return = positions_in(returns, expected, "expected")
    received_return = positions_in(returns, received, "received")
    loop_ids = loop_return_ids(context, expected, expected_return)

    units = unit_counts(expected, "expected", "units")
    value = amounts(expected, "expected", "value")
    good = unit_counts(received, "received", "good")
    damaged = unit_counts(received, "received", "damaged")

    expected_sku, received_sku, skus = _canonical_skus(
        expected["sku"], received["sku"], criteria.sku_aliases
    )
    width = max(len(skus), 1)
    # Repeated keys are summed, never multiplied: each side is aggregated to one row per
    # (return, SKU) key first, so the outer merge is one-to-one (and validated as such).
    expected_side = _sum_by_key(
        expected_return * width + expected_sku, expected=units, expected_value=value
    )
    received_side = _sum_by_key(received_return * width + received_sku, good=good, damaged=damaged)
    merged = expected_side.merge(
        received_side,
        how="outer",
        left_index=True,
        right_index=True,
        sort=True,
        validate="one_to_one",
    )
    lines, position = _line_table(merged, width, return_ids, loop_ids, skus)
    verdicts = _verdicts(lines, position, return_ids, loop_ids, context, criteria)
    return Reconciliation(lines=lines, verdicts=verdicts)


def _sum_by_key(key: IntArray, **columns: npt.NDArray[Any]) -> pd.DataFrame:
    """Sum each column per distinct key; the result is indexed by the sorted distinct keys.

    Sorting (np.unique) rather than hashing keeps both sides monotonic, which makes the
    outer merge a linear walk instead of a hash join.
    """
    distinct, inverse = np.unique(key, return_inverse=True)
    sums: dict[str, npt.NDArray[Any]] = {}
    for name, values in columns.items():
        summed = np.bincount(inverse, weights=values, minlength=len(distinct))
        sums[name] = np.rint(summed).astype(np.int64) if values.dtype.kind in "iu" else summed
    return pd.DataFrame(sums, index=pd.Index(distinct, name="key"))


def _line_table(
    merged: pd.DataFrame,
    width: int,
    return_ids: IntArray,
    loop_ids: pd.Series,
    skus: pd.Index,
) -> tuple[pd.DataFrame, IntArray]:
    """Lines with their derived columns, and each line's position in the sorted context."""
    key = merged.index.to_numpy(dtype=np.int64)
    expected = merged["expected"].fillna(0).to_numpy(dtype=np.int64)
    good = merged["good"].fillna(0).to_numpy(dtype=np.int64)
    damaged = merged["damaged"].fillna(0).to_numpy(dtype=np.int64)
    value = merged["expected_value"].fillna(0.0).to_numpy(dtype=np.float64)
    received = good + damaged
    keep = (expected > 0) | (received > 0)
    key, expected, good, damaged, value, received = (
        column[keep] for column in (key, expected, good, damaged, value, received)
    )
    position = key // width
    lines = pd.DataFrame(
        {
            "whiplash_return_id": return_ids[position],
            "loop_return_id": loop_ids.take(position).reset_index(drop=True),
            "sku": pd.Categorical.from_codes(key % width, categories=skus),
            "expected": expected,
            "good": good,
            "damaged": damaged,
            "missing": np.maximum(expected - received, 0),
            "extra": np.maximum(received - expected, 0),
            "unexpected": expected == 0,
            "expected_value": value,
        }
    )
    return lines, position


def _verdicts(
    lines: pd.DataFrame,
    position: IntArray,
    return_ids: IntArray,
    loop_ids: pd.Series,
    context: pd.DataFrame,
    criteria: Criteria,
) -> pd.DataFrame:
    """Totals per return with np.bincount, reasons as a bit mask, then verdict and note."""
    count = len(return_ids)
    of_expected_sku = ~lines["unexpected"].to_numpy()

    def total(values: Any, where: BoolArray | None = None) -> IntArray:
        weights = np.asarray(values, dtype=np.float64)
        if where is not None:
            weights = np.where(where, weights, 0.0)
        summed = np.bincount(position, weights=weights, minlength=count)
        return np.rint(summed).astype(np.int64)

    totals = {name: total(lines[name]) for name in _UNIT_COLUMNS}
    received = totals["good"] + totals["damaged"]
    unexpected_units = received - total(lines["good"] + lines["damaged"], of_expected_sku)
    damaged_expected = total(lines["damaged"], of_expected_sku)
    extra_expected = total(lines["extra"], of_expected_sku)
    value = np.bincount(
        position, weights=lines["expected_value"].to_numpy(np.float64), minlength=count
    ).astype(np.float64)

    known = flags(context, "known")
    state_codes, states = pd.factorize(context["loop_state"], use_na_sentinel=True)
    open_codes = [code for code, state in enumerate(states) if _is_open(state)]
    is_open = np.isin(state_codes, open_codes)
    unknown = ~known
    not_actionable = known & ~is_open
    actionable = known & is_open

    conditions: dict[ReasonCode, BoolArray] = {
        ReasonCode.UNKNOWN_RETURN: unknown,
        ReasonCode.NOT_ACTIONABLE: not_actionable,
        ReasonCode.NOTHING_RECEIVED: actionable & (received == 0),
        ReasonCode.MISSING_ITEMS: actionable
        & (totals["missing"] > 0)
        & (criteria.on_shortfall == "flag"),
        ReasonCode.DAMAGED: actionable & (damaged_expected > 0) & (criteria.on_damaged == "flag"),
        ReasonCode.EXTRA_ITEMS: actionable & (extra_expected > 0) & (criteria.on_overage == "flag"),
        ReasonCode.UNEXPECTED_SKU: actionable
        & (unexpected_units > 0)
        & (criteria.on_unexpected_sku == "flag"),
        ReasonCode.OVER_VALUE_THRESHOLD: actionable & _over_threshold(value, criteria),
    }
    mask = np.zeros(count, dtype=np.int64)
    for code, condition in conditions.items():
        mask |= np.where(condition, _BIT[code], np.int64(0))
    flagged = actionable & (mask != 0)
    # Codes into _VERDICT_ORDER (process, flag, skip), decided without touching strings.
    verdict_code = np.where(actionable, np.where(flagged, 1, 0), 2).astype(np.int8)

    verdicts = pd.DataFrame(
        {
            "whiplash_return_id": return_ids,
            "loop_return_id": loop_ids.reset_index(drop=True),
            "verdict": pd.Categorical.from_codes(verdict_code, categories=_VERDICT_ORDER),
            "reason_codes": _reason_tuples(mask),
            "note": pd.Series([None] * count, dtype=object),
            **totals,
            "unexpected_units": unexpected_units,
            "expected_value": np.round(value, 6),
        }
    )
    if flagged.any():
        verdicts.loc[flagged, "note"] = flag_notes(
            lines[flagged[position]], verdicts.loc[flagged], criteria.value_threshold
        )
    return verdicts[list(VERDICT_COLUMNS)]


def _is_open(state: object) -> bool:
    return isinstance(state, str) and state.strip().lower() == "open"


def _over_threshold(value: npt.NDArray[np.float64], criteria: Criteria) -> BoolArray:
    """Compare at micro-unit precision so float sums of cents never tip over the line."""
    if criteria.value_threshold is None:
        return np.zeros(len(value), dtype=bool)
    return np.asarray(np.round(value, 6) > float(criteria.value_threshold), dtype=bool)


def _reason_tuples(mask: IntArray) -> pd.Series:
    """Decode bit masks into tuples of codes; there are few distinct masks, so decode each once."""
    distinct, inverse = np.unique(mask, return_inverse=True)
    decoded = np.empty(len(distinct), dtype=object)
    for index, bits in enumerate(distinct):
        decoded[index] = tuple(str(code) for code in _REASONS if bits & _BIT[code])
    return pd.Series(decoded[inverse.reshape(-1)], dtype=object)


def _canonical_skus(
    expected: pd.Series, received: pd.Series, aliases: Mapping[str, str]
) -> tuple[IntArray, IntArray, pd.Index]:
    """Map both SKU columns onto one sorted vocabulary of canonical SKUs.

    Normalisation runs once per distinct raw SKU, not per row. A Loop unit without a SKU is
    `<NO SKU>` and a Whiplash item without one `<BLANK>`, so the two never match each other.
    """
    expected_codes, expected_raw = pd.factorize(expected, use_na_sentinel=True)
    received_codes, received_raw = pd.factorize(received, use_na_sentinel=True)
    known: dict[object, str] = {}

    def canonical(raw: object, blank: str) -> str:
        if raw not in known:
            known[raw] = normalise_sku(raw, aliases)
        sku = known[raw]
        return blank if sku in (BLANK_SKU, NO_SKU) else sku

    expected_canon = [canonical(raw, NO_SKU) for raw in expected_raw.tolist()] + [NO_SKU]
    received_canon = [canonical(raw, BLANK_SKU) for raw in received_raw.tolist()] + [BLANK_SKU]
    vocabulary_codes, vocabulary = pd.factorize(
        np.array(expected_canon + received_canon, dtype=object), sort=True
    )
    expected_map = vocabulary_codes[: len(expected_canon)]
    received_map = vocabulary_codes[len(expected_canon) :]
    return (
        expected_map[expected_codes].astype(np.int64),
        received_map[received_codes].astype(np.int64),
        pd.Index(vocabulary, dtype="str"),
    )
