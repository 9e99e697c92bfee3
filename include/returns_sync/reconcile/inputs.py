"""Validation of the frames handed to `reconcile`, before any work is done on them.

Like datacompy, we check the inputs first and name the side at fault (`expected`, `received`,
`context`) and the column, so a batch assembled wrongly fails loudly instead of producing
verdicts that act on Loop. Each helper also returns the column as the numpy array the engine
works on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ReconciliationInputError(ValueError):
    """A frame handed to `reconcile` is malformed; the message names the frame and column."""


def require_columns(frame: pd.DataFrame, side: str, columns: Sequence[str]) -> None:
    """The frame is a DataFrame and has every column the engine reads."""
    if not isinstance(frame, pd.DataFrame):
        raise ReconciliationInputError(f"{side}: must be a pandas DataFrame")
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise ReconciliationInputError(f"{side}: missing column(s) {', '.join(absent)}")


def sorted_context(context: pd.DataFrame) -> tuple[pd.DataFrame, IntArray]:
    """Context sorted by whiplash_return_id (the order of every output), ids checked unique."""
    if not context["whiplash_return_id"].is_monotonic_increasing:
        context = context.sort_values("whiplash_return_id", kind="stable")
    context = context.reset_index(drop=True)
    return_ids = return_ids_of(context["whiplash_return_id"], "context")
    repeated = return_ids[1:][np.diff(return_ids) == 0]
    if len(repeated):
        raise ReconciliationInputError(
            f"context: whiplash_return_id must be unique; repeated: {few(np.unique(repeated))}"
        )
    return context, return_ids


def return_ids_of(column: pd.Series, side: str) -> IntArray:
    """Whiplash return ids: integers, never null."""
    if column.isna().any() or not pd.api.types.is_integer_dtype(column.dtype):
        raise ReconciliationInputError(
            f"{side}: whiplash_return_id must be integers without nulls (dtype {column.dtype})"
        )
    return column.to_numpy(dtype=np.int64)


def positions_in(returns: pd.Index, frame: pd.DataFrame, side: str) -> IntArray:
    """Position of each row's return in the sorted context; every return must be there."""
    ids = return_ids_of(frame["whiplash_return_id"], side)
    positions = _looked_up(returns, ids)
    if (positions < 0).any():
        strangers = np.unique(ids[positions < 0])
        raise ReconciliationInputError(
            f"{side}: whiplash_return_id not in context: {few(strangers)}"
        )
    return positions.astype(np.int64)


def _looked_up(returns: pd.Index, ids: IntArray) -> IntArray:
    """`returns.get_indexer(ids)`, once per run of equal ids when the rows come grouped.

    frames.py delivers rows sorted by return, a few rows per return, so looking up each run's
    id and repeating the answer does a fraction of the hashing.
    """
    starts = np.flatnonzero(run_starts(ids))
    if len(starts) * 2 > len(ids):  # hardly any runs: look every row up
        return returns.get_indexer(pd.Index(ids)).astype(np.int64)
    found = returns.get_indexer(pd.Index(ids[starts])).astype(np.int64)
    return np.repeat(found, np.diff(np.append(starts, len(ids))))


def run_starts(values: npt.NDArray[Any]) -> BoolArray:
    """True where a value differs from the one before it (and at the first position)."""
    changed = np.ones(len(values), dtype=bool)
    changed[1:] = values[1:] != values[:-1]
    return changed


def unit_counts(frame: pd.DataFrame, side: str, column: str) -> IntArray:
    """Unit counts: non-null, non-negative integers (a negative receipt is a data error)."""
    series = frame[column]
    if series.isna().any():
        raise ReconciliationInputError(f"{side}.{column}: null unit counts")
    if not pd.api.types.is_integer_dtype(series.dtype):
        raise ReconciliationInputError(
            f"{side}.{column}: unit counts must be integers (dtype {series.dtype})"
        )
    values = series.to_numpy(dtype=np.int64)
    negative = values < 0
    if negative.any():
        culprits = np.unique(frame["whiplash_return_id"].to_numpy()[negative])
        raise ReconciliationInputError(
            f"{side}.{column}: negative unit counts on whiplash_return_id {few(culprits)}"
        )
    return values


def amounts(frame: pd.DataFrame, side: str, column: str) -> npt.NDArray[np.float64]:
    """Money as finite floats; frames.py already turned a missing price into 0."""
    series = frame[column]
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ReconciliationInputError(f"{side}.{column}: must be numeric (dtype {series.dtype})")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(values).all():
        raise ReconciliationInputError(f"{side}.{column}: null or infinite amounts")
    return values


def flags(frame: pd.DataFrame, column: str) -> BoolArray:
    """Real booleans only: "False" as text would otherwise read as true."""
    series = frame[column]
    if series.isna().any() or not pd.api.types.is_bool_dtype(series.dtype):
        raise ReconciliationInputError(
            f"context.{column}: must be booleans without nulls (dtype {series.dtype})"
        )
    return series.to_numpy(dtype=bool)


def loop_return_ids(
    context: pd.DataFrame, expected: pd.DataFrame, expected_return: IntArray
) -> pd.Series:
    """The Loop return id per return: context's, filled from `expected` where context has none.

    The two must agree where both are given, and `expected` must name one Loop return per
    Whiplash return: a mismatch means the batch was assembled wrongly. Works on factorised
    codes: any one code per return is kept, and a row whose code differs from it disagrees.
    """
    count = len(context)
    whiplash_ids = context["whiplash_return_id"].to_numpy()
    codes, labels = _factorised(expected["loop_return_id"])
    named = codes >= 0
    if not named.all():
        codes, expected_return = codes[named], expected_return[named]
    chosen = np.full(count, -1, dtype=np.int64)
    chosen[expected_return] = codes
    conflict = chosen[expected_return] != codes
    if conflict.any():
        conflicting = np.unique(expected_return[conflict])
        raise ReconciliationInputError(
            "expected: several loop_return_id values for whiplash_return_id "
            f"{few(whiplash_ids[conflicting])}"
        )
    found = chosen >= 0
    from_expected = np.full(count, None, dtype=object)
    from_expected[found] = labels[chosen[found]]
    context_ids = context["loop_return_id"].astype("str")
    from_context = np.asarray(context_ids.to_numpy(dtype=object), dtype=object)
    given = context_ids.notna().to_numpy()
    disagree = given & found & (from_context != from_expected)
    if disagree.any():
        raise ReconciliationInputError(
            "expected: loop_return_id differs from context for whiplash_return_id "
            f"{few(whiplash_ids[disagree])}"
        )
    if given.all():
        return context_ids.reset_index(drop=True)
    return pd.Series(np.where(given, from_context, from_expected), dtype="str")


def _factorised(column: pd.Series) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Codes (-1 for missing) and the distinct values as text; categoricals come ready-made."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        distinct = column.cat.categories
    else:
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(pd.Index(distinct).astype("str"), dtype=object)


def few(values: Any, limit: int = 5) -> str:
    """A short list of offending ids for an error message."""
    shown = [str(value) for value in list(values)[:limit]]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
