"""The Return Note posted with Flag Return: why a human has to look at this return.

Loop's Flag Return takes no reason, so a support agent only learns what went wrong from the note,
and Loop rejects notes of 255 characters or more. A note is built deterministically from the
line table: discrepant expected SKUs first, then unexpected SKUs, each alphabetically. When it
does not fit, whole lines are dropped from the end and replaced by "… (+N more lines)".

    Expected 2 x SKU-1; received 1 good, 1 damaged. Unexpected: 1 x SKU-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from include.returns_sync.reconcile.inputs import run_starts
from include.returns_sync.vocabulary import ReasonCode

IntArray = npt.NDArray[np.int64]

#: Loop's documented limit is "less than 255 characters".
NOTE_MAX_CHARS = 254
#: SKUs longer than this are shortened in notes so one odd SKU cannot crowd out the others.
SKU_MAX_CHARS = 40
ELLIPSIS = "…"
NOTHING_RECEIVED = "Nothing received (receipt completed empty)."


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
        head.append(_value_sentence(expected_value, value_threshold))
    if nothing_received:
        head.append(NOTHING_RECEIVED)
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
    """Notes for the `flagged` verdict rows (sorted by whiplash_return_id).

    `lines` are the line-table rows of the flagged returns that show a discrepancy (missing,
    extra or damaged units), sorted by return and SKU; the engine selects them. The same text `compose_note` writes for each return, built for the whole batch at once:
    each discrepant line becomes its words plus the separator it needs, and the pieces of one
    return are concatenated with `np.add.reduceat`. A note that would not fit (dozens of
    discrepant lines) is rewritten by `compose_note`, so shortening has one definition.
    """
    count = len(flagged)
    reasons = _reason_flags(flagged["reason_codes"])
    nothing = reasons[ReasonCode.NOTHING_RECEIVED]
    over = reasons[ReasonCode.OVER_VALUE_THRESHOLD]
    values = flagged["expected_value"].to_numpy(dtype=np.float64)
    note_lines = _NoteLines.of(lines, flagged["whiplash_return_id"].to_numpy(), nothing)
    notes = note_lines.bodies(count)
    headed = np.flatnonzero(nothing | over)  # the few notes that open with a sentence
    heads = _heads(values[headed], nothing[headed], over[headed], value_threshold)
    notes[headed] = [
        f"{head} {body}" if body else head
        for head, body in zip(heads.tolist(), notes[headed].tolist(), strict=True)
    ]

    lengths = np.fromiter(map(len, notes), dtype=np.int64, count=count)
    crowded = np.bincount(note_lines.owner, minlength=count) > NOTE_MAX_CHARS // 7
    for index in np.flatnonzero((lengths > NOTE_MAX_CHARS) | crowded).tolist():
        notes[index] = compose_note(
            note_lines.rows_of(index),
            nothing_received=bool(nothing[index]),
            expected_value=float(values[index]) if over[index] else None,
            value_threshold=value_threshold,
        )
    texts: list[str] = notes.tolist()
    return texts


@dataclass(frozen=True)
class _NoteLines:
    """The discrepant lines of the flagged returns, in note order, as parallel arrays.

    `owner` is the flagged return's position (non-decreasing); `kind` decides the separators:
    0 = a sentence of its own, 1 = an item of the "Expected:" list (nothing received),
    2 = an item of the "Unexpected:" list.
    """

    owner: npt.NDArray[np.int64]
    sku: npt.NDArray[np.object_]
    want: npt.NDArray[np.int64]
    good: npt.NDArray[np.int64]
    damaged: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]

    @classmethod
    def of(
        cls, lines: pd.DataFrame, flagged_ids: npt.NDArray[Any], nothing: npt.NDArray[np.bool_]
    ) -> _NoteLines:
        owner = np.searchsorted(flagged_ids, lines["whiplash_return_id"].to_numpy())
        unexpected = lines["unexpected"].to_numpy(dtype=bool)
        # Lines arrive sorted by return and SKU; expected SKUs go before unexpected ones.
        order = np.argsort(owner * 2 + unexpected, kind="stable")
        owner, unexpected = owner[order], unexpected[order]
        skus = lines["sku"].cat
        names = np.array(skus.categories.tolist(), dtype=object)
        long_names = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
        names[long_names > SKU_MAX_CHARS] = [_short(n) for n in names[long_names > SKU_MAX_CHARS]]
        want, good, damaged = (
            lines[column].to_numpy(dtype=np.int64)[order]
            for column in ("expected", "good", "damaged")
        )
        return cls(
            owner=owner,
            sku=names[skus.codes.to_numpy()[order]],
            want=want,
            good=good,
            damaged=damaged,
            kind=np.where(unexpected, 2, np.where(nothing[owner], 1, 0)),
        )

    def bodies(self, count: int) -> npt.NDArray[np.object_]:
        """Each flagged return's lines as `_render` words them ("" for a return with none).

        A line's text is `before + words + SKU + after`; apart from the SKU it depends only on
        a few small numbers (kind, units, separator), so each distinct combination is worded
        once and the batch is assembled with array concatenation.
        """
        new_return = run_starts(self.owner)
        new_group = new_return | run_starts(self.kind)
        last_of_group = np.append(new_group[1:], True)[: len(new_group)]
        separator = np.where(
            self.kind == 0,
            np.where(new_return, _SENTENCE_FIRST, _SENTENCE_NEXT),
            np.where(new_group, np.where(new_return, _LIST_FIRST, _LIST_NEXT), _ITEM_NEXT),
        )
        closes_list = (self.kind != 0) & last_of_group
        columns = (self.kind, self.want, self.good, self.damaged, separator, closes_list)
        which, examples = _combinations(columns)
        before = np.empty(len(examples), dtype=object)
        after = np.empty(len(examples), dtype=object)
        picked = zip(*(np.asarray(column)[examples].tolist() for column in columns), strict=True)
        for index, (kind, want, good, damaged, sep, closes) in enumerate(picked):
            words_before, words_after = _line_words(kind, want, good, damaged)
            before[index] = _separator_text(sep, kind) + words_before
            after[index] = words_after + ("." if closes else "")
        texts = before[which] + self.sku + after[which]
        bodies = np.full(count, "", dtype=object)
        starts = np.flatnonzero(new_return)
        if len(starts):
            bodies[self.owner[starts]] = np.add.reduceat(texts, starts)
        return bodies

    def rows_of(self, index: int) -> list[NoteRow]:
        rows = slice(*np.searchsorted(self.owner, [index, index + 1]).tolist())
        return list(
            zip(
                self.sku[rows].tolist(),
                self.want[rows].tolist(),
                self.good[rows].tolist(),
                self.damaged[rows].tolist(),
                strict=True,
            )
        )


def _combinations(columns: Sequence[npt.NDArray[Any]]) -> tuple[IntArray, IntArray]:
    """Number the distinct rows of non-negative integer columns: (row -> number, one row each)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    capacity = 1
    for column in columns:
        values = np.asarray(column, dtype=np.int64)
        size = int(values.max(initial=0)) + 1
        if capacity * size >= 2**62:  # too wide to pack: number the rows one by one
            codes, _ = pd.factorize(pd.MultiIndex.from_arrays(list(columns)))
            _, examples = np.unique(codes, return_index=True)
            return codes.astype(np.int64), examples.astype(np.int64)
        key = key * size + values
        capacity *= size
    codes, distinct = pd.factorize(key)
    examples = np.empty(len(distinct), dtype=np.int64)
    examples[codes] = np.arange(len(codes))  # any row of a combination is as good as another
    return codes.astype(np.int64), examples


#: How a line is joined to what comes before it in the note (see `_separator_text`).
_SENTENCE_FIRST, _SENTENCE_NEXT, _LIST_FIRST, _LIST_NEXT, _ITEM_NEXT = range(5)


def _separator_text(separator: int, kind: int) -> str:
    """A new sentence after another one gets a space; a list opens with its label."""
    label = "Expected: " if kind == 1 else "Unexpected: "
    return ("", " ", label, " " + label, ", ")[separator]


def _line_words(kind: int, want: int, good: int, damaged: int) -> tuple[str, str]:
    """The words of one line before and after its SKU, as `_render` puts them."""
    if kind == 2:
        return f"{good + damaged} x ", f" ({damaged} damaged)" if damaged else ""
    if kind == 1:
        return f"{want} x ", ""
    return f"Expected {want} x ", f"; received {_received(good, damaged)}."


def _reason_flags(reason_codes: pd.Series) -> dict[ReasonCode, npt.NDArray[np.bool_]]:
    """Per reason code, which rows carry it; each distinct tuple of codes is looked at once."""
    codes, distinct = pd.factorize(reason_codes)
    return {
        reason: np.array([reason in tuple(row) for row in distinct], dtype=bool)[codes]
        if len(distinct)
        else np.zeros(len(codes), dtype=bool)
        for reason in (ReasonCode.NOTHING_RECEIVED, ReasonCode.OVER_VALUE_THRESHOLD)
    }


def _heads(
    values: npt.NDArray[np.float64],
    nothing: npt.NDArray[np.bool_],
    over: npt.NDArray[np.bool_],
    value_threshold: Decimal | None,
) -> npt.NDArray[np.object_]:
    """The sentences before the lines: the value over the threshold, nothing received."""
    heads = np.full(len(values), "", dtype=object)
    if over.any():
        clause = _threshold_clause(value_threshold)
        heads[over] = [f"Expected value {value:.2f}{clause}." for value in values[over].tolist()]
    heads[nothing] = np.where(heads[nothing] != "", heads[nothing] + " ", "") + NOTHING_RECEIVED
    return heads


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


def _value_sentence(value: float, threshold: Decimal | None) -> str:
    return f"Expected value {value:.2f}{_threshold_clause(threshold)}."


def _threshold_clause(threshold: Decimal | None) -> str:
    return f" is over the review threshold {threshold:.2f}" if threshold is not None else ""


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
