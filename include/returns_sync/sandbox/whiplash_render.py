"""How the Whiplash simulator's records render as vendor JSON (`ApiV2Entities*`).

Exactly the JSON the V2 API answers with: timestamps in the account's zone with milliseconds
(`2026-03-13T11:39:21.000-04:00`), prices as Ruby prints decimals (`"30.0"`), ids as integers,
`null` where the vendor's own examples show `null`. Timestamps have whole-second precision like
the real API's (`.000` in every example): two changes within one second share an `updated_at`,
so a poller must use `updated_at_gteq` and deduplicate.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from include.returns_sync.sandbox.whiplash_records import (
    ORDER_STATUS_SHIPPED,
    STATUS_NAMES,
    ConsumerReturn,
    Item,
    NotificationEvent,
    NotificationSubscription,
    Order,
    OrderItem,
    Originator,
    ReturnItem,
)
from include.returns_sync.sandbox.whiplash_search import ACCOUNT_ZONE


def render_time(moment: datetime | None) -> str | None:
    """`2026-03-13T11:39:21.000-04:00`: the account's zone, milliseconds, like the real API."""
    if moment is None:
        return None
    return moment.astimezone(ACCOUNT_ZONE).isoformat(timespec="milliseconds")


def ruby_decimal(raw: str) -> str:
    """A price as Rails prints a BigDecimal: "12.50" -> "12.5", "3" -> "3.0"."""
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise ValueError(f"price must be a decimal number, got {raw!r}") from exc
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


def render_originator(originator: Originator) -> dict[str, Any]:
    return {
        "id": originator.id,
        "originated_id": originator.originated_id,
        "originated_type": originator.originated_type,
        "shop_id": None,
        "provider": originator.provider,
        "original_id": originator.original_id,
        "group_id": originator.group_id,
        "misc": originator.misc,
        "active": True,
        "integration_id": None,
        "last_notified_at": None,
        "last_notification_status": None,
        "last_synced_at": None,
        "distinct_originator_key": None,
        "created_at": render_time(originator.created_at),
        "updated_at": render_time(originator.updated_at),
        "application_id": originator.application_id,
    }


def render_item(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "sku": item.sku,
        "title": item.title,
        "description": None,
        "created_at": render_time(item.created_at),
        "updated_at": render_time(item.updated_at),
        "customer_id": item.customer_id,
        "quantity": 0,
        "available": item.active,
        "scancode": item.sku,
        "price": item.price,
        "packaging": False,
        "active": item.active,
        "is_bundle": False,
        "promo": False,
        "returnable": item.returnable,
        "name": item.title,
        "hazmat": False,
        "misc": None,
        "ean": None,
        "lot_control": False,
        "alcohol": False,
        "published_quantity": 0,
    }


def render_order_item(order_item: OrderItem) -> dict[str, Any]:
    return {
        "id": order_item.id,
        "order_id": order_item.order_id,
        "customer_id": order_item.item.customer_id,
        "item_id": order_item.item.id,
        "sku": order_item.item.sku,
        "description": order_item.item.title,
        "quantity": order_item.quantity,
        "price": order_item.item.price,
        "created_at": render_time(order_item.created_at),
        "updated_at": render_time(order_item.created_at),
        "returnable": order_item.item.returnable,
        "currency": "USD",
        "hazmat": False,
        "misc": None,
    }


def render_order(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "warehouse_id": order.warehouse_id,
        "return_warehouse_id": order.warehouse_id,
        "humanize_id": str(order.id),
        "status": order.status,
        "status_name": "Shipped" if order.status == ORDER_STATUS_SHIPPED else "Processing",
        "order_orig": order.order_orig,
        "created_at": render_time(order.created_at),
        "updated_at": render_time(order.updated_at),
        "order_type": "direct_to_consumer",
        "within_return_time_limit": True,
        "order_items": [render_order_item(line) for line in order.order_items],
        "originator": render_originator(order.originator),
    }


def render_return_item(line: ReturnItem) -> dict[str, Any]:
    return {
        "id": line.id,
        "item_id": line.item.id,
        "name": line.item.title,
        "sku": line.item.sku,
        "price": line.item.price,
        "quantity": line.quantity,
        "quantity_good": line.quantity_good,
        "quantity_damaged": line.quantity_damaged,
        "description": line.description,
        "extended_description": line.extended_description,
        "return_action": line.return_action,
        "order_item_id": line.order_item_id,
        "return_item_originator_id": line.originator.id if line.originator else None,
        "originator_id": None,
        "lot_ids": [],
        "lot_numbers": [],
    }


def render_consumer_return(record: ConsumerReturn) -> dict[str, Any]:
    """The full `ApiV2EntitiesConsumerReturn`, the same shape in lists, gets and webhooks."""
    return {
        "id": record.id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "warehouse_id": record.warehouse_id,
        "sender": record.sender,
        "eta": render_time(record.eta),
        "status": record.status,
        "status_name": STATUS_NAMES[record.status],
        "received_by": None,
        "notes_by_whiplash": None,
        "notes_by_customer": record.notes_by_customer,
        "total_boxes": record.total_boxes,
        "created_at": render_time(record.created_at),
        "updated_at": render_time(record.updated_at),
        "arrived_at": render_time(record.arrived_at),
        "skip_images": None,
        "easypostable_id": None,
        "easypostable_type": None,
        "shipping_label_url": record.shipping_label_url,
        "ship_actual_cost": None,
        "shipping_method_text": record.shipping_method_text,
        "carrier": record.carrier,
        "tracking": record.tracking,
        "type": "ConsumerReturn",
        "postage_billed": None,
        "handling_billed": None,
        "ship_3rdparty_cost": record.ship_3rdparty_cost,
        "requires_label": record.requires_label,
        "completed_at": render_time(record.completed_at),
        "ship_actual_currency": None,
        "delivered_at": render_time(record.delivered_at),
        "due_at": None,
        "reference": record.reference,
        "exchange_order_id": None,
        "originator": render_originator(record.originator) if record.originator else None,
        "return_items": [render_return_item(line) for line in record.return_items],
        "exchange_order": None,
        "order": render_order(record.order) if record.order else None,
    }


def render_event(event: NotificationEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "humanized_name": event.name.replace(".", " ").replace("_", " ").capitalize(),
        "resource_type": event.resource_type,
        "resource_message": event.name.split(".", 1)[1],
        "requires_subscription": True,
        "description": event.description,
        "created_at": render_time(event.created_at),
        "updated_at": render_time(event.created_at),
    }


def render_subscription(subscription: NotificationSubscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "notification_event_id": subscription.notification_event_id,
        "customer_id": subscription.customer_id,
        "user_id": None,
        "notification_type": subscription.notification_type,
        "endpoint": subscription.endpoint,
        "active": subscription.active,
        "version": subscription.version,
        "created_at": render_time(subscription.created_at),
        "updated_at": render_time(subscription.updated_at),
        "discarded_at": render_time(subscription.discarded_at),
    }
