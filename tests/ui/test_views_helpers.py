"""The small pure helpers of the views: how ages read, and the trend chart's series."""

from __future__ import annotations

from datetime import UTC, datetime

from include.returns_sync.views.app import age, duration, trend_chart
from include.returns_sync.views.auth import merchant_dag_ids, merchant_of_dag


def test_durations_read_like_people_say_them() -> None:
    assert duration(42) == "42 s"
    assert duration(125) == "2 min"
    assert duration(3 * 3600 + 5 * 60) == "3 h 5 min"
    assert duration(2 * 86400 + 4 * 3600) == "2 d 4 h"
    assert duration(None) == "–" and duration(-5) == "0 s"
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert age("2026-12-06T10:00:00+00:00", now) == "2 h 0 min"
    assert age("not a time", now) == "–"


def test_trend_chart_stacks_rmas_by_trigger_in_a_fixed_order() -> None:
    days = [
        {
            "day": "2026-12-05",
            "rmas": 4,
            "rmas_by_trigger": {"poll": 2, "webhook": 1},
            "processed": 3,
            "flagged": 1,
            "misses": 0,
            "median_label_to_rma_seconds": 90,
        },
        {
            "day": "2026-12-06",
            "rmas": 4,
            "rmas_by_trigger": {"backfill": 4},
            "processed": 0,
            "flagged": 0,
            "misses": 4,
            "median_label_to_rma_seconds": None,
        },
    ]
    chart = trend_chart(days)
    assert chart["labels"] == ["12-05", "12-06"]
    assert [s["label"] for s in chart["created"]] == [
        "RMAs created (webhook)",
        "RMAs created (poll)",
        "RMAs created (backfill)",
        "RMAs created (unknown)",  # one RMA of 12-05 has no recorded trigger
    ]
    assert [s["data"] for s in chart["created"]] == [[1, 0], [2, 0], [0, 4], [1, 0]]
    assert chart["misses"] == [0, 4] and chart["median_minutes"] == [1.5, None]


def test_our_dags_and_their_merchants() -> None:
    assert merchant_of_dag("loop_returns_to_whiplash") == "default"
    assert merchant_of_dag("whiplash_receipts_to_loop__acme") == "acme"
    assert merchant_of_dag("loop_asn_backfill__") is None
    assert merchant_of_dag("example_etl") is None
    assert merchant_dag_ids("acme") == (
        "loop_returns_to_whiplash__acme",
        "whiplash_receipts_to_loop__acme",
        "loop_asn_backfill__acme",
    )
