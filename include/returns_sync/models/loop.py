"""Loop Returns records: a return, its line items (one per unit) and notes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from include.returns_sync.models._base import Money, StrId, UtcDateTime, VendorRecord


class ReturnState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVIEW = "review"


class LabelStatus(StrEnum):
    NEW = "new"
    PRE_TRANSIT = "pre_transit"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILURE = "failure"
    ERROR = "error"


#: A label at one of these statuses means the package is (or is about to be) on its way; a
#: label can skip `pre_transit` (first carrier scan already in transit), so all count.
ELIGIBLE_LABEL_STATUSES = frozenset(
    {
        LabelStatus.PRE_TRANSIT,
        LabelStatus.IN_TRANSIT,
        LabelStatus.OUT_FOR_DELIVERY,
        LabelStatus.DELIVERED,
    }
)


#: The label fields of a return. Loop's Return Details may carry none of them (its documented
#: example has none; PRODUCT.md section 6), so "absent" must not be read as "no label".
LABEL_FIELDS = frozenset(
    {"label_status", "carrier", "tracking_number", "label_url", "label_updated_at"}
)

#: A line item `outcome` that means "the return's outcome" (Loop's list example shows it).
DEFAULT_OUTCOME = "default"


class LoopLineItem(VendorRecord):
    """One returned unit. Loop has no quantity field: two units are two line items.

    `outcome` may be `"default"` (or missing): the unit then follows the return's `outcome`.
    """

    line_item_id: StrId
    sku: str | None = None
    title: str | None = None
    barcode: str | None = None
    price: Money = None
    return_reason: str | None = None
    parent_return_reason: str | None = None
    outcome: str | None = None


class LoopReturn(VendorRecord):
    """A Loop return as the detailed list, the details endpoint or a webhook describes it."""

    id: StrId
    state: str
    outcome: str | None = None
    order_id: StrId = None
    order_name: str | None = None
    provider_order_id: StrId = None
    customer: str | None = None
    currency: str | None = None
    created_at: UtcDateTime = None
    updated_at: UtcDateTime = None
    carrier: str | None = None
    tracking_number: str | None = None
    label_status: str | None = None
    label_updated_at: UtcDateTime = None
    label_url: str | None = None
    destination_id: StrId = None
    line_items: list[LoopLineItem] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_required(cls, value: str | None) -> str:
        if not value:
            raise ValueError("a Loop return needs an id")
        return value

    @field_validator("state", mode="before")
    @classmethod
    def _normalise_state(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a Loop return needs a state")
        text = value.strip().lower()
        return "review" if text == "needs review" else text

    @field_validator("label_status", mode="before")
    @classmethod
    def _normalise_label(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip().lower()
        return None if text in ("", "n/a") else text

    @field_validator("line_items", mode="before")
    @classmethod
    def _null_items(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def is_open(self) -> bool:
        return self.state == ReturnState.OPEN

    @property
    def label_known(self) -> bool:
        """Whether this record says anything about the label at all.

        False when it carries none of the label fields (Loop's Return Details may not): the
        label is then *unknown* and must come from elsewhere (the detailed list, the webhook
        that announced it, our records). True when any label field was present, even `null`:
        such a record (the detailed list, a webhook) speaks for the label, and a missing status
        there means no shipped label.
        """
        return bool(self.model_fields_set & LABEL_FIELDS)

    def line_outcome(self, line: LoopLineItem) -> str | None:
        """The outcome of one line item: its own, unless it says `"default"` or nothing, in
        which case it is the return's outcome."""
        own = (line.outcome or "").strip()
        if not own or own.lower() == DEFAULT_OUTCOME:
            return self.outcome
        return own


class LoopNote(VendorRecord):
    id: StrId = None
    content: str = ""
    created_at: UtcDateTime = None
