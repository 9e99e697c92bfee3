"""Specification of the Return Note a support agent reads on a flagged return."""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reconcile_builders import consumer_return, criteria, decide, loop_return, note_of

from include.returns_sync.reconcile import (
    ReturnContext,
    compose_note,
    context_frame,
    expected_frame,
    received_frame,
    reconcile,
)
from include.returns_sync.reconcile.notes import NOTE_MAX_CHARS, NoteLine, _combinations


def test_the_note_reads_like_the_product_spec_example() -> None:
    result = decide([("SKU-1", 2)], [("SKU-1", 1, 1), ("sku-9 ", 1, 0)])
    assert note_of(result) == (
        "Expected 2 x SKU-1; received 1 good, 1 damaged. Unexpected: 1 x SKU-9."
    )


def test_the_note_lists_only_discrepant_lines_expected_before_unexpected() -> None:
    result = decide(
        [("B-2", 1), ("A-1", 1), ("C-3", 2)],
        [("Z-9", 0, 2), ("B-2", 1, 0), ("Y-8", 1, 0), ("C-3", 3, 0)],
    )
    assert note_of(result) == (
        "Expected 1 x A-1; received nothing. Expected 2 x C-3; received 3 good. "
        "Unexpected: 1 x Y-8, 2 x Z-9 (2 damaged)."
    )


def test_a_receipt_with_nothing_in_it_says_so_and_lists_what_was_expected() -> None:
    result = decide([("SKU-1", 2), ("SKU-2", 1)], [])
    assert note_of(result) == (
        "Nothing received (receipt completed empty). Expected: 2 x SKU-1, 1 x SKU-2."
    )


def test_a_return_over_the_value_threshold_says_so_first() -> None:
    result = decide(
        [("SKU-1", 2)], [("SKU-1", 1, 0)], criteria(value_threshold="15"), price="10.00"
    )
    assert note_of(result) == (
        "Expected value 20.00 is over the review threshold 15.00. "
        "Expected 2 x SKU-1; received 1 good."
    )


def test_a_long_note_drops_whole_lines_and_counts_them() -> None:
    lines = [NoteLine(f"SKU-{i:04d}", 2, 1, 0) for i in range(20)]
    note = compose_note(lines)
    assert len(note) <= NOTE_MAX_CHARS
    assert note.startswith("Expected 2 x SKU-0000; received 1 good. ")
    match = re.search(r" … \(\+(\d+) more lines\)$", note)
    assert match is not None
    shown = note.count("Expected 2 x")
    assert shown + int(match.group(1)) == 20


def test_an_absurdly_long_sku_is_shortened_not_allowed_to_crowd_out_the_note() -> None:
    note = compose_note([NoteLine("X" * 500, 1, 0, 0), NoteLine("SKU-2", 0, 1, 0)])
    assert note == f"Expected 1 x {'X' * 39}…; received nothing. Unexpected: 1 x SKU-2."


def test_a_note_of_only_a_head_still_fits() -> None:
    note = compose_note(
        [],
        nothing_received=True,
        expected_value=123456789.5,
        value_threshold=Decimal("1000"),
    )
    assert note == (
        "Expected value 123456789.50 is over the review threshold 1000.00. "
        "Nothing received (receipt completed empty)."
    )


note_lines = st.lists(
    st.builds(
        NoteLine,
        sku=st.text(min_size=1, max_size=80),
        expected=st.integers(0, 10_000),
        good=st.integers(0, 10_000),
        damaged=st.integers(0, 10_000),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    lines=note_lines,
    nothing=st.booleans(),
    value=st.none() | st.floats(0, 1e12, allow_nan=False),
)
def test_every_note_is_under_255_characters_and_accounts_for_every_line(
    lines: list[NoteLine], nothing: bool, value: float | None
) -> None:
    note = compose_note(
        lines, nothing_received=nothing, expected_value=value, value_threshold=Decimal("1")
    )
    assert len(note) < 255
    match = re.search(r"… \(\+(\d+) more lines\)$", note)
    omitted = int(match.group(1)) if match else 0
    assert 0 <= omitted <= len(lines)
    if not match:
        assert (
            compose_note(
                lines,
                nothing_received=nothing,
                expected_value=value,
                value_threshold=Decimal("1"),
                limit=10_000,
            )
            == note
        )


def test_the_batch_writes_the_same_notes_as_compose_note_whatever_their_length() -> None:
    """flag_notes builds every note of a batch at once; compose_note is the reference."""
    many = [(f"SKU-{i:03d}", 2) for i in range(50)]
    receipts = {
        1: (many, [(sku, 1, 0) for sku, _ in many]),  # 50 short lines: must be shortened
        2: ([(f"NOTHING-{i:02d}", 1) for i in range(30)], []),  # nothing received, long list
        3: ([("Y" * 60, 1), ("SKU-1", 1)], [("SKU-1", 0, 1), ("STRAY", 2, 1)]),
        4: ([("SKU-1", 40)], [("SKU-1", 39, 0)]),  # over the value threshold as well
        5: ([("SKU-1", 1)], [("SKU-1", 1, 0)]),  # processed: no note
    }
    pairs = [(wid, loop_return(f"L{wid}", exp)) for wid, (exp, _) in receipts.items()]
    received = [consumer_return(wid, f"L{wid}", got) for wid, (_, got) in receipts.items()]
    context = [ReturnContext(wid, f"L{wid}", "open", True) for wid in receipts]
    rules = criteria(value_threshold="350")  # every unit is worth 10.00
    result = reconcile(
        expected_frame(pairs), received_frame(received), context_frame(context), rules
    )

    notes = result.verdicts.set_index("whiplash_return_id")
    for wid in (1, 2, 3, 4):
        lines = result.lines[result.lines["whiplash_return_id"] == wid]
        discrepant = lines[(lines["missing"] > 0) | (lines["extra"] > 0) | (lines["damaged"] > 0)]
        discrepant = discrepant.sort_values(["unexpected", "sku"], kind="stable")
        codes = notes.loc[wid, "reason_codes"]
        reference = compose_note(
            list(
                zip(
                    discrepant["sku"].astype(str),
                    discrepant["expected"],
                    discrepant["good"],
                    discrepant["damaged"],
                    strict=True,
                )
            ),
            nothing_received="NOTHING_RECEIVED" in codes,
            expected_value=notes.loc[wid, "expected_value"]
            if "OVER_VALUE_THRESHOLD" in codes
            else None,
            value_threshold=rules.value_threshold,
        )
        assert notes.loc[wid, "note"] == reference
        assert len(reference) <= NOTE_MAX_CHARS
    assert "more lines" in notes.loc[1, "note"]
    assert notes.loc[2, "note"].startswith("Nothing received (receipt completed empty). Expected:")
    assert notes.loc[3, "note"] == (
        f"Expected 1 x SKU-1; received 1 damaged. Expected 1 x {'Y' * 39}…; received nothing. "
        "Unexpected: 3 x STRAY (1 damaged)."
    )
    assert notes.loc[4, "note"].startswith("Expected value 400.00 is over the review threshold")
    assert notes.loc[5, "note"] is None


@pytest.mark.parametrize("scale", [1, 2**40], ids=["packed into one key", "too wide to pack"])
def test_line_combinations_are_numbered_the_same_way_however_large_the_numbers(
    scale: int,
) -> None:
    units = np.array([0, 1, 0, 1, 0]) * scale
    kinds = np.array([1, 1, 1, 2, 1])
    codes, examples = _combinations([kinds, units, units])
    assert codes[0] == codes[2] == codes[4]
    assert len({codes[0], codes[1], codes[3]}) == 3
    assert sorted(codes[examples].tolist()) == list(range(3))
