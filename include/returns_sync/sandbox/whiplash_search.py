"""Ransack-style `search`, `sort` and pagination for the Whiplash simulator's list endpoints.

Whiplash's V2 list endpoints take `search` as a JSON object of Ransack predicates
(`{"originator_original_id_in": ["1", "2"], "m": "or"}`), `sort` as `"updated_at asc,id desc"`
and `page` / `per_page`, and answer with a bare JSON array. This module reproduces the parts we
rely on, including the quirks that bite a client:

- unknown attributes or predicates are ignored, so a misspelt filter silently filters nothing
  (`WhiplashBackend.ignored_predicates` makes known ones ignored too, for tests and `doctor`);
- blank values (`""`, `null`, `[]`) are ignored too, so `{"reference_in": []}` lists everything;
- a naive date-time value (`"2025-07-09 00:00:00"`) is read in the account's zone
  (America/New_York, the zone timestamps are rendered in), so send an explicit offset or `Z`;
- `_cont` / `_start` are case-insensitive (a LIKE on a case-insensitive collation), `_eq` is exact.

Resources declare which attributes are searchable (`Field`), the way a Ransack model does;
associations are written with underscores (`originator_original_id`, `return_items_sku`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

ACCOUNT_ZONE = ZoneInfo("America/New_York")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 250
STRICT_MAX_PER_PAGE = 50

# Longest first, so `_not_eq` is not read as `_eq` and `_not_in` not as `_in`.
PREDICATES = ("_not_eq", "_not_in", "_start", "_gteq", "_lteq", "_cont", "_eq", "_in", "_gt", "_lt")


class SearchError(ValueError):
    """The `search`, `sort` or paging parameters cannot be read at all (HTTP 400)."""


@dataclass(frozen=True)
class Field:
    """A searchable attribute: where its values live on a record, and how to compare them.

    `path` walks attributes (lists fan out, like a Ransack join: one matching row is enough);
    `kind` is "int", "str", "bool" or "time".
    """

    path: tuple[str, ...]
    kind: str = "str"

    def values(self, record: Any) -> list[Any]:
        current: list[Any] = [record]
        for step in self.path:
            following: list[Any] = []
            for node in current:
                value = node.get(step) if isinstance(node, Mapping) else getattr(node, step, None)
                if isinstance(value, list | tuple):
                    following.extend(value)
                elif value is not None:
                    following.append(value)
            current = following
        return current


Fields = Mapping[str, Field]


@dataclass(frozen=True)
class Condition:
    attribute: str
    predicate: str
    value: Any


@dataclass(frozen=True)
class Search:
    """Parsed conditions, combined with AND (default) or OR (`"m": "or"`)."""

    conditions: tuple[Condition, ...] = ()
    combinator: str = "and"

    def matches(self, record: Any, fields: Fields) -> bool:
        if not self.conditions:
            return True
        results = (
            _condition_holds(fields[cond.attribute], record, cond) for cond in self.conditions
        )
        return any(results) if self.combinator == "or" else all(results)


def parse_search(raw: str | None, fields: Fields, ignored: Collection[str] = frozenset()) -> Search:
    """Read the `search` query parameter; ignore what Ransack would ignore, reject bad JSON.

    `ignored` names predicates (`"id_gt"`, `"updated_at_gteq"`, ...) to drop as if Ransack did
    not know them: the test knob `WhiplashBackend.ignored_predicates`.
    """
    if raw is None or raw.strip() == "":
        return Search()
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SearchError(f"search is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(decoded, dict):
        raise SearchError('search must be a JSON object of predicates, e.g. {"sku_eq": "A-1"}')
    combinator = str(decoded.get("m", "and")).lower()
    conditions: list[Condition] = []
    for key, value in decoded.items():
        if key == "m" or key in ignored or _is_blank(value):
            continue
        split = _split_predicate(key)
        if split is None or split[0] not in fields:
            continue  # Ransack's quirk: an unknown attribute or predicate filters nothing
        conditions.append(Condition(split[0], split[1], value))
    return Search(tuple(conditions), "or" if combinator == "or" else "and")


def sort_records(records: list[Any], raw: str | None, fields: Fields) -> list[Any]:
    """Order by `sort` ("updated_at asc,id desc"); unknown attributes are ignored; ties by id."""
    ordered = sorted(records, key=partial(_sort_key, fields["id"]))
    if not raw:
        return ordered
    clauses = [part.split() for part in raw.split(",") if part.strip()]
    for clause in reversed(clauses):
        attribute = clause[0]
        direction = clause[1].lower() if len(clause) > 1 else "asc"
        if attribute not in fields or direction not in ("asc", "desc"):
            continue
        ordered.sort(key=partial(_sort_key, fields[attribute]), reverse=direction == "desc")
    return ordered


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    def slice(self, records: Sequence[Any]) -> list[Any]:
        start = (self.number - 1) * self.size
        return list(records[start : start + self.size])


def parse_page(
    raw_page: str | None, raw_per_page: str | None, max_per_page: int = MAX_PER_PAGE
) -> Page:
    """`page` counts from 1; `per_page` defaults to 50 and is capped silently at `max_per_page`.

    Whiplash documents neither the default nor the maximum: 250 is our lenient reading; the
    strict reading caps at 50 (`STRICT_MAX_PER_PAGE`, the page size Whiplash's own client asks
    for), so a client that trusts `per_page` stops after the first page.
    """
    number = _positive_int("page", raw_page, default=1)
    size = min(_positive_int("per_page", raw_per_page, default=DEFAULT_PER_PAGE), max_per_page)
    return Page(number, size)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 / "YYYY-MM-DD HH:MM:SS" value; naive values are in the account's zone."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    return moment.replace(tzinfo=ACCOUNT_ZONE) if moment.tzinfo is None else moment


def select_fields(entity: dict[str, Any], raw_fields: str | None) -> dict[str, Any]:
    """Apply the `fields` whitelist (comma-separated top-level names); empty means all."""
    wanted = {name.strip() for name in (raw_fields or "").split(",") if name.strip()}
    if not wanted:
        return entity
    return {key: value for key, value in entity.items() if key in wanted}


# --------------------------------------------------------------------------- internals


def _split_predicate(key: str) -> tuple[str, str] | None:
    for predicate in PREDICATES:
        if key.endswith(predicate) and len(key) > len(predicate):
            return key[: -len(predicate)], predicate[1:]
    return None


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, list | tuple):
        return all(_is_blank(item) for item in value)
    return False


def _cast(kind: str, value: Any) -> Any:
    """Cast a search value to the attribute's type; None (matches nothing) when impossible."""
    if kind == "int":
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    if kind == "bool":
        text = str(value).strip().lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(text)
    if kind == "time":
        return parse_time(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_Test = Callable[[Any, Any], bool]
_SCALAR_TESTS: dict[str, _Test] = {
    "eq": lambda have, want: have == want,
    "gt": lambda have, want: have > want,
    "gteq": lambda have, want: have >= want,
    "lt": lambda have, want: have < want,
    "lteq": lambda have, want: have <= want,
    "cont": lambda have, want: str(want).lower() in str(have).lower(),
    "start": lambda have, want: str(have).lower().startswith(str(want).lower()),
}


def _condition_holds(field: Field, record: Any, condition: Condition) -> bool:
    have_values = [_cast(field.kind, value) for value in field.values(record)]
    have_values = [value for value in have_values if value is not None]
    predicate = condition.predicate
    if predicate in ("in", "not_in"):
        raw = condition.value if isinstance(condition.value, list) else [condition.value]
        wanted = {_cast(field.kind, item) for item in raw if not _is_blank(item)} - {None}
        if predicate == "in":
            return any(value in wanted for value in have_values)
        return bool(have_values) and not any(value in wanted for value in have_values)
    want = _cast(field.kind, condition.value)
    if want is None:
        return False
    if predicate == "not_eq":
        return bool(have_values) and all(value != want for value in have_values)
    test = _SCALAR_TESTS[predicate]
    return any(_compare(test, have, want) for have in have_values)


def _compare(test: _Test, have: Any, want: Any) -> bool:
    try:
        return test(have, want)
    except TypeError:
        return False


def _sort_key(field: Field, record: Any) -> tuple[int, Any]:
    values = [_cast(field.kind, value) for value in field.values(record)]
    present = [value for value in values if value is not None]
    # Nulls sort first, as MySQL does for ascending order.
    return (1, present[0]) if present else (0, 0)


def _positive_int(name: str, raw: str | None, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError as exc:
        raise SearchError(f"{name} is invalid: expected a positive integer, got {raw!r}") from exc
    if number < 1:
        raise SearchError(f"{name} is invalid: expected a positive integer, got {raw!r}")
    return number


def field_table(entries: Iterable[tuple[str, str, str]]) -> dict[str, Field]:
    """Build a resource's searchable attributes from (name, dotted path, kind) triples."""
    return {name: Field(tuple(path.split(".")), kind) for name, path, kind in entries}
