"""Payload validation: what we accept, the dedup key, which events start work, clear reasons."""

from __future__ import annotations

import json

import pytest

from include.returns_sync.webhooks.payloads import (
    PayloadError,
    needs_work,
    parse_loop,
    parse_whiplash,
    whiplash_customer_id,
)
from tests.webhooks.support import consumer_return_payload, label_payload, php_json


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize("status", ["pre_transit", "in_transit", "out_for_delivery", "delivered"])
def test_a_loop_label_at_pre_transit_or_later_starts_rma_creation(status: str) -> None:
    event = parse_loop(php_json(label_payload("48000007", status)))
    assert event.source == "loop"
    assert event.topic == "label.updated"
    assert event.resource_id == "48000007"
    assert event.no_work_reason is None


@pytest.mark.parametrize("status", ["new", "failure", "error", "N/A", "returned_to_sender"])
def test_other_label_statuses_are_accepted_but_start_no_work(status: str) -> None:
    event = parse_loop(body(label_payload(status=status)))
    assert event.no_work_reason == f"label status {status!r} does not start RMA creation"


def test_a_loop_return_id_may_be_an_integer() -> None:
    assert parse_loop(body(label_payload(return_id=48000001))).resource_id == "48000001"  # type: ignore[arg-type]


def test_the_loop_dedup_key_is_topic_trigger_id_status_and_utc_timestamp() -> None:
    event = parse_loop(body(label_payload(label_updated_at="2026-03-01T07:00:00-05:00")))
    assert event.dedup_key == "label|label.updated|48000001|pre_transit|2026-03-01T12:00:00+00:00"
    same_instant = parse_loop(body(label_payload(label_updated_at="2026-03-01T12:00:00Z")))
    assert same_instant.dedup_key == event.dedup_key


def test_a_new_status_or_time_is_a_new_event_not_a_duplicate() -> None:
    first = parse_loop(body(label_payload(status="pre_transit")))
    moved = parse_loop(body(label_payload(status="in_transit")))
    later = parse_loop(body(label_payload(label_updated_at="2026-03-01T12:00:01+00:00")))
    assert len({first.dedup_key, moved.dedup_key, later.dedup_key}) == 3


def test_only_the_fields_we_use_are_kept_from_a_loop_payload() -> None:
    event = parse_loop(body(label_payload()))
    assert set(event.stored) == {"topic", "trigger", "id", "label_status", "label_updated_at"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (label_payload(topic="restock"), "topic: only the 'label', 'return' and"),
        (label_payload(trigger="return.created"), "trigger: Input should be"),
        ({**label_payload(), "id": None}, "id: must be an id"),
        (label_payload(return_id="48-001"), "id: must be a positive id"),
        (label_payload(return_id="0"), "id: must be a positive id"),
        ({**label_payload(), "id": True}, "id: must be an id (digits), not a boolean"),
        (
            {k: v for k, v in label_payload().items() if k != "label_status"},
            "label_status: Field required",
        ),
        (label_payload(status=3), "label_status: must be a string"),  # type: ignore[arg-type]
        (label_payload(status="<script>"), "label_status: must be a short status word"),
        (label_payload(label_updated_at="yesterday"), "label_updated_at: must be an ISO 8601"),
        (label_payload(label_updated_at=1700000000), "label_updated_at: must be an ISO 8601"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_malformed_loop_payload_is_rejected_with_a_reason(payload: dict, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_loop(body(payload))
    assert caught.value.reason.startswith(reason) or reason in caught.value.reason


def test_the_reason_never_echoes_the_submitted_value() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_loop(body(label_payload(return_id="jane@example.com")))
    assert "jane" not in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "the body is empty"),
        (b"   ", "the body is empty"),
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got a JSON array"),
        (b'"label"', "must be a JSON object, got a JSON string"),
        (b'{"topic": NaN}', "not valid JSON"),
        (b"[" * 100_000, "nests too deeply"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_rejected(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_loop(raw)


@pytest.mark.parametrize(
    "event_name", ["consumer_return.completed", "consumer_return.status_changed"]
)
def test_whiplash_completed_and_status_changed_start_reconciliation(event_name: str) -> None:
    event = parse_whiplash(body(consumer_return_payload(event_name, id=180042)))
    assert (event.source, event.topic, event.resource_id) == ("whiplash", event_name, "180042")
    assert event.no_work_reason is None


@pytest.mark.parametrize(
    "event_name",
    ["consumer_return.created", "consumer_return.deleted", "consumer_return.unexpected"],
)
def test_other_consumer_return_events_are_accepted_but_start_no_work(event_name: str) -> None:
    assert parse_whiplash(body(consumer_return_payload(event_name))).no_work_reason == (
        f"{event_name} starts no reconciliation"
    )


def test_a_whiplash_payload_without_event_name_is_treated_as_a_change_of_the_return() -> None:
    payload = consumer_return_payload()
    del payload["event_name"]
    event = parse_whiplash(body(payload))
    assert event.topic == "consumer_return"
    assert event.no_work_reason is None


def test_the_whiplash_dedup_key_is_event_id_status_and_utc_updated_at() -> None:
    event = parse_whiplash(body(consumer_return_payload(id=180001, status=300)))
    assert event.dedup_key == (
        "consumer_return|consumer_return.completed|180001|300|2026-03-13T15:39:21+00:00"
    )


def test_customer_data_in_a_whiplash_payload_is_not_kept() -> None:
    event = parse_whiplash(body(consumer_return_payload()))
    assert "jane" not in json.dumps(event.stored)
    assert event.stored["consumer_return"] == {
        "id": 180001,
        "status": 300,
        "updated_at": "2026-03-13T15:39:21+00:00",
        "customer_id": None,  # the Whiplash customer (a merchant), not the consumer
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (consumer_return_payload(customer_id=4711), 4711),
        (consumer_return_payload(customer_id="4711"), 4711),
        ({**consumer_return_payload(), "customer_id": 12}, 12),
        (consumer_return_payload(customer_id="not-an-id"), None),  # routing falls back, no 400
        (consumer_return_payload(), None),
    ],
)
def test_the_whiplash_customer_of_an_event_is_kept_for_routing(
    payload: dict, expected: int | None
) -> None:
    event = parse_whiplash(body(payload))
    assert whiplash_customer_id(event) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            {"event_name": "Order Shipped!", "order": {"id": 1}},
            "event_name: must be a Whiplash event name",
        ),
        ({"event_name": "consumer_return.completed"}, "consumer_return: Field required"),
        (consumer_return_payload(id="abc"), "consumer_return.id: must be a positive id"),  # type: ignore[arg-type]
        (consumer_return_payload(status="done"), "consumer_return.status: must be a whole number"),  # type: ignore[arg-type]
        (
            {"event_name": 5, "consumer_return": {"id": 1}},
            "event_name: must be a Whiplash event name",
        ),
    ],
)
def test_a_malformed_whiplash_payload_is_rejected_with_a_reason(payload: dict, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_whiplash(body(payload))
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "payload",
    [
        {"event_name": "order.shipped", "order": {"id": 7100001, "status": 300, "email": "j@x"}},
        {"event_name": "item.created", "item": {"id": "1001", "sku": "TEE-1"}},
        {"event_name": "shipnotice.status_changed", "shipnotice": {"id": 181660}},
        {"event_name": "order.dropship.packed", "order": "not even an object"},
        {"event_name": "consumer_return.archived", "consumer_return": {"id": "x"}},
    ],
)
def test_a_well_formed_event_we_do_not_handle_is_accepted_and_needs_no_work(
    payload: dict,
) -> None:
    event = parse_whiplash(body(payload))
    name = payload["event_name"]
    assert event.topic == name
    assert event.no_work_reason == f"{name} is not an event we handle"
    assert event.resource_id is None  # never taken for a consumer return to reconcile
    resource_type = name.split(".")[0]
    assert set(event.stored) == {"event_name", "resource_type", "id"}
    assert event.stored["resource_type"] == resource_type
    assert "j@x" not in json.dumps(event.stored) and "TEE-1" not in json.dumps(event.stored)
    assert needs_work("whiplash", event.topic, event.stored) == event.no_work_reason


def test_an_unhandled_event_is_deduplicated_by_its_bytes() -> None:
    first = {"event_name": "order.shipped", "order": {"id": 1, "status": 300}}
    again = parse_whiplash(body(first))
    other = parse_whiplash(body({**first, "order": {"id": 1, "status": 350}}))
    assert parse_whiplash(body(first)).dedup_key == again.dedup_key
    assert other.dedup_key != again.dedup_key
    assert again.stored["id"] == 1


def test_needs_work_agrees_with_the_parser_for_events_read_back_from_the_inbox() -> None:
    for status in ("pre_transit", "new"):
        event = parse_loop(body(label_payload(status=status)))
        assert needs_work("loop", event.topic, event.stored) == event.no_work_reason
    for name in ("consumer_return.completed", "consumer_return.created"):
        event = parse_whiplash(body(consumer_return_payload(name)))
        assert needs_work("whiplash", event.topic, event.stored) == event.no_work_reason


def processing_failed(**overrides: object) -> dict:
    """Loop's `return.processing` payload (return-processing-webhook.payload.yml)."""
    return {
        "topic": "return.processing",
        "trigger": "return.processing.failed",
        "return_id": 48000001,
        "return_state": "open",
        "message": "The return could not be processed.",
        "source": "api",
        **overrides,
    }


def return_event(trigger: str = "return.closed", **overrides: object) -> dict:
    """Loop's `return` topic payload, the fields we read plus some we do not keep."""
    return {
        "topic": "return",
        "trigger": trigger,
        "shop_id": 65432,
        "id": 48000001,
        "state": "closed",
        "updated_at": "2026-03-10T12:00:00+00:00",
        "customer": "jane@example.com",
        **overrides,
    }


def test_a_processing_failure_is_stored_for_the_receipts_dag_with_loops_message() -> None:
    event = parse_loop(body(processing_failed()))
    assert (event.source, event.topic, event.resource_id, event.no_work_reason) == (
        "loop_return",
        "return.processing.failed",
        "48000001",
        None,
    )
    assert event.stored["message"] == "The return could not be processed."
    assert event.dedup_key == "return.processing|return.processing.failed|48000001|open"


def test_a_processing_failure_with_a_null_message_and_source_is_accepted() -> None:
    event = parse_loop(body(processing_failed(message=None, source=None)))
    assert event.stored["message"] is None and event.no_work_reason is None


def test_return_closed_is_stored_for_the_receipts_dag_without_customer_data() -> None:
    event = parse_loop(body(return_event()))
    assert (event.source, event.topic, event.resource_id, event.no_work_reason) == (
        "loop_return",
        "return.closed",
        "48000001",
        None,
    )
    assert set(event.stored) == {"topic", "trigger", "id", "state", "updated_at"}


def test_other_return_triggers_are_accepted_but_settle_nothing() -> None:
    event = parse_loop(body(return_event("return.updated", state="open")))
    assert event.no_work_reason == "return.updated does not settle a Process"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (processing_failed(trigger="return.processing.started"), "trigger: Input should be"),
        (
            {k: v for k, v in processing_failed().items() if k != "return_state"},
            "return_state: Field required",
        ),
        ({**processing_failed(), "return_id": "abc"}, "return_id: must be a positive id"),
        (processing_failed(message=12), "message: must be a string or null"),
        ({k: v for k, v in return_event().items() if k != "id"}, "id: Field required"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_malformed_loop_return_event_is_rejected_with_a_reason(
    payload: dict, reason: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_loop(body(payload))
    assert reason in caught.value.reason


def test_needs_work_agrees_with_the_parser_for_loop_return_events() -> None:
    for payload in (processing_failed(), return_event(), return_event("return.updated")):
        event = parse_loop(body(payload))
        assert needs_work(event.source, event.topic, event.stored) == event.no_work_reason
