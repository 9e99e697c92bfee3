"""Request parsing for the Loop simulator's list and report endpoints: windows and cursors.

The detailed list (`GET /warehouse/return/list`) and the ASN report take a `from`/`to` window
(default the last 24 hours, at most 120 days); the list also takes `filter`, `state`, `paginate`,
`pageSize` and a Laravel-style `cursor`. Every refusal is a `LoopError` 422 in Laravel's
validation shape. `LoopBackend.list_returns` pages with the cursor helpers here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from include.returns_sync.sandbox.clock import as_utc
from include.returns_sync.sandbox.loop_records import (
    DEFAULT_LIST_STATES,
    STATES,
    LoopError,
    ReturnRecord,
    iso,
)

MAX_WINDOW = timedelta(days=120)
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 750


@dataclass
class _ListQuery:
    start: datetime
    end: datetime
    column: str
    states: tuple[str, ...]
    paginate: bool
    page_size: int
    cursor: dict[str, Any] | None = None
    raw_to: str = ""


def _list_query(params: Mapping[str, str], now: datetime) -> _ListQuery:
    field_name = params.get("filter") or "created_at"
    if field_name not in ("created_at", "updated_at"):
        message = "The selected filter is invalid."
        raise LoopError(422, {"message": message, "errors": {"filter": [message]}})
    start, end = _window(params, now)
    state = params.get("state")
    if state is not None and state not in STATES:
        message = "The selected state is invalid."
        raise LoopError(422, {"message": message, "errors": {"state": [message]}})
    paginate = (params.get("paginate") or "").lower() in ("true", "1")
    page_size = DEFAULT_PAGE_SIZE
    if params.get("pageSize"):
        raw = params["pageSize"]
        if not raw.isdigit() or int(raw) < 1:
            message = "The page size must be a positive integer."
            raise LoopError(422, {"message": message, "errors": {"pageSize": [message]}})
        page_size = min(int(raw), MAX_PAGE_SIZE)  # Decision: above the max is capped, not refused.
    cursor = _decode_cursor(params["cursor"]) if params.get("cursor") and paginate else None
    return _ListQuery(
        start=start,
        end=end,
        column=field_name,
        states=(state,) if state else DEFAULT_LIST_STATES,
        paginate=paginate,
        page_size=page_size,
        cursor=cursor,
        raw_to=params.get("to") or iso(end),
    )


def _window(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """The from/to window. Neither -> last 24 h (documented); Decision: only `from` -> until
    now, only `to` -> the 24 h before it; more than 120 days or from > to -> 422."""
    raw_from, raw_to = params.get("from"), params.get("to")
    end = parse_when(raw_to, "to") if raw_to else now
    start = parse_when(raw_from, "from") if raw_from else end - DEFAULT_WINDOW
    if start > end:
        message = "The to must be a date after or equal to from."
        raise LoopError(422, {"message": message, "errors": {"to": [message]}})
    if end - start > MAX_WINDOW:
        message = "The date range may not be greater than 120 days."
        raise LoopError(422, {"message": message, "errors": {"from": [message]}})
    return start, end


def parse_when(raw: str, name: str) -> datetime:
    """Accept Loop's date forms: `2023-01-01`, `2023-01-01 00:00:00`, ISO with Z or offset."""
    try:
        return as_utc(datetime.fromisoformat(raw.strip()))
    except ValueError as exc:
        message = f"The {name} field must be a valid date."
        raise LoopError(422, {"message": message, "errors": {name: [message]}}) from exc


def _sort_key(record: ReturnRecord, field_name: str) -> tuple[datetime, int]:
    return getattr(record, field_name), int(record.id) if record.id.isdigit() else 0


def _encode_cursor(record: ReturnRecord, field_name: str, forward: bool) -> str:
    """Laravel-style cursor: base64 JSON of the sort columns plus a direction flag."""
    payload = {field_name: iso(getattr(record, field_name)), "id": record.id}
    payload["_pointsToNextItems"] = forward  # type: ignore[assignment]
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> dict[str, Any]:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise LoopError(
            422, {"message": "Invalid cursor.", "errors": {"cursor": [str(exc)]}}
        ) from exc
    if not isinstance(decoded, dict):
        raise LoopError(
            422, {"message": "Invalid cursor.", "errors": {"cursor": ["not an object"]}}
        )
    return decoded


def _cursor_key(cursor: Mapping[str, Any], field_name: str) -> tuple[datetime, int]:
    try:
        moment = parse_when(str(cursor[field_name]), "cursor")
        rid = str(cursor["id"])
        return moment, int(rid) if rid.isdigit() else 0
    except KeyError as exc:
        message = f"The cursor does not match filter {field_name}."
        raise LoopError(422, {"message": message, "errors": {"cursor": [message]}}) from exc
