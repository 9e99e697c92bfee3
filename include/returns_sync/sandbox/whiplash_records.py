"""The Whiplash simulator's state records and the attributes each one can be searched by.

Records hold typed state (UTC datetimes kept to whole seconds, ints); `whiplash_render` turns
them into vendor JSON. The `*_FIELDS` tables play the part of Ransack's searchable attributes:
a `search` predicate on any other attribute is ignored, as the real API ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.returns_sync.sandbox.whiplash_search import field_table

#: The account's customer when it has one (the default); a multi-customer account (one customer
#: per merchant, `WhiplashBackend(customer_ids=...)`) numbers its customers from here.
CUSTOMER_ID = 200

STATUS_NAMES: dict[int, str] = {
    25: "Unexpected",
    50: "Draft",
    100: "In Transit",
    150: "Arrived",
    200: "Processing",
    250: "Problem",
    300: "Completed",
}
ORDER_STATUS_SHIPPED = 300


class WhiplashApiError(Exception):
    """A refusal the API renders as `{"message": ...}` with HTTP `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Originator:
    """Your system's id for a Whiplash record (`ApiV2EntitiesOriginator`)."""

    id: int
    originated_type: str
    originated_id: int | None
    provider: str
    original_id: str | None
    group_id: str | None
    misc: str | None
    created_at: datetime
    updated_at: datetime
    application_id: int | None = None
    #: The customer whose record this originator belongs to (not rendered; scopes the
    #: originators list under `X-Customer-ID`).
    customer_id: int | None = None


@dataclass
class Item:
    id: int
    sku: str
    title: str
    price: str
    created_at: datetime
    updated_at: datetime
    active: bool = True
    returnable: bool = True
    customer_id: int = CUSTOMER_ID


@dataclass
class OrderItem:
    id: int
    order_id: int
    item: Item
    quantity: int
    created_at: datetime

    @property
    def sku(self) -> str:
        return self.item.sku

    @property
    def item_id(self) -> int:
        return self.item.id


@dataclass
class Order:
    id: int
    order_orig: str
    warehouse_id: int
    originator: Originator
    order_items: list[OrderItem]
    created_at: datetime
    updated_at: datetime
    status: int = ORDER_STATUS_SHIPPED
    customer_id: int = CUSTOMER_ID


@dataclass
class ReturnItem:
    """One line of a consumer return: expected `quantity`, received good / damaged counts."""

    id: int
    item: Item
    quantity: int
    return_action: str
    description: str
    extended_description: str | None
    order_item_id: int | None
    originator: Originator | None
    quantity_good: int = 0
    quantity_damaged: int = 0

    @property
    def sku(self) -> str:
        return self.item.sku

    @property
    def item_id(self) -> int:
        return self.item.id


@dataclass
class ConsumerReturn:
    id: int
    order: Order | None
    warehouse_id: int
    requires_label: bool
    originator: Originator | None
    return_items: list[ReturnItem]
    created_at: datetime
    updated_at: datetime
    status: int = 100
    reference: str | None = None
    tracking: str | None = None
    carrier: str | None = None
    sender: str | None = None
    eta: datetime | None = None
    shipping_label_url: str | None = None
    shipping_method_text: str | None = None
    notes_by_customer: str | None = None
    total_boxes: int | None = None
    ship_3rdparty_cost: str | None = None
    arrived_at: datetime | None = None
    delivered_at: datetime | None = None
    completed_at: datetime | None = None
    customer_id: int = CUSTOMER_ID

    @property
    def order_id(self) -> int | None:
        return self.order.id if self.order else None


@dataclass
class NotificationEvent:
    id: int
    name: str
    description: str
    created_at: datetime

    @property
    def resource_type(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class NotificationSubscription:
    id: int
    notification_event_id: int
    notification_type: str
    endpoint: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    discarded_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The customer whose events it receives; None = every customer of the account (a
    #: subscription made by a 3PL user without `X-Customer-ID` in a multi-customer account).
    customer_id: int | None = CUSTOMER_ID


# --------------------------------------------------------------------------- searchable fields

ITEM_FIELDS = field_table(
    [
        ("id", "id", "int"),
        ("sku", "sku", "str"),
        ("title", "title", "str"),
        ("active", "active", "bool"),
        ("returnable", "returnable", "bool"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ]
)
ORDER_FIELDS = field_table(
    [
        ("id", "id", "int"),
        ("order_orig", "order_orig", "str"),
        ("status", "status", "int"),
        ("warehouse_id", "warehouse_id", "int"),
        ("originator_original_id", "originator.original_id", "str"),
        ("originator_group_id", "originator.group_id", "str"),
        ("originator_provider", "originator.provider", "str"),
        ("order_items_sku", "order_items.sku", "str"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ]
)
CONSUMER_RETURN_FIELDS = field_table(
    [
        ("id", "id", "int"),
        ("order_id", "order_id", "int"),
        ("warehouse_id", "warehouse_id", "int"),
        ("status", "status", "int"),
        ("reference", "reference", "str"),
        ("tracking", "tracking", "str"),
        ("originator_original_id", "originator.original_id", "str"),
        ("originator_group_id", "originator.group_id", "str"),
        ("return_items_sku", "return_items.sku", "str"),
        ("return_items_item_id", "return_items.item_id", "int"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
        ("arrived_at", "arrived_at", "time"),
        ("completed_at", "completed_at", "time"),
    ]
)
ORIGINATOR_FIELDS = field_table(
    [
        ("id", "id", "int"),
        ("original_id", "original_id", "str"),
        ("group_id", "group_id", "str"),
        ("provider", "provider", "str"),
        ("originated_id", "originated_id", "int"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ]
)
EVENT_FIELDS = field_table(
    [("id", "id", "int"), ("name", "name", "str"), ("resource_type", "resource_type", "str")]
)
SUBSCRIPTION_FIELDS = field_table(
    [
        ("id", "id", "int"),
        ("notification_event_id", "notification_event_id", "int"),
        ("notification_type", "notification_type", "str"),
        ("endpoint", "endpoint", "str"),
        ("active", "active", "bool"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ]
)
