"""A stateful simulator of the Loop Returns API (the subset returns-sync uses).

`LoopBackend` holds the returns, notes, webhook subscriptions and an action log; `build_loop_app`
is the thin HTTP layer, faithful to ../shared/contracts/loop and /work/shared/docs/loop-api.md,
including the quirks a client must survive:

- the detailed list defaults to the last 24 hours and to states open/closed/expired, rejects
  windows over 120 days, is a bare array unless `paginate=true`, and its `nextPageUrl` is a full
  /api/v1 URL that drops `from`, `state` and `paginate` (a client must re-send its own params);
- ids are strings in list/details payloads, `provider_order_id` is a string in the list and an
  integer in details;
- actions answer HTTP 200 with an error body when the return's state forbids them, and the
  success body is the JSON string "true"; Get Notes answers 422 when there are none;
- Process is asynchronous (queued, closed after `process_delay` seconds);
- label changes are POSTed, signed, to active `label` subscriptions from a background thread.

Decisions where the docs are silent are marked "Decision:" below.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from include.returns_sync.sandbox.common import (
    SandboxClock,
    WebhookDispatcher,
    as_utc,
    sign_loop,
)
from include.returns_sync.sandbox.corruption import Corruptions, HtmlErrorPage, Mutator

STATES = ("open", "closed", "cancelled", "expired", "review")
DEFAULT_LIST_STATES = ("open", "closed", "expired")
OUTCOMES = ("refund", "exchange", "store_credit", "gift_card")
LABEL_STATUSES = (
    "new",
    "pre_transit",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "failure",
    "error",
)
WEBHOOK_TOPICS = (
    "return",
    "label",
    "restock",
    "label.request",
    "giftcard",
    "happy.returns.shipment",
)
WEBHOOK_TRIGGERS = (
    "return.created",
    "return.updated",
    "return.closed",
    "label.created",
    "label.updated",
    "restock.requested",
    "label.request.issued",
    "label.request.cancelled",
    "giftcard.requested",
    "shipment.processed",
)
MAX_WINDOW = timedelta(days=120)
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 750
NOTE_LIMIT = 255
API_PREFIXES = ("/api/v1", "/api/2026-07")

UNAUTHORIZED = {
    "error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}
}
NOT_FOUND = {"errors": {"code": "NOT_FOUND"}}
NOTE_INVALID = "Content is required and must be less than 255 characters."


class LoopError(Exception):
    """An answer Loop gives instead of the happy path: HTTP status + exact body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------- state


@dataclass
class LineItem:
    line_item_id: int
    asn_row_id: int
    sku: str
    title: str
    price: str
    return_reason: str
    outcome: str
    barcode: str
    product_id: int
    variant_id: int


@dataclass
class ReturnRecord:
    """One Loop return as the backend keeps it (datetimes, not strings)."""

    id: str
    state: str
    outcome: str
    created_at: datetime
    updated_at: datetime
    order_id: int
    order_name: str
    provider_order_id: int
    customer: str
    currency: str
    line_items: list[LineItem]
    carrier: str | None = None
    tracking_number: str | None = None
    label_status: str | None = None
    label_updated_at: datetime | None = None
    destination_id: str | None = "67896541368765"
    flagged: bool = False
    closed_at: datetime | None = None
    process_due_at: datetime | None = None

    @property
    def total(self) -> str:
        cents = sum(round(float(item.price) * 100) for item in self.line_items)
        return f"{cents / 100:.2f}"


@dataclass
class Note:
    id: int
    return_id: str
    content: str
    created_at: datetime


@dataclass
class Subscription:
    id: int
    shop_id: int
    topic: str
    trigger: str
    url: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shop_id": self.shop_id,
            "topic": self.topic,
            "trigger": self.trigger,
            "url": self.url,
            "status": self.status,
        }


@dataclass(frozen=True)
class Action:
    """One action call as Loop saw it; `ok` False when Loop answered with an error body."""

    return_id: str
    action: str
    at: datetime
    ok: bool
    result: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "return_id": self.return_id,
            "action": self.action,
            "at": iso(self.at),
            "ok": self.ok,
            "result": self.result,
        }


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


class LoopBackend:
    """Loop's state for one shop, usable in-process (tests) or behind `build_loop_app`.

    Decision: `flag_moves_to_review=False` by default (the state stays `open` and a flagged
    marker is set, the harder case for clients); `process_delay` seconds after a Process call
    the return becomes `closed` (0 = on the next read); `allow_flagged_to_process` mirrors the
    admin setting of that name; `expire_after_days` (None = never) expires returns whose label
    is still `new`/`pre_transit` after that many days, as Loop does after 28.
    """

    def __init__(
        self,
        *,
        clock: SandboxClock | None = None,
        api_key: str = "sandbox-loop-key",
        webhook_secret: str = "sandbox-loop-webhook-secret",
        shop_id: int = 65432,
        flag_moves_to_review: bool = False,
        allow_flagged_to_process: bool = False,
        process_delay: float = 0.0,
        expire_after_days: int | None = None,
        dispatcher: WebhookDispatcher | None = None,
        first_return_id: int = 48_000_001,
    ) -> None:
        self.clock = clock or SandboxClock()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.shop_id = shop_id
        self.flag_moves_to_review = flag_moves_to_review
        self.allow_flagged_to_process = allow_flagged_to_process
        self.process_delay = process_delay
        self.expire_after_days = expire_after_days
        self.webhooks = dispatcher or WebhookDispatcher()
        self._lock = threading.RLock()
        self._returns: dict[str, ReturnRecord] = {}
        self._notes: list[Note] = []
        self._subscriptions: dict[int, Subscription] = {}
        self._actions: list[Action] = []
        self._return_ids = itertools.count(first_return_id)
        self._order_ids = itertools.count(7_100_001)
        self._line_item_ids = itertools.count(910_000_001)
        self._asn_row_ids = itertools.count(3_000_001)
        self._note_ids = itertools.count(501)
        self._webhook_ids = itertools.count(12_345)
        self._tracking_numbers = itertools.count(1)
        #: Opt-in bad payloads per return id (tests of vendor misbehaviour; see corruption.py).
        self.corruptions = Corruptions()

    # ----------------------------------------------------------------- seeding

    def add_return(
        self,
        *,
        order_name: str,
        provider_order_id: int | str,
        items: Sequence[tuple[str, int]] = (),
        outcome: str = "refund",
        state: str = "open",
        label_status: str | None = "pre_transit",
        created_at: datetime | None = None,
        label_updated_at: datetime | None = None,
        carrier: str = "USPS",
        tracking_number: str | None = None,
        customer: str = "customer@example.com",
        currency: str = "USD",
        titles: Mapping[str, str] | None = None,
        prices: Mapping[str, str] | None = None,
        return_reason: str = "Too small",
        return_id: str | None = None,
        flagged: bool = False,
    ) -> dict[str, Any]:
        """Create a return; `items` are (sku, units), one line item per unit as Loop does.

        A return created with a label fires `label.created` to matching subscriptions.
        """
        _require(state in STATES, f"state must be one of {STATES}, got {state!r}")
        _require(outcome in OUTCOMES, f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        _require(
            label_status is None or label_status in LABEL_STATUSES,
            f"label_status must be one of {LABEL_STATUSES} or None, got {label_status!r}",
        )
        with self._lock:
            rid = str(return_id) if return_id is not None else str(next(self._return_ids))
            _require(rid not in self._returns, f"return {rid} already exists")
            created = created_at or self.clock.now()
            lines = self._line_items(items, outcome, titles or {}, prices or {}, return_reason)
            record = ReturnRecord(
                id=rid,
                state=state,
                outcome=outcome,
                created_at=created,
                updated_at=created,
                order_id=next(self._order_ids),
                order_name=order_name,
                provider_order_id=int(provider_order_id),
                customer=customer,
                currency=currency,
                line_items=lines,
                flagged=flagged,
                closed_at=created if state == "closed" else None,
            )
            if label_status is not None:
                record.carrier = carrier
                record.tracking_number = tracking_number or self._new_tracking_number()
                record.label_status = label_status
                record.label_updated_at = label_updated_at or created
                record.updated_at = max(created, record.label_updated_at)
            self._returns[rid] = record
            if label_status is not None:
                self._notify_label(record, "label.created")
            return _list_view(record)

    def _line_items(
        self,
        items: Sequence[tuple[str, int]],
        outcome: str,
        titles: Mapping[str, str],
        prices: Mapping[str, str],
        reason: str,
    ) -> list[LineItem]:
        lines = []
        for sku, units in items:
            _require(units >= 1, f"units for {sku!r} must be >= 1, got {units}")
            product_id = 6_000_000_000 + sum(map(ord, sku)) * 97
            for _ in range(units):
                lines.append(
                    LineItem(
                        line_item_id=next(self._line_item_ids),
                        asn_row_id=next(self._asn_row_ids),
                        sku=sku,
                        title=titles.get(sku, f"Product {sku}"),
                        price=prices.get(sku, "25.00"),
                        return_reason=reason,
                        outcome=outcome,
                        barcode=f"0{zlib.crc32(sku.encode()) % 10**11:011d}",
                        product_id=product_id,
                        variant_id=product_id + 1,
                    )
                )
        return lines

    def _new_tracking_number(self) -> str:
        return f"9400{next(self._tracking_numbers):018d}"

    def corrupt(self, return_id: str, mutate: Mutator | HtmlErrorPage) -> None:
        """Serve this return's JSON through `mutate` (or as an HTML page) from now on."""
        self.corruptions.corrupt(return_id, mutate)

    # ----------------------------------------------------------------- mutations

    def set_label_status(self, return_id: str, status: str) -> dict[str, Any]:
        """Move a return's label (creating it if there was none); fires the label webhook."""
        _require(status in LABEL_STATUSES, f"label status must be one of {LABEL_STATUSES}")
        with self._lock:
            record = self._record(return_id)
            if record.label_status == status:
                return _list_view(record)
            trigger = "label.created" if record.label_status is None else "label.updated"
            now = self.clock.now()
            if record.tracking_number is None:
                record.carrier = record.carrier or "USPS"
                record.tracking_number = self._new_tracking_number()
            record.label_status = status
            record.label_updated_at = now
            record.updated_at = now
            self._notify_label(record, trigger)
            return _list_view(record)

    def set_state(self, return_id: str, state: str) -> dict[str, Any]:
        """Change a return's state directly, as a merchant in Loop admin would."""
        _require(state in STATES, f"state must be one of {STATES}, got {state!r}")
        with self._lock:
            record = self._record(return_id)
            self._transition(record, state)
            return _list_view(record)

    def _transition(self, record: ReturnRecord, state: str) -> None:
        now = self.clock.now()
        record.state = state
        record.updated_at = now
        if state == "closed":
            record.closed_at = now

    # ----------------------------------------------------------------- reads

    def get(self, return_id: str) -> dict[str, Any]:
        """The return as the detailed list shows it (KeyError if unknown)."""
        with self._lock:
            return _list_view(self._record(str(return_id)))

    def all_returns(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_list_view(record) for record in self._sorted("created_at")]

    def actions_for(self, return_id: str) -> list[dict[str, Any]]:
        """Every action call on one return, oldest first (failed ones included)."""
        with self._lock:
            return [a.to_dict() for a in self._actions if a.return_id == str(return_id)]

    def actions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.to_dict() for a in self._actions]

    def notes_for(self, return_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_note_view(n) for n in self._notes if n.return_id == str(return_id)]

    def is_flagged(self, return_id: str) -> bool:
        with self._lock:
            return self._record(str(return_id)).flagged

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_dict() for s in self._subscriptions.values()]

    def _record(self, return_id: str) -> ReturnRecord:
        record = self._returns.get(str(return_id))
        if record is None:
            raise KeyError(f"unknown Loop return {return_id!r}")
        self._settle(record)
        return record

    def _settle(self, record: ReturnRecord) -> None:
        """Apply what time has done: finish queued processing, expire stale labels."""
        now = self.clock.now()
        if record.process_due_at is not None and now >= record.process_due_at:
            record.process_due_at = None
            if record.state == "open":
                record.state = "closed"
                record.updated_at = now
                record.closed_at = now
        if (
            self.expire_after_days is not None
            and record.state == "open"
            and record.label_status in (None, "new", "pre_transit")
            and now - record.created_at > timedelta(days=self.expire_after_days)
        ):
            self._transition(record, "expired")

    def _sorted(self, field_name: str) -> list[ReturnRecord]:
        for record in self._returns.values():
            self._settle(record)
        return sorted(self._returns.values(), key=lambda r: _sort_key(r, field_name))

    # ----------------------------------------------------------------- API operations

    def list_returns(
        self, query: _ListQuery
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """One page of the detailed list: (returns, next cursor, previous cursor)."""
        with self._lock:
            matching = [
                r
                for r in self._sorted(query.column)
                if r.state in query.states and query.start <= getattr(r, query.column) <= query.end
            ]
        if not query.paginate:
            return [self.corruptions.in_list(r.id, _list_view(r)) for r in matching], None, None
        keys = [_sort_key(r, query.column) for r in matching]
        cursor = query.cursor
        if cursor is None:
            page, has_before = matching[: query.page_size + 1], False
            has_after = len(page) > query.page_size
            page = page[: query.page_size]
        else:
            pivot = _cursor_key(cursor, query.column)
            if cursor.get("_pointsToNextItems", True):
                after = [r for r, k in zip(matching, keys, strict=True) if k > pivot]
                page, has_after, has_before = (
                    after[: query.page_size],
                    len(after) > query.page_size,
                    True,
                )
            else:
                before = [r for r, k in zip(matching, keys, strict=True) if k < pivot]
                page = before[-query.page_size :]
                has_before, has_after = len(before) > query.page_size, True
        next_cursor = _encode_cursor(page[-1], query.column, True) if page and has_after else None
        prev_cursor = _encode_cursor(page[0], query.column, False) if page and has_before else None
        page_view = [self.corruptions.in_list(r.id, _list_view(r)) for r in page]
        return page_view, next_cursor, prev_cursor

    def asn_rows(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """ASN report: one row per line item of every return with a label, by `updated_at`."""
        with self._lock:
            return [
                _asn_view(r, item)
                for r in self._sorted("updated_at")
                if r.tracking_number is not None and start <= r.updated_at <= end
                for item in r.line_items
            ]

    def details(self, params: Mapping[str, str]) -> Any:
        """Get Return Details by `return_id`, `order_id` (Shopify order id) or `order_name`."""
        with self._lock:
            if params.get("return_id"):
                record = self._returns.get(params["return_id"].strip())
                if record is None:
                    raise LoopError(404, NOT_FOUND)
                self._settle(record)
                return self.corruptions.alone(record.id, _details_view(record))
            if params.get("order_id"):
                found = [
                    r
                    for r in self._sorted("created_at")
                    if str(r.provider_order_id) == params["order_id"].strip()
                ]
            elif params.get("order_name"):
                wanted = params["order_name"].strip().lstrip("#")
                found = [
                    r for r in self._sorted("created_at") if r.order_name.lstrip("#") == wanted
                ]
            else:
                raise LoopError(
                    422,
                    {
                        "message": "One of return_id, order_id or order_name is required.",
                        "errors": {"return_id": ["The return id field is required."]},
                    },
                )
            if not found:
                raise LoopError(404, NOT_FOUND)
            # Decision: several returns on one order -> the most recent one.
            return self.corruptions.alone(found[-1].id, _details_view(found[-1]))

    def act(self, return_id: str, action: str) -> Any:
        """Process, flag, cancel or close; returns the 200 body ("true" or an error object)."""
        handlers: dict[str, Callable[[ReturnRecord], Any]] = {
            "process": self._process,
            "flag": self._flag,
            "cancel": self._cancel,
            "close": self._close,
        }
        with self._lock:
            record = self._lookup_for_action(return_id, action)
            body = handlers[action](record)
            self._log(record.id, action, body)
            return body

    def add_note(self, return_id: str, content: Any) -> str:
        with self._lock:
            record = self._lookup_for_action(return_id, "note")
            if not isinstance(content, str) or not content.strip() or len(content) >= NOTE_LIMIT:
                body = {"message": NOTE_INVALID, "errors": {"message": NOTE_INVALID}}
                self._actions.append(
                    Action(record.id, "note", self.clock.now(), False, NOTE_INVALID)
                )
                raise LoopError(422, body)
            note = Note(next(self._note_ids), record.id, content, self.clock.now())
            self._notes.append(note)
            self._log(record.id, "note", "true")
            return "true"

    def get_notes(self, return_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._lookup_for_action(return_id, None)
            notes = [_note_view(n) for n in self._notes if n.return_id == record.id]
        if not notes:
            raise LoopError(422, "false")
        return {"notes": notes}

    def _lookup_for_action(self, return_id: str, action: str | None) -> ReturnRecord:
        record = self._returns.get(str(return_id))
        if record is None:
            # Decision: an unknown id answers 404 NOT_FOUND (undocumented for actions).
            if action is not None:
                self._actions.append(
                    Action(str(return_id), action, self.clock.now(), False, "NOT_FOUND")
                )
            raise LoopError(404, NOT_FOUND)
        self._settle(record)
        return record

    def _log(self, return_id: str, action: str, body: Any) -> None:
        ok = body == "true"
        result = "true" if ok else json.dumps(body, sort_keys=True)
        self._actions.append(Action(return_id, action, self.clock.now(), ok, result))

    def _process(self, record: ReturnRecord) -> Any:
        if record.state == "cancelled":
            return {"message": "Return is cancelled and therefore cannot be processed."}
        if record.state == "review":
            return {"message": "Return is review and therefore cannot be processed."}
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        if record.flagged and not self.allow_flagged_to_process:
            return _state_error("open", "UNPROCESSABLE_FLAGGED_RETURN")
        # Queued, not done: a second call before it settles is accepted again (undocumented).
        if record.process_due_at is None:
            record.process_due_at = self.clock.now() + timedelta(seconds=self.process_delay)
        return "true"

    def _flag(self, record: ReturnRecord) -> Any:
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        record.flagged = True
        record.updated_at = self.clock.now()
        if self.flag_moves_to_review:
            self._transition(record, "review")
        return "true"

    def _cancel(self, record: ReturnRecord) -> Any:
        if record.state == "expired":
            return {"content": "Return is expired and cannot be processed."}
        if record.flagged and record.state in ("open", "review"):
            return {"content": "Return is flagged and cannot be processed."}
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        self._transition(record, "cancelled")
        return "true"

    def _close(self, record: ReturnRecord) -> Any:
        if record.state == "cancelled":
            return {"message": "Return is cancelled and therefore cannot be processed."}
        if record.state not in ("open", "review"):
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        self._transition(record, "closed")
        return "true"

    # ----------------------------------------------------------------- webhooks

    def create_subscription(self, body: Any) -> dict[str, Any]:
        topic, trigger, url, status = _subscription_fields(body, default_status="inactive")
        with self._lock:
            sub = Subscription(next(self._webhook_ids), self.shop_id, topic, trigger, url, status)
            self._subscriptions[sub.id] = sub
            return sub.to_dict()

    def update_subscription(self, webhook_id: str, body: Any) -> None:
        with self._lock:
            sub = self._subscription(webhook_id)
            topic, trigger, url, status = _subscription_fields(body, default_status=sub.status)
            sub.topic, sub.trigger, sub.url, sub.status = topic, trigger, url, status

    def delete_subscription(self, webhook_id: str) -> None:
        with self._lock:
            sub = self._subscription(webhook_id)
            del self._subscriptions[sub.id]

    def _subscription(self, webhook_id: str) -> Subscription:
        sub = self._subscriptions.get(int(webhook_id)) if webhook_id.isdigit() else None
        if sub is None:
            raise LoopError(404, NOT_FOUND)
        return sub

    def _notify_label(self, record: ReturnRecord, trigger: str) -> None:
        targets = [
            s
            for s in self._subscriptions.values()
            if s.status == "active" and s.topic == "label" and s.trigger == trigger
        ]
        if not targets:
            return
        body = _php_json(label_payload(record, trigger, self.shop_id))
        headers = {
            "Content-Type": "application/json",
            "X-Loop-Signature": sign_loop(self.webhook_secret, body),
            "User-Agent": "Loop-Webhooks/1.0 (sandbox)",
        }
        for sub in targets:
            self.webhooks.submit(sub.url, body, headers, topic=f"label/{trigger}")


# --------------------------------------------------------------------------- views


def iso(moment: datetime) -> str:
    """Loop's timestamp format: UTC with milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _opt_iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _line_item_view(item: LineItem) -> dict[str, Any]:
    return {
        "line_item_id": item.line_item_id,
        "provider_line_item_id": str(item.line_item_id + 12_000_000_000),
        "product_id": item.product_id,
        "variant_id": item.variant_id,
        "sku": item.sku,
        "title": item.title,
        "price": item.price,
        "discount": "0.00",
        "tax": "0.00",
        "refund": item.price if item.outcome == "refund" else "0.00",
        "return_reason": item.return_reason,
        "parent_return_reason": None,
        "return_comment": None,
        "barcode": item.barcode,
        "outcome": item.outcome,
        "exchange_variant": None,
    }


def _base_view(record: ReturnRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "state": record.state,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "edited_at": None,
        "total": record.total,
        "outcome": record.outcome,
        "order_id": str(record.order_id),
        "order_name": record.order_name,
        "order_number": record.order_name.lstrip("#"),
        "customer": record.customer,
        "multi_currency": False,
        "currency": record.currency,
        "refund": record.total if record.outcome == "refund" else "0.00",
        "handling_fee": "0.00",
        "carrier": record.carrier,
        "tracking_number": record.tracking_number,
        "label_status": record.label_status,
        "label_updated_at": _opt_iso(record.label_updated_at),
        "label_url": (
            f"https://labels.example.com/{record.tracking_number}.pdf"
            if record.tracking_number
            else None
        ),
        "destination_id": record.destination_id,
        "status_page_url": f"https://sandbox-shop.loopreturns.com/#/return/{record.id}",
        "line_items": [_line_item_view(item) for item in record.line_items],
    }


def _list_view(record: ReturnRecord) -> dict[str, Any]:
    """Detailed-list shape: ids and `provider_order_id` are strings."""
    view = _base_view(record)
    view["provider_order_id"] = str(record.provider_order_id)
    view["provider_order_number"] = record.order_name.lstrip("#")
    return view


def _details_view(record: ReturnRecord) -> dict[str, Any]:
    """Details shape: the same record, but `provider_order_id` is an integer (vendor quirk)."""
    view = _base_view(record)
    view["provider_order_id"] = record.provider_order_id
    view["provider_order_number"] = _int_or_none(record.order_name.lstrip("#"))
    return view


def _asn_view(record: ReturnRecord, item: LineItem) -> dict[str, Any]:
    """One ASN row. Decision: no return id, as in Loop's docs (the backfill uses the list)."""
    return {
        "id": item.asn_row_id,
        "return_line_item_id": str(item.line_item_id),
        "order_id": str(record.order_id),
        "order_name": record.order_name,
        "order_number": record.order_name.lstrip("#"),
        "provider_order_number": record.order_name.lstrip("#"),
        "state": record.state,
        "customer_email": record.customer,
        "title": item.title,
        "purchase_price": item.price,
        "sku": item.sku,
        "barcode": item.barcode,
        "carrier": record.carrier,
        "service": "First-Class Package Service",
        "label_status": record.label_status,
        "tracking_number": record.tracking_number,
        "integration_tracking_url": f"https://track.example.com/{record.tracking_number}",
        "restock_status": None,
        "currency": record.currency,
        "label_updated_at": _opt_iso(record.label_updated_at),
        "label_url": f"https://labels.example.com/{record.tracking_number}.pdf",
        "label_rate": "7.50",
        "closed_at": _opt_iso(record.closed_at),
        "updated_at": iso(record.updated_at),
        "created_at": iso(record.created_at),
        "return_reason": item.return_reason,
        "actioned_by": None,
        "return_method": "mail",
        "outcome": item.outcome,
        "destination_id": record.destination_id,
        "destination_name": "Sandbox Warehouse",
    }


def _note_view(note: Note) -> dict[str, Any]:
    return {"id": note.id, "content": note.content, "created_at": iso(note.created_at)}


def label_payload(record: ReturnRecord, trigger: str, shop_id: int) -> dict[str, Any]:
    """The `label` topic payload (label-webhook.payload.yml); the return id is a string."""
    return {
        "topic": "label",
        "trigger": trigger,
        "shop_id": str(shop_id),
        "id": record.id,
        "order_id": str(record.order_id),
        "provider_order_id": record.provider_order_id,
        "carrier": record.carrier,
        "tracking_number": record.tracking_number,
        "label_status": record.label_status,
        "label_updated_at": (
            record.label_updated_at.isoformat() if record.label_updated_at else None
        ),
        "shipment_id": f"shp_{record.id}",
    }


def _php_json(payload: Mapping[str, Any]) -> bytes:
    """Serialise like Loop's PHP backend: compact, with escaped slashes. A receiver that
    re-serialises the JSON before checking the signature will fail, as it would in production."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def _state_error(state: str, code: str) -> dict[str, Any]:
    return {
        "errors": {"message": f"Return is {state} and therefore cannot be processed.", "code": code}
    }


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


def parse_when(raw: str, name: str) -> datetime:
    """Accept Loop's date forms: `2023-01-01`, `2023-01-01 00:00:00`, ISO with Z or offset."""
    try:
        return as_utc(datetime.fromisoformat(raw.strip()))
    except ValueError as exc:
        message = f"The {name} field must be a valid date."
        raise LoopError(422, {"message": message, "errors": {name: [message]}}) from exc


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _subscription_fields(body: Any, *, default_status: str) -> tuple[str, str, str, str]:
    if not isinstance(body, dict):
        raise LoopError(422, {"message": "The body must be a JSON object.", "errors": {}})
    errors: dict[str, list[str]] = {}
    for name, allowed in (("topic", WEBHOOK_TOPICS), ("trigger", WEBHOOK_TRIGGERS)):
        value = body.get(name)
        if value is None:
            errors[name] = [f"The {name} field is required."]
        elif value not in allowed:
            errors[name] = [f"Must be one of the following values:{','.join(allowed)}"]
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors["url"] = ["The url field is required and must be a valid URL."]
    status = body.get("status", default_status)
    if status not in ("active", "inactive"):
        errors["status"] = ["Must be one of the following values:active,inactive"]
    if errors:
        first = next(iter(errors.values()))[0]
        raise LoopError(422, {"message": first, "errors": errors})
    return body["topic"], body["trigger"], url, status  # type: ignore[return-value]


# --------------------------------------------------------------------------- HTTP layer


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


def build_loop_app(backend: LoopBackend) -> FastAPI:
    """The Loop API over `backend`, served under /api/v1 and /api/2026-07."""
    app = FastAPI(
        title="Loop Returns API (sandbox)", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.exception_handler(LoopError)
    async def loop_error(_: Request, exc: LoopError) -> Response:
        return JSONResponse(exc.body, status_code=exc.status)

    def authorized(request: Request) -> None:
        if request.headers.get("x-authorization") != backend.api_key:
            raise LoopError(401, UNAUTHORIZED)

    router = APIRouter(dependencies=[Depends(authorized)])

    @router.get("/warehouse/return/list")
    def detailed_list(request: Request) -> Response:
        query = _list_query(request.query_params, backend.clock.now())
        returns, next_cursor, prev_cursor = backend.list_returns(query)
        if not query.paginate:
            return JSONResponse(returns)
        base = str(request.base_url).rstrip("/") + "/api/v1/warehouse/return/list?"

        def page_url(cursor: str | None) -> str | None:
            if cursor is None:
                return None
            # Loop's quirk: no `from`, `state` or `paginate` in the URL it hands back.
            keep = {"to": query.raw_to, "filter": query.column, "pageSize": str(query.page_size)}
            return base + urlencode({**keep, "cursor": cursor})

        return JSONResponse(
            {
                "returns": returns,
                "nextPageUrl": page_url(next_cursor),
                "previousPageUrl": page_url(prev_cursor),
            }
        )

    @router.get("/warehouse/return/details")
    def details(request: Request) -> Response:
        body = backend.details(request.query_params)
        if isinstance(body, HtmlErrorPage):
            return Response(body.body, status_code=body.status, media_type="text/html")
        return JSONResponse(body)

    @router.get("/warehouse/reporting/asn")
    def asn(request: Request) -> Response:
        start, end = _window(request.query_params, backend.clock.now())
        return JSONResponse(backend.asn_rows(start, end))

    @router.post("/warehouse/return/{return_id}/{action}")
    async def action(return_id: str, action: str, request: Request) -> Response:
        if action == "note":
            content = await _json_body(request)
            text = content.get("content") if isinstance(content, dict) else None
            return JSONResponse(backend.add_note(return_id, text))
        if action not in ("process", "flag", "cancel", "close"):
            raise LoopError(404, NOT_FOUND)
        return JSONResponse(backend.act(return_id, action))

    @router.get("/warehouse/return/{return_id}/notes")
    def notes(return_id: str) -> Response:
        return JSONResponse(backend.get_notes(return_id))

    @router.get("/webhooks")
    def list_webhooks() -> Response:
        return JSONResponse({"webhooks": backend.subscriptions()})

    @router.post("/webhooks")
    async def create_webhook(request: Request) -> Response:
        created = backend.create_subscription(await _json_body(request))
        return JSONResponse(created, status_code=201)

    @router.put("/webhooks/{webhook_id}")
    async def update_webhook(webhook_id: str, request: Request) -> Response:
        backend.update_subscription(webhook_id, await _json_body(request))
        return Response(status_code=204)

    @router.delete("/webhooks/{webhook_id}")
    def delete_webhook(webhook_id: str) -> Response:
        backend.delete_subscription(webhook_id)
        return Response(status_code=204)

    for prefix in API_PREFIXES:
        app.include_router(router, prefix=prefix)
    return app


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise LoopError(422, {"message": "The body must be valid JSON.", "errors": {}}) from exc


__all__ = [
    "LoopBackend",
    "LoopError",
    "build_loop_app",
    "iso",
    "label_payload",
    "parse_when",
]
