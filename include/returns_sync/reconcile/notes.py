"""The Return Note posted with Flag Return: why a human has to look at this return.

Loop's Flag Return takes no reason, so a support agent only learns what went wrong from the note,
and Loop rejects notes of 255 characters or more. A note is built deterministically from the
line table: discrepant expected SKUs first, then unexpected SKUs, each alphabetically. When it
does not fit, whole lines are dropped from the end and replaced by "… (+N more lines)".

    Expected 2 x SKU-1; received 1 good, 1 damaged. Unexpected: 1 x SKU-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import pandas as pd

from include.returns_sync.reconcile.codes import ReasonCode

#: Loop's documented limit is "less than 255 characters".
NOTE_MAX_CHARS = 254
#: SKUs longer than this are shortened in notes so one odd SKU cannot crowd out the others.
SKU_MAX_CHARS = 40
ELLIPSIS = "…"


class NoteLine(NamedTuple):
    """One discrepant (return, SKU) line as the note describes it."""

    sku: str
    expected: int
    good: int
    damaged: int


#: What compose_note reads from a line: a NoteLine or a plain (sku, expected, good, damaged).
NoteRow = tuple[str, int, int, int]


def compose_note(
    lines: Sequence[NoteRow],
    *,
    nothing_received: bool = False,
    expected_value: float | None = None,
    value_threshold: Decimal | None = None,
    limit: int = NOTE_MAX_CHARS,
) -> str:
    """Write the note for one flagged return; pass `expected_value` only when it is over.

    `lines` are the discrepant lines in the order they should appear (expected SKUs before
    unexpected ones); lines with `expected == 0` are listed under "Unexpected:".
    """
    head: list[str] = []
    if expected_value is not None:
        over = (
            f" is over the review threshold {value_threshold:.2f}"
            if value_threshold is not None
            else ""
        )
        head.append(f"Expected value {expected_value:.2f}{over}.")
    if nothing_received:
        head.append("Nothing received (receipt completed empty).")
    # Every line takes at least 7 characters ("1 x A, "), which bounds how many can fit.
    shown = min(len(lines), limit // 7)
    text = _render(head, lines[:shown], len(lines) - shown, nothing_received)
    # Drop whole lines from the end until the note and its "+N more" tail fit.
    while len(text) > limit and shown > 0:
        shown -= 1
        text = _render(head, lines[:shown], len(lines) - shown, nothing_received)
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return text


def flag_notes(
    lines: pd.DataFrame, flagged: pd.DataFrame, value_threshold: Decimal | None
) -> list[str]:
    """Notes for the `flagged` verdict rows (sorted by whiplash_return_id), from the line table.

    `lines` may be the whole line table or just the flagged returns' lines. Only lines that show
    a discrepancy (missing, extra or damaged units) are gathered, sorted once, and sliced per
    return: the Python work is per flagged return, not per row of the batch.
    """
    flagged_ids = flagged["whiplash_return_id"].to_numpy()
    discrepant = lines[
        lines["whiplash_return_id"].isin(flagged_ids)
        & ((lines["missing"] > 0) | (lines["extra"] > 0) | (lines["damaged"] > 0))
    ].sort_values(["whiplash_return_id", "unexpected", "sku"], kind="stable")
    return_ids = discrepant["whiplash_return_id"].to_numpy()
    starts = np.searchsorted(return_ids, flagged_ids, side="left").tolist()
    ends = np.searchsorted(return_ids, flagged_ids, side="right").tolist()
    rows: list[NoteRow] = list(
        zip(
            discrepant["sku"].astype("str").tolist(),
            discrepant["expected"].tolist(),
            discrepant["good"].tolist(),
            discrepant["damaged"].tolist(),
            strict=True,
        )
    )
    values = np.asarray(flagged["expected_value"], dtype=np.float64).tolist()
    return [
        compose_note(
            rows[start:end],
            nothing_received=ReasonCode.NOTHING_RECEIVED in codes,
            expected_value=value if ReasonCode.OVER_VALUE_THRESHOLD in codes else None,
            value_threshold=value_threshold,
        )
        for start, end, codes, value in zip(
            starts, ends, flagged["reason_codes"].tolist(), values, strict=True
        )
    ]


def _render(
    head: Sequence[str], lines: Sequence[NoteRow], omitted: int, nothing_received: bool
) -> str:
    """Sentences in a fixed order; with nothing received, expected SKUs are one short list."""
    sentences = list(head)
    expected: list[str] = []
    unexpected: list[str] = []
    for raw_sku, want, good, damaged in lines:
        sku = _short(raw_sku)
        if want == 0:
            broken = f" ({damaged} damaged)" if damaged else ""
            unexpected.append(f"{good + damaged} x {sku}{broken}")
        elif nothing_received:
            expected.append(f"{want} x {sku}")
        else:
            sentences.append(f"Expected {want} x {sku}; received {_received(good, damaged)}.")
    if expected:
        sentences.append(f"Expected: {', '.join(expected)}.")
    if unexpected:
        sentences.append(f"Unexpected: {', '.join(unexpected)}.")
    if omitted:
        sentences.append(f"{ELLIPSIS} (+{omitted} more lines)")
    return " ".join(sentences)


def _received(good: int, damaged: int) -> str:
    if good and damaged:
        return f"{good} good, {damaged} damaged"
    if damaged:
        return f"{damaged} damaged"
    if good:
        return f"{good} good"
    return "nothing"


def _short(sku: str) -> str:
    return sku if len(sku) <= SKU_MAX_CHARS else sku[: SKU_MAX_CHARS - 1] + ELLIPSIS
