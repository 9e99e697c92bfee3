"""Typed webhook events: what a delivery says, its dedup key, and whether it starts work.

Only the fields we rely on are validated (tolerant of everything else, strict about those), and
only those are kept in the inbox: the vendors' payloads may carry customer data we do not need.

* Loop `label` topic (contracts/loop/label-webhook.payload.yml): `topic` "label", `trigger`
  `label.created`/`label.updated`, `id` (the Loop return id, string or integer), `label_status`,
  `label_updated_at`. A label at `pre_transit` or later starts RMA creation; other statuses
  (`new`, `failure`, `error`, `N/A`, or one Loop adds later) are accepted and need no work.
* Loop `return` topic (return-webhook.payload.yml) with trigger `return.closed`, and Loop's
  `return.processing` topic (return-processing-webhook.payload.yml, trigger
  `return.processing.failed`, `return_id`, `return_state`, `message`, `source`): how a queued
  Process ended. Stored with source `loop_return`, so the receipts DAG takes them (the RMA DAG
  takes `loop` label events). Other `return` triggers are accepted and need no work.
* Whiplash `consumer_return.*` events (whiplash-api.md section 8): `{"event_name": ...,
  "consumer_return": {"id", "status", "updated_at", ...}}`. `completed` and `status_changed`
  start reconciliation; `created`, `deleted` and `unexpected` are accepted and need no work.
  One documented example has no `event_name`; such a delivery is treated as a change of the
  consumer return (reconciliation decides from the return's status).
* Any other well-formed Whiplash event name (`order.shipped`, `item.created`,
  `shipnotice.status_changed`, one Whiplash adds later) is an event we do not handle: accepted
  (never a 4xx, which counts toward Whiplash disabling the subscription), its resource left
  unvalidated, and recorded in the inbox as done with the reason "not an event we handle", so
  nothing is silently dropped. Only the event name, the resource type and its id are kept.

Duplicate deliveries are recognised by (topic, trigger, resource id, status, timestamp); the
timestamp is normalised to UTC so the same instant written two ways is still one event.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from include.returns_sync.models import ELIGIBLE_LABEL_STATUSES

LOOP = "loop"
#: The inbox source of Loop's `return` / `return.processing` events (receipts DAG).
LOOP_RETURN = "loop_return"
WHIPLASH = "whiplash"

LOOP_TRIGGERS = ("label.created", "label.updated")
#: Loop return events that settle a queued Process (the rest of the `return` topic starts no work).
LOOP_RETURN_WORK_TRIGGERS = frozenset({"return.closed", "return.processing.failed"})
_MAX_MESSAGE = 300
#: Whiplash events we accept; the first two start reconciliation.
WHIPLASH_WORK_EVENTS = frozenset({"consumer_return.completed", "consumer_return.status_changed"})
WHIPLASH_EVENTS = WHIPLASH_WORK_EVENTS | {
    "consumer_return.created",
    "consumer_return.deleted",
    "consumer_return.unexpected",
}
#: A Whiplash event name: `resource.verb` (`order.dropship.packed` has three parts).
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}(\.[a-z0-9_]{1,40}){1,3}")
_ID_DIGITS = 20
_STATUS_CHARS = frozenset(string.ascii_letters + string.digits + "_-/. ")
_MAX_STATUS = 40


class PayloadError(ValueError):
    """The body is not a delivery we accept; `reason` names what was wrong (never a value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookEvent:
    """One validated delivery, ready for the inbox."""

    source: str  # "loop" | "whiplash"
    topic: str  # the inbox topic: Loop trigger or Whiplash event name
    #: Loop return id | Whiplash consumer return id; None for an event we do not handle.
    resource_id: str | None
    dedup_key: str
    #: Why this event starts no work (None: it starts RMA creation / reconciliation).
    no_work_reason: str | None
    #: The fields kept in the inbox (nothing else from the vendor's body is stored).
    stored: dict[str, Any] = field(repr=False)


# --------------------------------------------------------------------------- field coercions


def _digits_id(value: Any) -> str:
    """A vendor id: a positive whole number, sent as an integer or a string of digits."""
    if isinstance(value, bool):
        raise ValueError("must be an id (digits), not a boolean")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("must be an id (an integer or a string of digits)")
    if not text.isascii() or not text.isdigit() or len(text) > _ID_DIGITS or int(text) == 0:
        raise ValueError(f"must be a positive id of at most {_ID_DIGITS} digits")
    return str(int(text))


def _status_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    if not text or len(text) > _MAX_STATUS or not set(text) <= _STATUS_CHARS:
        raise ValueError(f"must be a short status word (at most {_MAX_STATUS} characters)")
    return text


def _optional_status_code(value: Any) -> int | None:
    """Whiplash's numeric status (25, 100, 200, 300, ...), as an integer or digits."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ValueError("must be a whole number of at most 6 digits")
    return int(text)


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 (offset, `Z` or naive-as-UTC) -> aware UTC; null or empty -> None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time string") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _event_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 80:
        raise ValueError("must be a Whiplash event name")
    if value not in WHIPLASH_EVENTS:  # unhandled well-formed names never get here
        raise ValueError("must be a Whiplash event name such as 'consumer_return.completed'")
    return value


def _lenient_id(value: Any) -> str | None:
    """An id used only for routing (Whiplash's `customer_id`): unusable -> None, never a 400
    (routing then falls back to the account's first merchant)."""
    if value is None:
        return None
    try:
        return _digits_id(value)
    except ValueError:
        return None


VendorId = Annotated[str, BeforeValidator(_digits_id)]
LenientId = Annotated[str | None, BeforeValidator(_lenient_id)]
StatusText = Annotated[str, BeforeValidator(_status_text)]
StatusCode = Annotated[int | None, BeforeValidator(_optional_status_code)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
EventName = Annotated[str | None, BeforeValidator(_event_name)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LoopLabelPayload(_Payload):
    """The Loop `label` topic fields we rely on."""

    topic: Literal["label"]
    trigger: Literal["label.created", "label.updated"]
    id: VendorId
    label_status: StatusText
    label_updated_at: Timestamp = None


def _optional_text(value: Any) -> str | None:
    """A free text or null (Loop's processing `message`, which may be generic); kept short."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string or null")
    return value.strip()[:_MAX_MESSAGE] or None


def _optional_status(value: Any) -> str | None:
    return None if value is None else _status_text(value)


OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
OptionalStatus = Annotated[str | None, BeforeValidator(_optional_status)]


class LoopReturnEventPayload(_Payload):
    """The Loop `return` topic fields we rely on (`return.closed` confirms a queued Process)."""

    topic: Literal["return"]
    trigger: StatusText
    id: VendorId
    state: OptionalStatus = None
    updated_at: Timestamp = None


class LoopProcessingPayload(_Payload):
    """Loop's `return.processing` topic: a queued Process failed in the background."""

    topic: Literal["return.processing"]
    trigger: Literal["return.processing.failed"]
    return_id: VendorId
    return_state: StatusText
    message: OptionalText
    source: OptionalStatus


class WhiplashReturnRef(_Payload):
    """The consumer return inside a Whiplash event (the full API entity; we keep three fields)."""

    id: VendorId
    status: StatusCode = None
    updated_at: Timestamp = None
    #: The Whiplash customer (the merchant inside a shared account) the return belongs to.
    customer_id: LenientId = None


class WhiplashReturnPayload(_Payload):
    """A Whiplash `consumer_return.*` notification."""

    event_name: EventName = None
    consumer_return: WhiplashReturnRef
    #: Some payload versions carry the customer next to the record instead of inside it.
    customer_id: LenientId = None


# --------------------------------------------------------------------------- parsing


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or PayloadError (not JSON, not an object, NaN, too deep)."""
    if not body.strip():
        raise PayloadError("the body is empty; expected a JSON object")

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        document = json.loads(body, parse_constant=no_constants)
    except RecursionError:
        raise PayloadError("the body nests too deeply to be a webhook payload") from None
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("the body is not valid JSON (UTF-8)") from None
    if not isinstance(document, dict):
        raise PayloadError(f"the body must be a JSON object, got a JSON {_json_kind(document)}")
    return document


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _reason(error: ValidationError) -> str:
    """Field paths and what was expected, without echoing the submitted values."""
    parts = []
    for detail in error.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(part) for part in detail["loc"]) or "body"
        message = str(detail["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _stamp(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


def parse_loop(body: bytes) -> WebhookEvent:
    """A Loop `label`, `return` or `return.processing` delivery, or PayloadError naming what is
    wrong."""
    document = decode_json_object(body)
    topic = document.get("topic")
    if topic == "return":
        return _parse_loop_return(document)
    if topic == "return.processing":
        return _parse_loop_processing(document)
    if topic not in (None, "label"):
        raise PayloadError(
            "topic: only the 'label', 'return' and 'return.processing' topics are subscribed "
            "to this endpoint (register label.created, label.updated, return.closed and "
            "return.processing.failed)"
        )
    try:
        label = LoopLabelPayload.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(_reason(exc)) from None
    eligible = {str(status) for status in ELIGIBLE_LABEL_STATUSES}
    reason = None
    if label.label_status not in eligible:
        reason = f"label status {label.label_status!r} does not start RMA creation"
    return WebhookEvent(
        source=LOOP,
        topic=label.trigger,
        resource_id=label.id,
        dedup_key="|".join(
            (
                label.topic,
                label.trigger,
                label.id,
                label.label_status,
                _stamp(label.label_updated_at),
            )
        ),
        no_work_reason=reason,
        stored={
            "topic": label.topic,
            "trigger": label.trigger,
            "id": label.id,
            "label_status": label.label_status,
            "label_updated_at": _stamp(label.label_updated_at),
        },
    )


def _parse_loop_return(document: dict[str, Any]) -> WebhookEvent:
    try:
        event = LoopReturnEventPayload.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(_reason(exc)) from None
    reason = None
    if event.trigger not in LOOP_RETURN_WORK_TRIGGERS:
        reason = f"{event.trigger} does not settle a Process"
    state = event.state or "-"
    return WebhookEvent(
        source=LOOP_RETURN,
        topic=event.trigger,
        resource_id=event.id,
        dedup_key="|".join((event.topic, event.trigger, event.id, state, _stamp(event.updated_at))),
        no_work_reason=reason,
        stored={
            "topic": event.topic,
            "trigger": event.trigger,
            "id": event.id,
            "state": state,
            "updated_at": _stamp(event.updated_at),
        },
    )


def _parse_loop_processing(document: dict[str, Any]) -> WebhookEvent:
    try:
        event = LoopProcessingPayload.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(_reason(exc)) from None
    return WebhookEvent(
        source=LOOP_RETURN,
        topic=event.trigger,
        resource_id=event.return_id,
        # No timestamp in this payload: one failure per return and state is one event.
        dedup_key="|".join((event.topic, event.trigger, event.return_id, event.return_state)),
        no_work_reason=None,
        stored={
            "topic": event.topic,
            "trigger": event.trigger,
            "id": event.return_id,
            "state": event.return_state,
            "message": event.message,
            "source": event.source,
        },
    )


def parse_whiplash(body: bytes) -> WebhookEvent:
    """A Whiplash delivery, or PayloadError naming what is wrong.

    `consumer_return.*` events we handle are validated; any other well-formed event name is
    an event we do not handle (`_unhandled_whiplash`).
    """
    document = decode_json_object(body)
    name = document.get("event_name")
    if isinstance(name, str) and name not in WHIPLASH_EVENTS and _EVENT_NAME.fullmatch(name):
        return _unhandled_whiplash(name, document, body)
    try:
        event = WhiplashReturnPayload.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(_reason(exc)) from None
    ref = event.consumer_return
    name = event.event_name or "consumer_return"
    reason = None
    if event.event_name is not None and event.event_name not in WHIPLASH_WORK_EVENTS:
        reason = f"{event.event_name} starts no reconciliation"
    status = "-" if ref.status is None else str(ref.status)
    return WebhookEvent(
        source=WHIPLASH,
        topic=name,
        resource_id=ref.id,
        dedup_key="|".join(
            ("consumer_return", event.event_name or "-", ref.id, status, _stamp(ref.updated_at))
        ),
        no_work_reason=reason,
        stored={
            "event_name": event.event_name,
            "consumer_return": {
                "id": int(ref.id),
                "status": ref.status,
                "updated_at": _stamp(ref.updated_at),
                "customer_id": _int_or_none(ref.customer_id or event.customer_id),
            },
        },
    )


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def whiplash_customer_id(event: WebhookEvent) -> int | None:
    """The Whiplash customer a parsed Whiplash event names (None: it names none)."""
    record = event.stored.get("consumer_return")
    value = record.get("customer_id") if isinstance(record, dict) else None
    return value if isinstance(value, int) else None


def _unhandled_whiplash(name: str, document: dict[str, Any], body: bytes) -> WebhookEvent:
    """A well-formed event we do not handle: kept (event, resource type, id) and closed.

    Its resource is not validated (it is not ours to read); the dedup key carries the body's
    digest, so a redelivery of the same bytes is a duplicate and distinct events are not.
    """
    resource_type = name.split(".", 1)[0]
    resource = document.get(resource_type)
    raw_id = resource.get("id") if isinstance(resource, dict) else None
    try:
        resource_id: str | None = _digits_id(raw_id) if raw_id is not None else None
    except ValueError:
        resource_id = None
    digest = hashlib.sha256(body).hexdigest()[:32]
    return WebhookEvent(
        source=WHIPLASH,
        topic=name,
        resource_id=None,  # not a consumer return: never a unit of work
        dedup_key="|".join((resource_type, name, resource_id or "-", digest)),
        no_work_reason=f"{name} is not an event we handle",
        stored={
            "event_name": name,
            "resource_type": resource_type,
            "id": int(resource_id) if resource_id is not None else None,
        },
    )


def needs_work(source: str, topic: str, stored: dict[str, Any]) -> str | None:
    """For an event read back from the inbox: why it needs no work, or None when it does."""
    if source == LOOP:
        status = str(stored.get("label_status") or "")
        if status in {str(s) for s in ELIGIBLE_LABEL_STATUSES}:
            return None
        return f"label status {status!r} does not start RMA creation"
    if source == LOOP_RETURN:
        return None if topic in LOOP_RETURN_WORK_TRIGGERS else f"{topic} does not settle a Process"
    if topic in WHIPLASH_WORK_EVENTS or topic == "consumer_return":
        return None
    if topic not in WHIPLASH_EVENTS:
        return f"{topic} is not an event we handle"
    return f"{topic} starts no reconciliation"
