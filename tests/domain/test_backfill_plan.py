"""Specification of the backfill form and window (PRODUCT.md 2.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.returns_sync.domain.backfill import BackfillRequestError, plan_backfill

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
DAY_START = datetime(2026, 11, 25, 2, tzinfo=UTC)
DAY_END = datetime(2026, 11, 26, 2, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def plan(**form: object):
    return plan_backfill(
        **form,
        interval_start=DAY_START,
        interval_end=DAY_END,
        overlap=SIX_HOURS,
        now=NOW,
    )


def test_a_scheduled_run_covers_its_data_interval_plus_overlap() -> None:
    scope = plan()
    assert (scope.start, scope.end) == (DAY_START - SIX_HOURS, DAY_END + SIX_HOURS)


def test_dates_cover_whole_days_and_never_the_future() -> None:
    scope = plan(start="2026-10-01", end="2026-10-31")
    assert scope.start == datetime(2026, 10, 1, tzinfo=UTC)
    assert scope.end == datetime(2026, 11, 1, tzinfo=UTC)
    assert plan(start="2026-11-20", end="2026-12-31").end == NOW


def test_date_times_and_offsets_are_normalised_to_utc() -> None:
    scope = plan(start="2026-10-01T10:00:00+02:00", end="2026-10-02T00:00:00Z")
    assert scope.start == datetime(2026, 10, 1, 8, tzinfo=UTC)
    assert scope.end == datetime(2026, 10, 2, tzinfo=UTC)


def test_a_long_window_is_accepted_the_hook_splits_it() -> None:
    scope = plan(start="2025-01-01", end="2026-06-30")
    assert scope.end - scope.start > timedelta(days=120)


def test_explicit_ids_are_deduplicated_and_need_no_window() -> None:
    scope = plan(return_ids=["48000017", " 48000017", 48000018])
    assert scope.return_ids == ("48000017", "48000018") and scope.window() is None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"start": "2026-10-31", "end": "2026-10-01"}, "must be after start (2026-10-31"),
        ({"start": "2026-10-01", "end": "2026-10-01T00:00:00"}, "must be after start"),
        ({"start": "2026-13-01", "end": "2026-10-02"}, "start: '2026-13-01' is not a date"),
        ({"start": "yesterday", "end": "2026-10-02"}, "start: 'yesterday'"),
        ({"start": "2026-10-01"}, "start and end must be given together"),
        ({"return_ids": ["48000017", "abc"]}, "return_ids: 'abc' is not a Loop return id"),
        ({"return_ids": ["1"], "start": "2026-10-01", "end": "2026-10-02"}, "not both"),
        ({"start": "2026-12-01", "end": "2026-12-02"}, "in the future"),
    ],
)
def test_invalid_forms_fail_with_a_message_naming_the_fix(form: dict, message: str) -> None:
    with pytest.raises(BackfillRequestError, match=None) as caught:
        plan(**form)
    assert message in str(caught.value)
