"""Whiplash / Rydership V2 records: items, orders and consumer returns (the RMA)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from include.returns_sync.models._base import (
    IntId,
    Money,
    Quantity,
    StrId,
    UtcDateTime,
    VendorRecord,
)

#: Whiplash consumer-return status codes (no official enum; see docs/whiplash-api.md §4.6).
STATUS_NAMES = {
    25: "Unexpected",
    50: "Draft",
    100: "In Transit",
    150: "Arrived",
    200: "Processing",
    250: "Problem",
    300: "Completed",
}


class Originator(VendorRecord):
    """Our id for a Whiplash resource: for an RMA, `original_id` is the Loop return id."""

    id: IntId = None
    provider: str | None = None
    original_id: StrId = None
    group_id: StrId = None
    misc: str | None = None


class WhiplashItem(VendorRecord):
    id: int
    sku: str | None = None
    title: str | None = None
    name: str | None = None
    active: bool | None = None


class WhiplashOrder(VendorRecord):
    id: int
    status: int | None = None
    order_orig: str | None = None
    warehouse_id: IntId = None
    return_warehouse_id: IntId = None
    originator: Originator | None = None


class ReturnItem(VendorRecord):
    """A line of a consumer return: what was expected (`quantity`) and what was received."""

    id: IntId = None
    item_id: IntId = None
    sku: str | None = None
    name: str | None = None
    price: Money = None
    quantity: Quantity = 0
    quantity_good: Quantity = 0
    quantity_damaged: Quantity = 0
    return_action: str | None = None
    description: str | None = None


class ConsumerReturn(VendorRecord):
    id: int
    status: int | None = None
    status_name: str | None = None
    reference: StrId = None
    order_id: IntId = None
    warehouse_id: IntId = None
    tracking: str | None = None
    carrier: str | None = None
    created_at: UtcDateTime = None
    updated_at: UtcDateTime = None
    arrived_at: UtcDateTime = None
    completed_at: UtcDateTime = None
    originator: Originator | None = None
    return_items: list[ReturnItem] = Field(default_factory=list)

    @field_validator("return_items", mode="before")
    @classmethod
    def _null_items(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def loop_return_id(self) -> str | None:
        """The Loop return this RMA was created for: originator first, then reference."""
        if self.originator and self.originator.original_id:
            return self.originator.original_id
        return self.reference


# --- what we send: the consumer-return create body (strict: a misspelt field is refused) ---
class CreateOriginator(BaseModel):
    """`originator_attributes` of a create: our id (`original_id`) and grouping ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    original_id: str
    group_id: str | None = None
    misc: str | None = None


class ShipnoticeItem(BaseModel):
    """One `shipnotice_items_attributes` entry: units of one Whiplash item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: int
    quantity: int
    return_action: str
    description: str
    originator_attributes: CreateOriginator | None = None


class ConsumerReturnCreate(BaseModel):
    """The `POST /api/v2/consumer_returns` body, validated once when it is built.

    Only the fields a caller set are sent (`body()`): an omitted optional field is left out,
    never sent as null.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    requires_label: bool
    shipnotice_items_attributes: list[ShipnoticeItem] = Field(min_length=1)
    order_id: int | None = None
    warehouse_id: int | None = None
    reference: str | None = None
    originator_attributes: CreateOriginator | None = None
    tracking: str | None = None
    carrier: str | None = None
    shipping_label_url: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: the fields that were set, as given."""
        return self.model_dump(mode="json", exclude_unset=True)
