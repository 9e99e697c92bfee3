"""Shared pydantic configuration and field coercions for vendor records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class VendorRecord(BaseModel):
    """Base for vendor payloads: extra fields are kept, not rejected, and the model is frozen."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def _to_str_id(value: Any) -> str | None:
    """Loop sends ids as strings in lists and as integers in details and webhooks."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("an id cannot be a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"id {value!r} is not a whole number")
        value = int(value)
    text = str(value).strip()
    if not text:
        return None
    return text


def _to_int_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("an id cannot be a boolean")
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"id {value!r} is not an integer") from exc


def _to_money(value: Any) -> Decimal | None:
    """Money arrives as strings ("63.30"); keep it exact."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not an amount of money") from exc


def _to_utc(value: Any) -> datetime | None:
    """Parse ISO 8601 (Loop also sends 'YYYY-MM-DD HH:MM:SS') and normalise to aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _to_int(value: Any) -> int:
    """A unit count: null counts as 0; a negative count is a data error, never arithmetic."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError("a quantity cannot be a boolean")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"quantity {value!r} is not a whole number")
    try:
        count = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
    except ValueError as exc:
        raise ValueError(f"quantity {value!r} is not an integer") from exc
    if count < 0:
        raise ValueError(f"quantity {value!r} is negative")
    return count


StrId = Annotated[str | None, BeforeValidator(_to_str_id)]
IntId = Annotated[int | None, BeforeValidator(_to_int_id)]
Money = Annotated[Decimal | None, BeforeValidator(_to_money)]
UtcDateTime = Annotated[datetime | None, BeforeValidator(_to_utc)]
Quantity = Annotated[int, BeforeValidator(_to_int)]
