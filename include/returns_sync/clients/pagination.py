"""Pagination and batching, one helper per API style, free of HTTP so they are tested directly.

- Loop (`loop_cursor_pages`): opt-in cursor pagination. Each page is `{"returns": [...],
  "nextPageUrl": url|null}`. The next URL drops `from`, `state` and `paginate`, so following it
  verbatim would walk back through all history: we re-send our own parameters plus the `cursor`
  taken from it, and stop with an error if a cursor repeats.
- Whiplash (`whiplash_pages`): bare-array pages numbered from 1; a short or empty page is the last.
- Whiplash incremental lists (`whiplash_updated_since`): keyset on `updated_at`, so a record that
  changes while we walk cannot shift the pages under us and make us skip its neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")

#: Loop refuses windows longer than this on the detailed returns list.
LOOP_MAX_WINDOW = timedelta(days=120)


class PaginationError(Exception):
    """The vendor's pagination broke its own rules (repeated cursor, next page without cursor)."""


def cursor_from_next_page_url(next_page_url: str | None) -> str | None:
    """The `cursor` query value of Loop's `nextPageUrl`; None when there is no next page.

    Raises PaginationError for a next URL that carries no cursor: following it would loop or
    lose our filters.
    """
    if next_page_url is None or not str(next_page_url).strip():
        return None
    values = parse_qs(urlsplit(str(next_page_url)).query).get("cursor")
    if not values or not values[0]:
        raise PaginationError("Loop sent a nextPageUrl without a cursor")
    return values[0]


def loop_cursor_pages(
    fetch_page: Callable[[str | None], Any],
) -> Iterator[list[Any]]:
    """Yield each page's `returns` list; `fetch_page(cursor)` returns one decoded page.

    A bare JSON array (what Loop answers when pagination is off) is a single, final page.
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = fetch_page(cursor)
        if isinstance(page, list):
            yield page
            return
        if not isinstance(page, Mapping):
            raise PaginationError(f"Loop returned a {type(page).__name__} page, expected an object")
        records = page.get("returns") or []
        if not isinstance(records, list):
            raise PaginationError("Loop returned a page whose 'returns' is not a list")
        yield records
        cursor = cursor_from_next_page_url(page.get("nextPageUrl"))
        if cursor is None:
            return
        if cursor in seen:
            raise PaginationError("Loop repeated a pagination cursor; stopping to avoid a loop")
        seen.add(cursor)


def split_window(
    start: datetime, end: datetime, max_length: timedelta = LOOP_MAX_WINDOW
) -> list[tuple[datetime, datetime]]:
    """Cut [start, end) into consecutive chunks no longer than `max_length`."""
    if end <= start:
        raise ValueError(f"window end {end.isoformat()} is not after start {start.isoformat()}")
    chunks = []
    cursor = start
    while cursor < end:
        chunk_end = min(end, cursor + max_length)
        chunks.append((cursor, chunk_end))
        cursor = chunk_end
    return chunks


def whiplash_pages(
    fetch_page: Callable[[int], tuple[Any, int]], per_page: int
) -> Iterator[list[Any]]:
    """Yield bare-array pages 1, 2, ... until a page is shorter than the page size (or empty).

    `fetch_page(n)` returns `(rows, page_size)`: the server's own page size when it said so
    (a `Per-Page` header below what we asked for), else `per_page`. Comparing against what we
    asked for would stop after the first page of a server that caps the size.
    """
    page_number = 1
    while True:
        page, page_size = fetch_page(page_number)
        if not isinstance(page, list):
            raise PaginationError(
                f"Whiplash returned a {type(page).__name__} page, expected a list"
            )
        if page:
            yield page
        if len(page) < min(per_page, page_size):
            return
        page_number += 1


def whiplash_updated_since(
    fetch_page: Callable[[dict[str, Any]], tuple[list[T], int]],
    per_page: int,
    since: datetime | None,
    key: Callable[[T], tuple[object, datetime | None]],
) -> Iterator[T]:
    """Walk records in `(updated_at, id)` order with a pure keyset cursor: no page numbers.

    `fetch_page(predicates)` returns the first page of records matching the Ransack
    `predicates`, sorted by `updated_at asc, id asc`, with the effective page size (see
    `whiplash_pages`); `key(record)` gives `(id, updated_at)`. After a full page the cursor is
    its last record `(t, i)`: first the rest of the tie at `t` (`updated_at_eq t, id_gt i`), then
    everything later (`updated_at_gt t`). Page numbers would let a row vanish when another row
    leaves the page ahead of it during the walk (it is updated, so it moves to the end); a
    keyset cannot skip a row. Each id is yielded once (its first version): a row changed during
    the walk is seen again by the next poll's overlapping window.
    """
    seen: set[object] = set()

    def fresh(page: list[T]) -> Iterator[T]:
        for record in page:
            record_id, _ = key(record)
            if record_id not in seen:
                seen.add(record_id)
                yield record

    query: dict[str, Any] = {} if since is None else {"updated_at_gteq": since}
    while True:
        page, page_size = fetch_page(query)
        yield from fresh(page)
        if len(page) < min(per_page, page_size) or not page:
            return
        last_id, last_at = key(page[-1])
        if last_at is None:  # cannot move a cursor past a record without a time: stop safely
            return
        tie: dict[str, Any] = {"updated_at_eq": last_at, "id_gt": last_id}
        while True:  # the rest of the records that share the last instant, by id
            ties, tie_size = fetch_page(tie)
            yield from fresh(ties)
            if len(ties) < min(per_page, tie_size) or not ties:
                break
            tie = {"updated_at_eq": last_at, "id_gt": key(ties[-1])[0]}
        query = {"updated_at_gt": last_at}


def batched(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` values."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def unique_strings(values: Iterable[object], what: str) -> list[str]:
    """Stripped, de-duplicated (order kept) string forms; a blank value is a clear error."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a collection of values, not a single string")
    result: list[str] = []
    seen: set[str] = set()
    for value in values:
        text = "" if value is None else str(value).strip()
        if not text:
            raise ValueError(f"{what} contains a blank value")
        if text not in seen:
            seen.add(text)
            result.append(text)
    return result


def first_by(records: Sequence[T], rank: Callable[[T], Any]) -> T:
    """The preferred record among duplicates (lowest rank)."""
    return min(records, key=rank)
