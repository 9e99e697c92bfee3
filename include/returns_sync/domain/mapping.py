"""Loop return -> Whiplash consumer return (RMA) create payload.

The mapping, field by field (PRODUCT.md 2.1, section 3 "RMA fields"):

| Whiplash (`POST /api/v2/consumer_returns`) | from Loop |
| --- | --- |
| `reference`, `originator_attributes.original_id` | the Loop return id, as a decimal string |
| `originator_attributes.group_id` | the Loop order id |
| `order_id` | the Whiplash order whose originator is the Shopify order id (`provider_order_id`), else the one whose `order_orig` is the Shopify order name |
| `warehouse_id` | configuration, else the order's `return_warehouse_id`, else its `warehouse_id` |
| `tracking`, `carrier`, `shipping_label_url` | the Loop label (filled in by `domain.labels` when Return Details carried none) |
| `requires_label` | `false`: Loop supplies the label |
| `shipnotice_items_attributes[]` | one entry per Whiplash item: Loop line items (one per unit) grouped by normalised SKU |
| item `item_id` | the Whiplash item whose SKU matches (case/whitespace-insensitive, merchant aliases applied) |
| item `quantity` | the number of Loop line items (units) with that SKU |
| item `return_action` | the Loop outcome: refund -> `refund`, exchange -> `exchange`, store credit / gift card -> `credit`, anything else -> `no_action_required`; a line item outcome `"default"` (or none) is the return's `outcome` |
| item `description` | the return reason(s), distinct, `; `-joined |
| item `originator_attributes.original_id` | the first Loop line item id; all of them comma-joined in `misc` |

A return that cannot be mapped raises `Unmappable` with a reason code; the caller records it and
retries it on later runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.models import (
    ConsumerReturnCreate,
    CreateOriginator,
    LoopLineItem,
    LoopReturn,
    ShipnoticeItem,
    WhiplashItem,
    WhiplashOrder,
)

#: Whiplash caps free-text fields; keep descriptions short enough for the warehouse screen.
MAX_DESCRIPTION = 250


class UnmappableReason(StrEnum):
    """Why a Loop return got no RMA; each one is recorded, reported and retried later."""

    NO_ITEMS = "NO_ITEMS"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NO_WAREHOUSE = "NO_WAREHOUSE"
    LOOP_NOT_FOUND = "LOOP_NOT_FOUND"
    INVALID_LOOP_DATA = "INVALID_LOOP_DATA"
    WHIPLASH_REJECTED = "WHIPLASH_REJECTED"
    AMBIGUOUS_CREATE = "AMBIGUOUS_CREATE"
    VENDOR_ERROR = "VENDOR_ERROR"
    #: Not a mapping problem: the label is unknown (Return Details carried none and neither the
    #: list, the webhook nor our records knew it). Recorded so that later runs retry it.
    LABEL_UNKNOWN = "LABEL_UNKNOWN"


class Unmappable(Exception):
    """A Loop return we cannot turn into an RMA; `detail` is readable by an operator."""

    def __init__(self, reason: UnmappableReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_OUTCOME_TO_ACTION = {
    "refund": "refund",
    "exchange": "exchange",
    "store_credit": "credit",
    "credit": "credit",
    "gift_card": "credit",
    "giftcard": "credit",
}


def return_action(outcome: str | None) -> str:
    """Whiplash `return_action` for a Loop outcome."""
    key = (outcome or "").strip().lower().replace(" ", "_")
    return _OUTCOME_TO_ACTION.get(key, "no_action_required")


@dataclass(frozen=True)
class Lookups:
    """What the batched Whiplash look-ups of one run found, keyed for mapping.

    `items_by_sku` is keyed by normalised SKU; orders by Shopify order id and by order name.
    """

    items_by_sku: Mapping[str, WhiplashItem] = field(default_factory=dict)
    orders_by_originator: Mapping[str, WhiplashOrder] = field(default_factory=dict)
    orders_by_name: Mapping[str, WhiplashOrder] = field(default_factory=dict)


def order_keys(loop_return: LoopReturn) -> tuple[str | None, str | None]:
    """The Shopify order id and order name by which we look the Whiplash order up."""
    name = loop_return.order_name.strip() if loop_return.order_name else None
    return loop_return.provider_order_id, name or None


def resolve_order(loop_return: LoopReturn, lookups: Lookups) -> WhiplashOrder:
    shopify_id, name = order_keys(loop_return)
    if shopify_id and shopify_id in lookups.orders_by_originator:
        return lookups.orders_by_originator[shopify_id]
    if name:
        for candidate in (name, name.lstrip("#"), f"#{name.lstrip('#')}"):
            if candidate in lookups.orders_by_name:
                return lookups.orders_by_name[candidate]
    raise Unmappable(
        UnmappableReason.UNKNOWN_ORDER,
        f"no Whiplash order for Shopify order id {shopify_id or '-'} / name {name or '-'}",
    )


def _group_by_sku(
    line_items: list[LoopLineItem], aliases: Mapping[str, str] | None
) -> dict[str, list[LoopLineItem]]:
    groups: dict[str, list[LoopLineItem]] = {}
    for line in line_items:
        groups.setdefault(normalise_sku(line.sku, aliases), []).append(line)
    return groups


def _description(lines: list[LoopLineItem]) -> str:
    reasons = []
    for line in lines:
        reason = (line.return_reason or line.parent_return_reason or "").strip()
        if reason and reason not in reasons:
            reasons.append(reason)
    text = "; ".join(reasons) or "Customer return"
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def build_consumer_return(
    loop_return: LoopReturn,
    lookups: Lookups,
    *,
    warehouse_id: int | None = None,
    aliases: Mapping[str, str] | None = None,
) -> ConsumerReturnCreate:
    """The `POST /api/v2/consumer_returns` body for one Loop return, or raise `Unmappable`."""
    if not loop_return.line_items:
        raise Unmappable(UnmappableReason.NO_ITEMS, "the Loop return has no line items")
    groups = _group_by_sku(loop_return.line_items, aliases)
    unknown = sorted(sku for sku in groups if sku == BLANK_SKU or sku not in lookups.items_by_sku)
    if unknown:
        raise Unmappable(
            UnmappableReason.UNKNOWN_SKU,
            "no Whiplash item for SKU "
            + ", ".join(unknown[:5])
            + (" …" if len(unknown) > 5 else ""),
        )
    order = resolve_order(loop_return, lookups)
    warehouse = warehouse_id or order.return_warehouse_id or order.warehouse_id
    if not warehouse:
        raise Unmappable(
            UnmappableReason.NO_WAREHOUSE,
            f"Whiplash order {order.id} names no warehouse and none is configured",
        )
    items = []
    for sku, lines in sorted(groups.items()):
        line_ids = [line.line_item_id for line in lines if line.line_item_id]
        item: dict[str, Any] = {}
        if line_ids:
            item["originator_attributes"] = CreateOriginator(
                original_id=line_ids[0], misc=",".join(line_ids)
            )
        items.append(
            ShipnoticeItem(
                item_id=lookups.items_by_sku[sku].id,
                quantity=len(lines),
                return_action=return_action(loop_return.line_outcome(lines[0])),
                description=_description(lines),
                **item,
            )
        )
    originator: dict[str, Any] = {"original_id": loop_return.id}
    if loop_return.order_id:
        originator["group_id"] = loop_return.order_id
    fields: dict[str, Any] = {
        "order_id": order.id,
        "warehouse_id": warehouse,
        "reference": loop_return.id,
        "originator_attributes": CreateOriginator(**originator),
        "requires_label": False,
        "tracking": loop_return.tracking_number,
        "carrier": loop_return.carrier,
        "shipping_label_url": loop_return.label_url,
        "shipnotice_items_attributes": items,
    }
    # The contract types these as plain strings: omit what Loop did not give us, never send null.
    return ConsumerReturnCreate(
        **{key: value for key, value in fields.items() if value is not None}
    )
