"""The Loop simulator's state records, the value sets they draw from, and Loop's error.

Records hold typed state (UTC datetimes, ints); `loop_render` turns them into the vendor JSON.
`LoopError` is every answer Loop gives instead of the happy path (HTTP status + exact body); the
HTTP layer (`loop_app`) renders it as it is. `iso` is Loop's timestamp format, shared by all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

NOT_FOUND = {"errors": {"code": "NOT_FOUND"}}


class LoopError(Exception):
    """An answer Loop gives instead of the happy path: HTTP status + exact body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


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


def iso(moment: datetime) -> str:
    """Loop's timestamp format: UTC with milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
