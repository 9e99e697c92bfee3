"""How the Loop simulator's records render as vendor JSON (list, details, ASN rows, notes).

Timestamps are `iso` (UTC, milliseconds, `Z`); ids are strings, except the quirk that
`provider_order_id` is a string in the detailed list and an integer in Get Return Details.

Strict mode (`strict.py`) reads Loop's documented examples harshly: `strict_view` drops the label
fields from Return Details (Loop's Details example has none) and makes every line item say
`outcome: "default"` (Loop's list example), the return-level `outcome` carrying the real one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.returns_sync.sandbox.loop_records import LineItem, Note, ReturnRecord, iso


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


#: What Loop's documented Return Details example does not carry (the detailed list does).
DETAILS_ABSENT_LABEL_FIELDS = (
    "carrier",
    "tracking_number",
    "label_status",
    "label_updated_at",
    "label_url",
)
#: A line item outcome meaning "the return's outcome".
DEFAULT_LINE_OUTCOME = "default"


def strict_view(view: Any, *, details: bool) -> Any:
    """A list or Details answer for one return as the strict reading serves it.

    Applied to what leaves the API (after any corruption of the record): a value that is not
    a return object is served unchanged.
    """
    if not isinstance(view, dict):
        return view
    served = {
        key: value
        for key, value in view.items()
        if not (details and key in DETAILS_ABSENT_LABEL_FIELDS)
    }
    if isinstance(served.get("line_items"), list):
        served["line_items"] = [
            {**item, "outcome": DEFAULT_LINE_OUTCOME}
            if isinstance(item, dict) and "outcome" in item
            else item
            for item in served["line_items"]
        ]
    return served


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


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None
