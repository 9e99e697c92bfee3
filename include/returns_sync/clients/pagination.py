"""Pagination and batching, one helper per API style, free of HTTP so they are tested directly.

- Loop (`loop_cursor_pages`): opt-in cursor pagination. Each page is `{"returns": [...],
  "nextPageUrl": url|null}`. The next URL drops `from`, `state` and `paginate`, so following it
  verbatim would walk back through all history: we re-send our own parameters plus the `cursor`
  taken from it, and stop with an error if a cursor repeats.
- Whiplash (`whiplash_pages`): bare-array pages numbered from 1; only an empty page is the last
  (the server may cap `per_page` silently and promises no page-size header), and a page that
  repeats an earlier one is an error, not a loop.
- Whiplash incremental lists (`whiplash_updated_since`): keyset on `updated_at`, so a record that
  changes while we walk cannot shift the pages under us and make us skip its neighbour; an
  answer that does not move the cursor (an ignored predicate) is an error naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")

#: Loop refuses windows longer than this on the detailed returns list.
LOOP_MAX_WINDOW = timedelta(days=120)


class PaginationError(Exception):
    """The vendor's pagination broke its own rules (repeated cursor or page, ignored predicate)."""


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


def _row_key(row: Any) -> object:
    """A record's identity in a numbered walk: its `id`, else its whole JSON."""
    if isinstance(row, Mapping) and row.get("id") is not None:
        return row["id"]
    try:
        return json.dumps(row, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(row)


def whiplash_pages(
    fetch_page: Callable[[int], Any], *, key: Callable[[Any], object] = _row_key
) -> Iterator[list[Any]]:
    """Yield bare-array pages 1, 2, ... until a page comes back empty.

    Whiplash documents no maximum `per_page` and may serve fewer rows than asked without saying
    so (no page-size header is promised), so a short page proves nothing: only an empty page
    ends the walk, which costs exactly one request more than the data. A page whose records
    were all listed before (the server ignores `page`, or answers page N+1 like page N) raises
    PaginationError instead of looping. `key(row)` identifies a record (default: its `id`).
    """
    page_number = 1
    seen: set[object] = set()
    while True:
        page = fetch_page(page_number)
        if not isinstance(page, list):
            raise PaginationError(
                f"Whiplash returned a {type(page).__name__} page, expected a list"
            )
        if not page:
            return
        keys = [key(row) for row in page]
        if all(k in seen for k in keys):
            raise PaginationError(
                f"Whiplash answered page {page_number} with the records of an earlier page: "
                "it ignores the 'page' parameter; stopping instead of looping"
            )
        seen.update(keys)
        yield page
        page_number += 1


#: At most this many ids go into one `id_not_in` (URL length); more ties switch to `id_gt`.
MAX_EXCLUDED_TIES = 50
#: Time comparisons in error diagnosis allow this much rounding (Whiplash renders ms).
_TIME_SLACK = timedelta(milliseconds=1)


def whiplash_updated_since(
    fetch_page: Callable[[dict[str, Any]], list[T]],
    since: datetime | None,
    key: Callable[[T], tuple[object, datetime | None]],
    *,
    max_excluded: int = MAX_EXCLUDED_TIES,
) -> Iterator[T]:
    """Walk records in `(updated_at, id)` order with a pure keyset cursor: no page numbers.

    `fetch_page(predicates)` returns the first page of records matching the Ransack
    `predicates`, sorted by `updated_at asc, id asc`; `key(record)` gives `(id, updated_at)`.
    Page numbers would let a row vanish when another row leaves the page ahead of it during the
    walk (it is updated, so it moves to the end); a keyset cannot skip a row. Each id is
    yielded once (its first version): a row changed during the walk is seen again by the next
    poll's overlapping window.

    The page size is never assumed (Whiplash may cap `per_page` silently): the walk ends on an
    empty answer only. After a page whose last record is at instant `t`, the next request is
    `updated_at_gteq t` plus `id_not_in` the ids already listed at `t` (ties at `t` are few in
    practice), so an ordinary walk costs one request more than its pages. When more than
    `max_excluded` records share one instant, the rest of that instant is read by id
    (`updated_at_eq t, id_gt i`) and then everything later (`updated_at_gt t`): one more
    empty answer.

    Every request must move the cursor forward. An answer that does not (the server ignored
    one of our predicates and sent records already listed, or older ones) raises
    PaginationError naming the predicate, instead of looping or stopping silently.
    """
    seen: set[object] = set()
    query: dict[str, Any] = {} if since is None else {"updated_at_gteq": since}
    at: datetime | None = None  # the cursor's instant
    at_ids: set[object] = set()  # ids listed at `at` (the `id_not_in` set)
    tie_after: object = None  # in a tie walk: the last id read at `at`
    while True:
        page = fetch_page(query)
        if not page:
            if tie_after is None:
                return
            tie_after, query = None, {"updated_at_gt": at}  # the instant is done: go past it
            continue
        keys = [key(record) for record in page]
        for record, (record_id, _) in zip(page, keys, strict=True):
            if record_id not in seen:
                seen.add(record_id)
                yield record
        if tie_after is not None:  # reading the ties of `at` by id
            ids = [record_id for record_id, _ in keys]
            last = _max_id(ids)
            if last is None or not _id_after(last, tie_after):
                raise _ignored(query, keys)
            tie_after = last
            query = {"updated_at_eq": at, "id_gt": tie_after}
            continue
        stamped = [(record_id, stamp) for record_id, stamp in keys if stamp is not None]
        if not stamped:
            raise PaginationError(
                "Whiplash returned a page of records without updated_at: the walk cannot move "
                f"past them (search {_describe(query)})"
            )
        last_at = stamped[-1][1]
        at_last = {record_id for record_id, stamp in stamped if stamp == last_at}
        if at is not None and (last_at < at or (last_at == at and at_last <= at_ids)):
            raise _ignored(query, keys)
        at_ids = at_ids | at_last if last_at == at else at_last
        at = last_at
        if len(at_ids) > max_excluded:
            tie_after = _max_id(list(at_ids))
            query = {"updated_at_eq": at, "id_gt": tie_after}
        else:
            query = {"updated_at_gteq": at, "id_not_in": sorted(at_ids, key=_sortable)}


def _sortable(value: object) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def _max_id(ids: Sequence[object]) -> object:
    present = [value for value in ids if value is not None]
    return max(present, key=_sortable) if present else None


def _id_after(value: object, bound: object) -> bool:
    return _sortable(value) > _sortable(bound)


def _describe(query: Mapping[str, Any]) -> str:
    parts = []
    for name, value in query.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, list) and len(value) > 3:
            value = f"[{len(value)} ids]"
        parts.append(f"{name}={value}")
    return ", ".join(parts) or "(no predicate)"


def _violated(
    query: Mapping[str, Any], keys: Sequence[tuple[object, datetime | None]]
) -> list[str]:
    """The predicates of `query` that some returned record does not satisfy."""
    broken: list[str] = []
    for name, want in query.items():
        for record_id, stamp in keys:
            if name == "id_gt" and record_id is not None and not _id_after(record_id, want):
                break
            if name == "id_not_in" and record_id in set(want):
                break
            if stamp is None or not isinstance(want, datetime):
                continue
            if name == "updated_at_gteq" and stamp < want - _TIME_SLACK:
                break
            if name == "updated_at_gt" and stamp <= want:
                break
            if name == "updated_at_eq" and abs(stamp - want) > _TIME_SLACK:
                break
        else:
            continue
        broken.append(name)
    return broken


def _ignored(
    query: Mapping[str, Any], keys: Sequence[tuple[object, datetime | None]]
) -> PaginationError:
    broken = _violated(query, keys) or (list(query) if len(query) == 1 else [])
    if broken:
        which = " and ".join(repr(name) for name in broken)
        what = f"ignored the search predicate{'s' if len(broken) > 1 else ''} {which}"
    else:
        which = ", ".join(repr(name) for name in query)
        what = f"ignored one of the search predicates {which}"
    return PaginationError(
        f"Whiplash {what}: asked for {_describe(query)}, it answered with records already "
        "listed (the page repeats), so the walk cannot move forward; stopping instead of "
        "looping"
    )


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
