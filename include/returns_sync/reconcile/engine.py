"""Receipt reconciliation: one vectorised pass over a whole batch of Whiplash receipts.

Shaped like datacompy's comparison, cut down to what a receipt needs:

* validate the inputs first and name the side (`expected`, `received`, `context`) at fault;
* handle repeated keys explicitly: after SKU normalisation and the merchant's aliases, both
  sides are summed per (return, SKU) in one aggregation, which is the outer join: repeated
  keys add up, never multiply, and a key on one side only gets zeros from the other;
* return the three sets (`only_expected`, `only_received`, `matched`) as views of one line
  table, plus a verdict per return and a `summary()`.

Per line (one row per return and canonical SKU, with received = good + damaged):
``missing = max(expected - received, 0)`` and ``extra = max(received - expected, 0)``, so
``expected == good + damaged + missing - extra`` always holds; a SKU with nothing expected and
units received is `unexpected`. A SKU neither expected nor received has no line. Nothing here
loops over rows in Python; notes are worded once per distinct line shape (see notes.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
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
    run_starts,
    sorted_context,
    unit_counts,
)
from include.returns_sync.reconcile.notes import flag_notes
from include.returns_sync.vocabulary import ReasonCode, Verdict

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

    def verdict_rows(self) -> list[dict[str, Any]]:
        """`verdicts` as one JSON-friendly dict per return (the run report's rows)."""
        return cast(list[dict[str, Any]], self.verdicts.to_dict("records"))

    def line_rows(self) -> list[dict[str, Any]]:
        """`lines` as one dict per (return, SKU), the SKU as text (the run report's rows)."""
        return cast(list[dict[str, Any]], self.lines.astype({"sku": "str"}).to_dict("records"))

    def received_units(
        self, whiplash_return_ids: Iterable[int]
    ) -> dict[int, dict[str, tuple[int, int]]]:
        """(good, damaged) units received per canonical SKU, for each of these returns."""
        wanted = self.lines[self.lines["whiplash_return_id"].isin(list(whiplash_return_ids))]
        received: dict[int, dict[str, tuple[int, int]]] = {}
        for wid, sku, good, damaged in zip(
            wanted["whiplash_return_id"].tolist(),
            wanted["sku"].astype("str").tolist(),
            wanted["good"].tolist(),
            wanted["damaged"].tolist(),
            strict=True,
        ):
            received.setdefault(int(wid), {})[sku] = (int(good), int(damaged))
        return received

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
    # The outer join as one aggregation: both sides' keys are grouped together, so repeated
    # keys are summed (never multiplied) and a key found on one side only gets zeros from
    # the other.
    key, sums = _outer_sums(
        expected_return * width + expected_sku,
        received_return * width + received_sku,
        expected={"expected": units, "expected_value": value},
        received={"good": good, "damaged": damaged},
    )
    lines, position = _line_table(key, sums, width, return_ids, loop_ids, skus)
    verdicts = _verdicts(lines, position, return_ids, loop_ids, context, criteria)
    return Reconciliation(lines=lines, verdicts=verdicts)


def _outer_sums(
    expected_key: IntArray,
    received_key: IntArray,
    *,
    expected: Mapping[str, npt.NDArray[Any]],
    received: Mapping[str, npt.NDArray[Any]],
) -> tuple[IntArray, dict[str, npt.NDArray[Any]]]:
    """The sorted distinct keys of both sides, and each side's columns summed per key.

    A stable argsort is nearly linear here: frames.py delivers each side sorted by return and
    SKU, so the stacked keys are two long sorted runs (hand-built frames merely cost a real
    sort).
    """
    key = np.concatenate([expected_key, received_key])
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first = run_starts(ordered)
    group = np.empty(len(key), dtype=np.int64)
    group[order] = np.cumsum(first) - 1
    distinct = ordered[first]
    split = len(expected_key)
    sums = {
        name: _summed(group[:split], values, len(distinct)) for name, values in expected.items()
    }
    for name, values in received.items():
        sums[name] = _summed(group[split:], values, len(distinct))
    return distinct, sums


def _summed(group: IntArray, values: npt.NDArray[Any], groups: int) -> npt.NDArray[Any]:
    """np.bincount sums in float64, exact for whole numbers below 2**53: back to ints."""
    summed = np.bincount(group, weights=values, minlength=groups)
    return summed.astype(np.int64) if values.dtype.kind in "iu" else summed


def _line_table(
    key: IntArray,
    sums: dict[str, npt.NDArray[Any]],
    width: int,
    return_ids: IntArray,
    loop_ids: pd.Series,
    skus: pd.Index,
) -> tuple[pd.DataFrame, IntArray]:
    """Lines with their derived columns, and each line's position in the sorted context."""
    keep = (sums["expected"] > 0) | (sums["good"] > 0) | (sums["damaged"] > 0)
    if not keep.all():  # a key whose units all summed to zero is no line
        key = key[keep]
        sums = {name: values[keep] for name, values in sums.items()}
    expected, good, damaged = sums["expected"], sums["good"], sums["damaged"]
    position, sku = np.divmod(key, width)
    balance = good + damaged - expected
    lines = pd.DataFrame(
        {
            "whiplash_return_id": return_ids[position],
            "loop_return_id": loop_ids.take(position).reset_index(drop=True),
            "sku": pd.Categorical.from_codes(sku, categories=skus),
            "expected": expected,
            "good": good,
            "damaged": damaged,
            "missing": np.maximum(-balance, 0),
            "extra": np.maximum(balance, 0, out=balance),
            "unexpected": expected == 0,
            "expected_value": sums["expected_value"],
        },
        copy=False,  # fresh arrays: no need to copy them into consolidated blocks
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
    column = {name: lines[name].to_numpy() for name in _UNIT_COLUMNS}
    on_unexpected_sku = lines["unexpected"].to_numpy()

    totals = {name: _summed(position, column[name], count) for name in _UNIT_COLUMNS}
    received = totals["good"] + totals["damaged"]
    received_line = column["good"] + column["damaged"]
    unexpected_units = _summed(position, np.where(on_unexpected_sku, received_line, 0), count)
    damaged_unexpected = np.where(on_unexpected_sku, column["damaged"], 0)
    damaged_expected = totals["damaged"] - _summed(position, damaged_unexpected, count)
    # On a line of an unexpected SKU every unit received is extra.
    extra_expected = totals["extra"] - unexpected_units
    expected_value = lines["expected_value"].to_numpy(np.float64)
    # Micro-units, so float sums of cents never tip over a threshold.
    value: npt.NDArray[np.float64] = _summed(position, expected_value, count).round(6)

    known = flags(context, "known")
    is_open = _open_states(context["loop_state"])
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

    reason_codes = _reason_tuples(mask)
    notes = np.full(count, None, dtype=object)
    if flagged.any():
        discrepant = (column["missing"] > 0) | (column["extra"] > 0) | (column["damaged"] > 0)
        notes[flagged] = flag_notes(
            lines.drop(columns=["loop_return_id", "expected_value"]).take(
                np.flatnonzero(discrepant & flagged[position])
            ),
            pd.DataFrame(
                {
                    "whiplash_return_id": return_ids[flagged],
                    "reason_codes": reason_codes[flagged],
                    "expected_value": value[flagged],
                }
            ),
            criteria.value_threshold,
        )
    columns = {
        "whiplash_return_id": return_ids,
        "loop_return_id": loop_ids.reset_index(drop=True),
        "verdict": pd.Categorical.from_codes(verdict_code, categories=_VERDICT_ORDER),
        "reason_codes": reason_codes,
        "note": pd.Series(notes, dtype=object),  # None, not NaN, where there is no note
        **totals,
        "unexpected_units": unexpected_units,
        "expected_value": value,
    }
    return pd.DataFrame({name: columns[name] for name in VERDICT_COLUMNS}, copy=False)


def _open_states(states: pd.Series) -> BoolArray:
    """Which Loop states are `open`, ignoring case and surrounding whitespace.

    Nearly every state is exactly "open"; only the others are factorised and looked at.
    """
    values = np.asarray(states.to_numpy(dtype=object), dtype=object)
    is_open = np.asarray(values == "open", dtype=bool)
    others = np.flatnonzero(~is_open)
    codes, distinct = pd.factorize(values[others], use_na_sentinel=True)
    spelled_open = [
        isinstance(state, str) and state.strip().lower() == "open" for state in distinct
    ]
    if any(spelled_open):
        is_open[others[np.isin(codes, np.flatnonzero(spelled_open))]] = True
    return is_open


def _over_threshold(value: npt.NDArray[np.float64], criteria: Criteria) -> BoolArray:
    """Which returns' (rounded) expected value is over the review threshold, if one is set."""
    if criteria.value_threshold is None:
        return np.zeros(len(value), dtype=bool)
    return np.asarray(value > float(criteria.value_threshold), dtype=bool)


def _reason_tuples(mask: IntArray) -> npt.NDArray[np.object_]:
    """Decode bit masks into tuples of codes; each mask that occurs is decoded once.

    Masks are below 2**len(ReasonCode), so a table indexed by the mask replaces a sort.
    """
    present = np.flatnonzero(np.bincount(mask, minlength=1))
    table = np.empty(int(present[-1]) + 1 if len(present) else 1, dtype=object)
    for bits in present.tolist():
        table[bits] = tuple(str(code) for code in _REASONS if bits & _BIT[code])
    decoded: npt.NDArray[np.object_] = table[mask]
    return decoded


def _canonical_skus(
    expected: pd.Series, received: pd.Series, aliases: Mapping[str, str]
) -> tuple[IntArray, IntArray, pd.Index]:
    """Map both SKU columns onto one sorted vocabulary of canonical SKUs.

    Normalisation runs once per distinct raw spelling in use in the batch, not per row. A
    Loop unit without a SKU is `<NO SKU>` and a Whiplash item without one `<BLANK>`, so the
    two never match each other.
    """
    expected_codes, expected_raw, expected_used = _spellings(expected)
    received_codes, received_raw, received_used = _spellings(received)
    raw_codes, distinct_raw = pd.factorize(
        np.concatenate([expected_raw[expected_used], received_raw[received_used]])
    )
    canonical = [normalise_sku(raw, aliases) for raw in distinct_raw.tolist()]
    vocabulary_codes, vocabulary = pd.factorize(
        np.array([*canonical, NO_SKU, BLANK_SKU], dtype=object), sort=True
    )
    no_sku, blank = vocabulary_codes[-2:]
    per_spelling = vocabulary_codes[:-2][raw_codes]
    without_sku = (per_spelling == no_sku) | (per_spelling == blank)
    per_spelling = np.where(without_sku, -1, per_spelling)
    split = int(expected_used.sum())
    expected_map = _code_map(expected_used, per_spelling[:split], missing=no_sku)
    received_map = _code_map(received_used, per_spelling[split:], missing=blank)
    return (
        expected_map[expected_codes],
        received_map[received_codes],
        pd.Index(vocabulary, dtype="str"),
    )


def _spellings(skus: pd.Series) -> tuple[IntArray, npt.NDArray[np.object_], BoolArray]:
    """Each row's code into an array of raw spellings (-1: no SKU), and which are in use.

    frames.py hands over categoricals, whose codes and categories are exactly that; the
    categories a filtered frame no longer uses are not worth normalising.
    """
    if isinstance(skus.dtype, pd.CategoricalDtype):
        codes = skus.cat.codes.to_numpy()
        raw = np.asarray(skus.cat.categories.to_numpy(dtype=object), dtype=object)
        used = np.bincount(codes[codes >= 0], minlength=len(raw)) > 0
        return codes.astype(np.int64), raw, used
    factorised, uniques = pd.factorize(skus, use_na_sentinel=True)
    raw = np.asarray(pd.Index(uniques).to_numpy(dtype=object), dtype=object)
    return factorised.astype(np.int64), raw, np.ones(len(raw), dtype=bool)


def _code_map(used: BoolArray, canonical: IntArray, *, missing: int) -> IntArray:
    """Vocabulary code per raw spelling, with `missing` for no SKU; the last entry is for -1."""
    codes = np.full(len(used) + 1, missing, dtype=np.int64)
    codes[:-1][used] = np.where(canonical >= 0, canonical, missing)
    return codes
