"""Pagination and batching helpers: cursor rules, page walks, keyset walks that lose nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.returns_sync.clients.pagination import (
    PaginationError,
    batched,
    cursor_from_next_page_url,
    loop_cursor_pages,
    split_window,
    unique_strings,
    whiplash_pages,
    whiplash_updated_since,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NEXT = "https://api.loopreturns.com/api/v1/warehouse/return/list?to=x&filter=updated_at&pageSize=2"


class TestLoopCursor:
    def test_the_cursor_is_taken_from_next_page_url(self) -> None:
        assert cursor_from_next_page_url(f"{NEXT}&cursor=eyJhIjoxfQ") == "eyJhIjoxfQ"
        assert cursor_from_next_page_url(None) is None
        assert cursor_from_next_page_url("") is None

    def test_a_next_page_url_without_cursor_is_an_error_not_an_endless_walk(self) -> None:
        with pytest.raises(PaginationError, match="without a cursor"):
            cursor_from_next_page_url(NEXT)

    def test_pages_are_followed_with_each_cursor_until_next_page_url_is_null(self) -> None:
        pages = {
            None: {"returns": [1, 2], "nextPageUrl": f"{NEXT}&cursor=c1"},
            "c1": {"returns": [3, 4], "nextPageUrl": f"{NEXT}&cursor=c2"},
            "c2": {"returns": [5], "nextPageUrl": None},
        }
        asked: list[str | None] = []

        def fetch(cursor: str | None) -> Any:
            asked.append(cursor)
            return pages[cursor]

        assert list(loop_cursor_pages(fetch)) == [[1, 2], [3, 4], [5]]
        assert asked == [None, "c1", "c2"]

    def test_a_repeated_cursor_stops_the_walk_with_an_error(self) -> None:
        def fetch(cursor: str | None) -> Any:
            return {"returns": [1], "nextPageUrl": f"{NEXT}&cursor=same"}

        with pytest.raises(PaginationError, match="repeated"):
            list(loop_cursor_pages(fetch))

    def test_a_bare_array_is_one_final_page(self) -> None:
        assert list(loop_cursor_pages(lambda cursor: [1, 2, 3])) == [[1, 2, 3]]

    def test_a_page_that_is_neither_object_nor_array_is_an_error(self) -> None:
        with pytest.raises(PaginationError):
            list(loop_cursor_pages(lambda cursor: "oops"))


class TestWindows:
    def test_a_window_within_120_days_is_one_chunk(self) -> None:
        assert split_window(T0, T0 + timedelta(days=120)) == [(T0, T0 + timedelta(days=120))]

    @given(days=st.floats(min_value=0.001, max_value=1000))
    def test_chunks_cover_the_window_exactly_and_none_exceeds_120_days(self, days: float) -> None:
        end = T0 + timedelta(days=days)
        chunks = split_window(T0, end)
        assert chunks[0][0] == T0 and chunks[-1][1] == end
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
        assert all(timedelta(0) < e - s <= timedelta(days=120) for s, e in chunks)

    def test_an_empty_or_reversed_window_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not after start"):
            split_window(T0, T0)


class TestWhiplashPages:
    @staticmethod
    def server(data: list[int], served: int) -> tuple[Any, list[int]]:
        """Numbered pages of `served` rows each (whatever was asked), recording page numbers."""
        asked: list[int] = []

        def fetch(page: int) -> list[dict[str, int]]:
            asked.append(page)
            return [{"id": n} for n in data[(page - 1) * served : page * served]]

        return fetch, asked

    def test_pages_are_read_until_an_empty_page_at_the_cost_of_one_request(self) -> None:
        fetch, asked = self.server(list(range(7)), 3)
        rows = [row["id"] for page in whiplash_pages(fetch) for row in page]
        assert rows == list(range(7))
        assert asked == [1, 2, 3, 4]

    def test_a_short_page_is_not_taken_for_the_last_one(self) -> None:
        """A capped server without a page-size header: 50 rows when we asked for 100."""
        fetch, asked = self.server(list(range(120)), 50)
        rows = [row["id"] for page in whiplash_pages(fetch) for row in page]
        assert rows == list(range(120))
        assert asked == [1, 2, 3, 4]

    def test_an_empty_list_costs_one_request(self) -> None:
        fetch, asked = self.server([], 50)
        assert list(whiplash_pages(fetch)) == []
        assert asked == [1]

    def test_a_server_that_ignores_page_is_an_error_not_an_endless_walk(self) -> None:
        asked: list[int] = []

        def fetch(page: int) -> list[dict[str, int]]:
            asked.append(page)
            return [{"id": 1}, {"id": 2}]

        with pytest.raises(PaginationError, match="page 2 with the records of an earlier page"):
            list(whiplash_pages(fetch))
        assert asked == [1, 2]

    def test_a_page_that_is_not_an_array_is_an_error(self) -> None:
        with pytest.raises(PaginationError):
            list(whiplash_pages(lambda page: {"a": 1}))


@dataclass
class Row:
    id: int
    updated_at: datetime


KEYSET_TESTS = {
    "updated_at_gteq": lambda r, v: r.updated_at >= v,
    "updated_at_gt": lambda r, v: r.updated_at > v,
    "updated_at_eq": lambda r, v: r.updated_at == v,
    "id_gt": lambda r, v: r.id > v,
    "id_not_in": lambda r, v: r.id not in v,
}


class SortedServer:
    """A fake list endpoint: rows matching the Ransack predicates, sorted (updated_at, id).

    Serves the first page only (the walk never asks for another), at most `cap` rows whatever
    the client asked for, and no page-size header. Predicates named in `ignored` are dropped,
    as Ransack drops what it does not know. `on_fetch` may mutate rows between requests, as a
    live system does.
    """

    def __init__(
        self, rows: list[Row], on_fetch: Any = None, cap: int = 50, ignored: set[str] = frozenset()
    ) -> None:
        self.rows = rows
        self.on_fetch = on_fetch
        self.cap = cap
        self.ignored = ignored
        self.requests = 0
        self.queries: list[dict[str, Any]] = []

    def fetch(self, predicates: dict[str, Any]) -> list[Row]:
        self.requests += 1
        self.queries.append(dict(predicates))
        if self.on_fetch:
            self.on_fetch(self)
        assert set(predicates) <= set(KEYSET_TESTS), predicates
        applied = {k: v for k, v in predicates.items() if k not in self.ignored}
        matching = sorted(
            (r for r in self.rows if all(KEYSET_TESTS[k](r, v) for k, v in applied.items())),
            key=lambda r: (r.updated_at, r.id),
        )
        return [Row(r.id, r.updated_at) for r in matching[: self.cap]]


def walk(server: SortedServer, since: datetime | None = None, **kwargs: Any) -> list[Row]:
    return list(
        whiplash_updated_since(
            server.fetch, since, key=lambda row: (row.id, row.updated_at), **kwargs
        )
    )


class TestKeysetWalk:
    def test_every_row_is_yielded_once_in_order(self) -> None:
        rows = [Row(i, T0 + timedelta(seconds=i)) for i in range(1, 26)]
        seen = walk(SortedServer(rows, cap=10))
        assert [r.id for r in seen] == list(range(1, 26))

    def test_a_capped_server_is_walked_to_the_end_for_one_extra_request(self) -> None:
        """We ask for 100 (the hook's default), the server serves 50 and says nothing."""
        rows = [Row(i, T0 + timedelta(seconds=i)) for i in range(1, 121)]
        server = SortedServer(rows, cap=50)
        assert [r.id for r in walk(server)] == list(range(1, 121))
        assert server.requests == 4  # 50 + 50 + 20 + the empty answer

    def test_an_empty_list_costs_one_request(self) -> None:
        server = SortedServer([])
        assert walk(server, since=T0) == []
        assert server.requests == 1

    def test_more_ties_than_a_page_holds_are_all_read(self) -> None:
        rows = [Row(i, T0) for i in range(1, 24)] + [Row(99, T0 + timedelta(seconds=1))]
        seen = walk(SortedServer(rows, cap=5))
        assert sorted(r.id for r in seen) == [*range(1, 24), 99]
        assert len(seen) == len(rows)

    def test_a_huge_tie_is_read_by_id_and_costs_one_more_empty_answer(self) -> None:
        rows = [Row(i, T0) for i in range(1, 24)] + [Row(99, T0 + timedelta(seconds=1))]
        server = SortedServer(rows, cap=5)
        seen = walk(server, max_excluded=8)
        assert sorted(r.id for r in seen) == [*range(1, 24), 99]
        assert {"updated_at_eq", "id_gt"} in [set(q) for q in server.queries]
        assert {"updated_at_gt"} in [set(q) for q in server.queries]
        assert server.requests == 5 + 1 + 1 + 1  # 23 ties by 5, the empty tie, 99, the end

    def test_since_is_a_lower_bound(self) -> None:
        rows = [Row(i, T0 + timedelta(seconds=i)) for i in range(1, 11)]
        seen = walk(SortedServer(rows, cap=3), since=T0 + timedelta(seconds=6))
        assert [r.id for r in seen] == [6, 7, 8, 9, 10]

    def test_a_row_updated_during_the_walk_does_not_make_its_neighbour_vanish(self) -> None:
        """Offset paging would skip row 6 here: row 1 moves to the end after page 1."""
        rows = [Row(i, T0 + timedelta(seconds=i)) for i in range(1, 11)]

        def touch_first_row_after_first_page(server: SortedServer) -> None:
            if server.requests == 2:
                server.rows[0].updated_at = T0 + timedelta(hours=1)

        seen = walk(SortedServer(rows, touch_first_row_after_first_page, cap=5))
        assert {r.id for r in seen} == set(range(1, 11))

    @pytest.mark.parametrize(
        ("ignored", "rows", "max_excluded"),
        [
            # The cursor instant is ignored: the first page comes back again.
            ({"updated_at_gteq"}, [Row(i, T0 + timedelta(seconds=i)) for i in range(1, 9)], 50),
            # Ties by id: the same tie page comes back again.
            ({"id_gt"}, [Row(i, T0) for i in range(1, 12)], 4),
            # The listed ties are not excluded: a page full of them comes back again.
            ({"id_not_in"}, [Row(i, T0) for i in range(1, 12)], 50),
        ],
    )
    def test_an_ignored_predicate_is_a_clear_error_naming_it_not_a_loop(
        self, ignored: set[str], rows: list[Row], max_excluded: int
    ) -> None:
        server = SortedServer(rows, cap=3, ignored=ignored)
        with pytest.raises(PaginationError) as caught:
            walk(server, max_excluded=max_excluded)
        (name,) = ignored
        assert f"ignored the search predicate {name!r}" in str(caught.value)
        assert "repeats" in str(caught.value)
        assert server.requests <= 6

    def test_after_a_tie_walk_an_ignored_updated_at_gt_is_named(self) -> None:
        rows = [Row(i, T0) for i in range(1, 6)] + [Row(9, T0 + timedelta(seconds=1))]
        server = SortedServer(rows, cap=2, ignored={"updated_at_gt"})
        with pytest.raises(PaginationError, match="predicate 'updated_at_gt'"):
            walk(server, max_excluded=2)

    def test_a_page_of_records_without_updated_at_is_an_error_not_a_silent_stop(self) -> None:
        def fetch(predicates: dict[str, Any]) -> list[tuple[int, None]]:
            return [(1, None), (2, None)]

        with pytest.raises(PaginationError, match="without updated_at"):
            list(whiplash_updated_since(fetch, None, key=lambda row: row))

    @settings(max_examples=60, deadline=None)
    @given(
        stamps=st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=40),
        cap=st.integers(min_value=1, max_value=7),
        max_excluded=st.integers(min_value=1, max_value=8),
        touches=st.lists(
            st.tuples(st.integers(min_value=0, max_value=39), st.integers(1, 5)), max_size=5
        ),
    )
    def test_no_row_is_ever_lost_while_rows_change_under_the_walk(
        self, stamps: list[int], cap: int, max_excluded: int, touches: list[tuple[int, int]]
    ) -> None:
        rows = [Row(i + 1, T0 + timedelta(seconds=s)) for i, s in enumerate(stamps)]
        plan = list(touches)

        def mutate(server: SortedServer) -> None:
            if plan and server.rows:
                index, bump = plan.pop(0)
                row = server.rows[index % len(server.rows)]
                row.updated_at = max(r.updated_at for r in server.rows) + timedelta(seconds=bump)

        server = SortedServer(rows, mutate, cap=cap)
        seen = walk(server, max_excluded=max_excluded)
        assert {r.id for r in seen} == {r.id for r in rows}
        assert server.requests < 10 * (len(rows) + 2)

    @settings(max_examples=60, deadline=None)
    @given(stamps=st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=40))
    def test_a_static_list_costs_its_pages_plus_one_request(self, stamps: list[int]) -> None:
        rows = [Row(i + 1, T0 + timedelta(seconds=s)) for i, s in enumerate(stamps)]
        server = SortedServer(rows, cap=10)
        assert {r.id for r in walk(server)} == {r.id for r in rows}
        assert server.requests == -(-len(rows) // 10) + 1


class TestBatching:
    def test_batches_hold_at_most_the_size(self) -> None:
        assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
        assert list(batched([], 3)) == []

    def test_keys_are_stripped_and_deduplicated_in_order(self) -> None:
        assert unique_strings([" A ", "b", "A", 7], "skus") == ["A", "b", "7"]

    def test_a_blank_key_or_a_bare_string_is_refused(self) -> None:
        with pytest.raises(ValueError, match="skus contains a blank value"):
            unique_strings(["a", " "], "skus")
        with pytest.raises(TypeError, match="not a single string"):
            unique_strings("SKU-1", "skus")
