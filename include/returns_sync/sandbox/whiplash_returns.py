"""Consumer-return rules of the Whiplash simulator: create validation, updates, receiving.

Create follows `PostApiV2ConsumerReturnsRequest`: `requires_label` and a non-empty
`shipnotice_items_attributes` are required; each item needs an existing `item_id`, a `quantity`
>= 1, a `return_action` and a `description`; `order_id`, when given, must exist. Failures are
`422 {"message": ...}` naming the field (`shipnotice_items_attributes[1][item_id]`).

Uniqueness: a second create with the same `originator_attributes.original_id` for the same
customer (and provider, always "api" here) is `409`. The vendor documents a 409 on this endpoint
without saying what triggers it; we decided it is a repeated originator id, "per customer and
provider" as whiplash-api.md section 7 infers, which is the guarantee our exactly-once design
leans on. Another customer of the same account may use the same original id.

Customer (several customers in one account, see `whiplash_backend`): under `X-Customer-ID` the
return belongs to that customer and its order and items must be that customer's; without it, to
its order's customer, else its first item's, and every item must belong to that customer.

Update follows `PutApiV2ConsumerReturnsIdRequest`: only its fields change, others are ignored
(as Grape ignores undeclared params).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from include.returns_sync.sandbox.whiplash_records import (
    ConsumerReturn,
    Item,
    Order,
    Originator,
    ReturnItem,
    WhiplashApiError,
)
from include.returns_sync.sandbox.whiplash_search import parse_time

_TEXT_FIELDS = (
    "reference",
    "tracking",
    "carrier",
    "sender",
    "shipping_label_url",
    "shipping_method_text",
    "notes_by_customer",
    "ship_3rdparty_cost",
)
_UPDATABLE = (*_TEXT_FIELDS, "eta", "total_boxes", "requires_label")
DEFAULT_WAREHOUSE_ID = 1


class ReturnBackend(Protocol):
    """What the factory reads from and allocates in `WhiplashBackend` (which owns the factory)."""

    def order(self, id: int) -> Order | None: ...

    def item(self, id: int) -> Item | None: ...

    def item_by_sku(self, sku: str, customer_id: int | None = None) -> Item | None: ...

    def return_with_original_id(
        self, original_id: str, customer_id: int | None = None, provider: str = "api"
    ) -> ConsumerReturn | None: ...

    def now(self) -> datetime: ...

    def next_id(self, kind: str) -> int: ...

    def new_originator(
        self,
        originated_type: str,
        originated_id: int | None,
        provider: str,
        original_id: str | None,
        group_id: str | None = None,
        misc: str | None = None,
        *,
        customer_id: int | None = None,
    ) -> Originator: ...


class ReturnFactory:
    """Builds and changes `ConsumerReturn` records for a backend (which holds the lock)."""

    def __init__(self, backend: ReturnBackend) -> None:
        self._backend = backend

    def build(self, body: Mapping[str, Any], customer: int | None = None) -> ConsumerReturn:
        """A new return from a create body; `customer` = the `X-Customer-ID` scope (None: all)."""
        backend = self._backend
        requires_label = body.get("requires_label")
        if requires_label is None:
            raise WhiplashApiError(422, "requires_label is missing")
        if not isinstance(requires_label, bool):
            raise WhiplashApiError(
                422, f"requires_label must be true or false, got {requires_label!r}"
            )
        lines_raw = body.get("shipnotice_items_attributes")
        if lines_raw is None:
            raise WhiplashApiError(422, "shipnotice_items_attributes is missing")
        if not isinstance(lines_raw, list) or not lines_raw:
            raise WhiplashApiError(
                422, "shipnotice_items_attributes must be a non-empty array of items"
            )
        order = None
        if body.get("order_id") is not None:
            order_id = _as_int(body, "order_id")
            order = backend.order(order_id)
            if order is None or customer not in (None, order.customer_id):
                raise WhiplashApiError(422, f"order_id {order_id} does not exist")
        originator_raw = _as_mapping(body, "originator_attributes")
        original_id = _optional_text(
            originator_raw, "originator_attributes[original_id]", "original_id"
        )
        eta = _as_time(body, "eta")
        warehouse_id = (
            _as_int(body, "warehouse_id")
            if body.get("warehouse_id") is not None
            else (order.warehouse_id if order else DEFAULT_WAREHOUSE_ID)
        )
        drafts = [self._check_line(index, raw, customer) for index, raw in enumerate(lines_raw)]
        owner = _owner(customer, order, drafts)
        if original_id and backend.return_with_original_id(original_id, owner) is not None:
            raise WhiplashApiError(
                409,
                f"A consumer return with originator original_id {original_id!r} already exists",
            )

        now = backend.now()
        record_id = backend.next_id("consumer_return")
        record = ConsumerReturn(
            id=record_id,
            order=order,
            warehouse_id=warehouse_id,
            requires_label=requires_label,
            originator=backend.new_originator(
                "Shipnotice",
                record_id,
                "api",
                original_id,
                _optional_text(originator_raw, "originator_attributes[group_id]", "group_id"),
                _optional_text(originator_raw, "originator_attributes[misc]", "misc"),
                customer_id=owner,
            ),
            return_items=[],
            created_at=now,
            updated_at=now,
            eta=eta,
            total_boxes=_as_int(body, "total_boxes")
            if body.get("total_boxes") is not None
            else None,
            customer_id=owner,
        )
        for name in _TEXT_FIELDS:
            setattr(record, name, _optional_text(body, name, name))
        for draft in drafts:
            record.return_items.append(self._line(record, draft))
        return record

    def apply_update(self, record: ConsumerReturn, body: Mapping[str, Any]) -> None:
        for name in _UPDATABLE:
            if name not in body:
                continue
            if name == "eta":
                record.eta = _as_time(body, "eta")
            elif name == "total_boxes":
                record.total_boxes = None if body[name] is None else _as_int(body, name)
            elif name == "requires_label":
                if not isinstance(body[name], bool):
                    raise WhiplashApiError(
                        422, f"requires_label must be true or false, got {body[name]!r}"
                    )
                record.requires_label = body[name]
            else:
                setattr(record, name, _optional_text(body, name, name))

    def receive_sku(self, record: ConsumerReturn, sku: str, good: int, damaged: int) -> None:
        """Spread received counts over the return's lines for `sku`; unknown SKUs become extras."""
        lines = [line for line in record.return_items if line.sku == sku]
        if not lines:
            item = self._backend.item_by_sku(sku, record.customer_id)
            if item is None:
                raise ValueError(f"receive: SKU {sku!r} is not in the catalog; add_item it first")
            extra = ReturnItem(
                id=self._backend.next_id("return_item"),
                item=item,
                quantity=0,
                return_action="no_action_required",
                description="Unexpected item received",
                extended_description=None,
                order_item_id=None,
                originator=None,
            )
            record.return_items.append(extra)
            lines = [extra]
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            line.quantity_good = good if last else min(good, line.quantity)
            good -= line.quantity_good
            room = max(line.quantity - line.quantity_good, 0)
            line.quantity_damaged = damaged if last else min(damaged, room)
            damaged -= line.quantity_damaged

    # ------------------------------------------------------------------ internals

    def _check_line(self, index: int, raw: Any, customer: int | None) -> dict[str, Any]:
        where = f"shipnotice_items_attributes[{index}]"
        if not isinstance(raw, Mapping):
            raise WhiplashApiError(422, f"{where} must be an object")
        for name in ("item_id", "quantity", "return_action", "description"):
            if raw.get(name) is None or (isinstance(raw.get(name), str) and not raw[name].strip()):
                raise WhiplashApiError(422, f"{where}[{name}] is missing")
        item_id = _as_int(raw, "item_id", where)
        item = self._backend.item(item_id)
        if item is None or customer not in (None, item.customer_id):
            raise WhiplashApiError(422, f"{where}[item_id] {item_id} does not exist")
        quantity = _as_int(raw, "quantity", where)
        if quantity < 1:
            raise WhiplashApiError(422, f"{where}[quantity] must be at least 1, got {quantity}")
        originator = _as_mapping(raw, "originator_attributes", where)
        return {
            "item": item,
            "quantity": quantity,
            "return_action": str(raw["return_action"]),
            "description": str(raw["description"]),
            "extended_description": _optional_text(
                raw, f"{where}[extended_description]", "extended_description"
            ),
            "originator": originator,
            "where": where,
        }

    def _line(self, record: ConsumerReturn, draft: dict[str, Any]) -> ReturnItem:
        backend = self._backend
        line_id = backend.next_id("return_item")
        order_item_id = None
        if record.order is not None:
            order_item_id = next(
                (oi.id for oi in record.order.order_items if oi.item.id == draft["item"].id), None
            )
        originator_raw = draft["originator"]
        where = draft["where"]
        originator = None
        if originator_raw:
            originator = backend.new_originator(
                "ShipnoticeItem",
                line_id,
                "api",
                _optional_text(
                    originator_raw, f"{where}[originator_attributes][original_id]", "original_id"
                ),
                _optional_text(
                    originator_raw, f"{where}[originator_attributes][group_id]", "group_id"
                ),
                _optional_text(originator_raw, f"{where}[originator_attributes][misc]", "misc"),
                customer_id=record.customer_id,
            )
        return ReturnItem(
            id=line_id,
            item=draft["item"],
            quantity=draft["quantity"],
            return_action=draft["return_action"],
            description=draft["description"],
            extended_description=draft["extended_description"],
            order_item_id=order_item_id,
            originator=originator,
        )


def _owner(customer: int | None, order: Order | None, drafts: list[dict[str, Any]]) -> int:
    """The customer a new return belongs to: the scope's, else its order's, else its first
    item's; every item must be that customer's (one account, several customers)."""
    owner = customer
    if owner is None:
        owner = order.customer_id if order is not None else drafts[0]["item"].customer_id
    for draft in drafts:
        if draft["item"].customer_id != owner:
            raise WhiplashApiError(
                422,
                f"{draft['where']}[item_id] {draft['item'].id} belongs to another customer "
                f"than the return ({owner})",
            )
    return owner


def _as_int(body: Mapping[str, Any], name: str, where: str = "") -> int:
    """An integer field; integral strings and floats are coerced (as Grape does)."""
    label = f"{where}[{name}]" if where else name
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise WhiplashApiError(422, f"{label} must be an integer, got {value!r}")


def _as_mapping(body: Mapping[str, Any], name: str, where: str = "") -> Mapping[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WhiplashApiError(
            422, f"{where}[{name}] must be an object" if where else f"{name} must be an object"
        )
    return value


def _optional_text(body: Mapping[str, Any], label: str, name: str) -> str | None:
    """A string field; numbers are coerced to text (as Grape does), objects are refused."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise WhiplashApiError(422, f"{label} must be a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_time(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    moment = parse_time(value)
    if moment is None:
        raise WhiplashApiError(422, f"{name} must be an ISO 8601 date-time, got {value!r}")
    return moment.replace(microsecond=0)
