"""The Loop simulator's backend: one shop's returns, notes, subscriptions and action log.

Like a moto backend, it holds all state behind one lock and has no HTTP in it: `loop_app` only
translates requests to these methods, and the orchestrator and tests call them directly to seed
returns (`add_return`), move labels (`set_label_status`), or check what happened (`actions_for`,
`notes_for`). Actions and settling live in `loop_actions`, subscriptions and label webhooks in
`loop_webhooks`; methods that answer the API return vendor JSON or raise `LoopError`.
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.corruption import Corruptions, HtmlErrorPage, Mutator
from include.returns_sync.sandbox.delivery import WebhookDispatcher
from include.returns_sync.sandbox.loop_actions import LoopActionsMixin
from include.returns_sync.sandbox.loop_listing import (
    _cursor_key,
    _encode_cursor,
    _ListQuery,
    _sort_key,
)
from include.returns_sync.sandbox.loop_records import (
    LABEL_STATUSES,
    NOT_FOUND,
    OUTCOMES,
    STATES,
    Action,
    LineItem,
    LoopError,
    Note,
    ReturnRecord,
    Subscription,
    _require,
)
from include.returns_sync.sandbox.loop_render import (
    _asn_view,
    _details_view,
    _list_view,
    _note_view,
)
from include.returns_sync.sandbox.loop_webhooks import LoopWebhooksMixin

_ID_COUNTERS = (
    "_return_ids",
    "_order_ids",
    "_line_item_ids",
    "_asn_row_ids",
    "_note_ids",
    "_webhook_ids",
    "_tracking_numbers",
)


class LoopBackend(LoopActionsMixin, LoopWebhooksMixin):
    """Loop's state for one shop, usable in-process (tests) or behind `build_loop_app`.

    Decision: `flag_moves_to_review=False` by default (the state stays `open` and a flagged
    marker is set, the harder case for clients); `process_delay` seconds after a Process call
    the return becomes `closed` (0 = on the next read); `allow_flagged_to_process` mirrors the
    admin setting of that name; `expire_after_days` (None = never) expires returns whose label
    is still `new`/`pre_transit` after that many days, as Loop does after 28.

    Several shops (one per merchant, `Sandbox(merchants=...)`) are several backends, each with
    its own API key, shop id, webhook secret, returns, notes, subscriptions and action log;
    `shares_ids_with` makes a shop draw its ids (returns, orders, line items, notes, webhooks,
    tracking numbers) from another shop's counters, so ids stay unique across the platform as
    Loop's database ids are, and a client mixing up shops fails loudly instead of colliding.
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
        strict: bool = False,
        shares_ids_with: LoopBackend | None = None,
    ) -> None:
        self.clock = clock or SandboxClock()
        #: The harsher reading of what Loop's docs leave open (see `strict.py`).
        self.strict = strict
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
        self._dispositions: dict[int, dict[str, Any]] = {}
        self._processing_fails: set[str] = set()
        self.processing_failed: list[str] = []
        self._return_ids = itertools.count(first_return_id)
        self._order_ids = itertools.count(7_100_001)
        self._line_item_ids = itertools.count(910_000_001)
        self._asn_row_ids = itertools.count(3_000_001)
        self._note_ids = itertools.count(501)
        self._webhook_ids = itertools.count(12_345)
        self._tracking_numbers = itertools.count(1)
        if shares_ids_with is not None:
            for name in _ID_COUNTERS:
                setattr(self, name, getattr(shares_ids_with, name))
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

    def _record(self, return_id: str) -> ReturnRecord:
        record = self._returns.get(str(return_id))
        if record is None:
            raise KeyError(f"unknown Loop return {return_id!r}")
        self._settle(record)
        return record

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
