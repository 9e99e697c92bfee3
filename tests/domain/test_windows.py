from datetime import UTC, datetime, timedelta

from include.returns_sync.domain.windows import chunk_window, poll_window

END = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_first_poll_looks_back_the_initial_lookback() -> None:
    start, end = poll_window(
        watermark=None, end=END, overlap=timedelta(minutes=30), initial_lookback=timedelta(hours=24)
    )
    assert (start, end) == (END - timedelta(hours=24), END)


def test_later_polls_overlap_the_watermark() -> None:
    start, _ = poll_window(
        watermark=END - timedelta(minutes=5),
        end=END,
        overlap=timedelta(minutes=30),
        initial_lookback=timedelta(hours=24),
    )
    assert start == END - timedelta(minutes=35)


def test_windows_are_chunked_within_loops_limit_without_gaps() -> None:
    start = END - timedelta(days=300)
    chunks = list(chunk_window(start, END))
    assert chunks[0][0] == start and chunks[-1][1] == END
    assert all(b - a <= timedelta(days=120) for a, b in chunks)
    assert all(chunks[i][1] == chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert list(chunk_window(END, END)) == []
