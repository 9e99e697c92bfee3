"""Webhook subscriptions and signed `label` webhooks of the Loop simulator.

`LoopWebhooksMixin` gives `LoopBackend` the `/webhooks` CRUD and `_notify_label`: on a label
change every active `label` subscription for that trigger gets a POST of `label_payload`
(likewise `_notify_return` with `return_payload` for the `return` topic, and
`_notify_processing_failed` with `processing_failed_payload` for `return.processing`),
serialised like Loop's PHP backend (`_php_json`) and signed with `X-Loop-Signature`, sent from
`delivery.WebhookDispatcher`'s background thread so the API never waits on a receiver.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from include.returns_sync.sandbox.delivery import WebhookDispatcher
from include.returns_sync.sandbox.loop_records import (
    NOT_FOUND,
    LoopError,
    ReturnRecord,
    Subscription,
)
from include.returns_sync.sandbox.signing import sign_loop

WEBHOOK_TOPICS = (
    "return",
    "label",
    "restock",
    "label.request",
    "giftcard",
    "happy.returns.shipment",
)
WEBHOOK_TRIGGERS = (
    "return.created",
    "return.updated",
    "return.closed",
    "label.created",
    "label.updated",
    "restock.requested",
    "label.request.issued",
    "label.request.cancelled",
    "giftcard.requested",
    "shipment.processed",
)


class LoopWebhooksMixin:
    """Subscriptions and label webhooks of `LoopBackend` (its lock guards the state)."""

    shop_id: int
    webhook_secret: str
    webhooks: WebhookDispatcher
    _lock: threading.RLock
    _subscriptions: dict[int, Subscription]
    _webhook_ids: Iterator[int]

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_dict() for s in self._subscriptions.values()]

    def create_subscription(self, body: Any) -> dict[str, Any]:
        topic, trigger, url, status = _subscription_fields(body, default_status="inactive")
        with self._lock:
            sub = Subscription(next(self._webhook_ids), self.shop_id, topic, trigger, url, status)
            self._subscriptions[sub.id] = sub
            return sub.to_dict()

    def update_subscription(self, webhook_id: str, body: Any) -> None:
        with self._lock:
            sub = self._subscription(webhook_id)
            topic, trigger, url, status = _subscription_fields(body, default_status=sub.status)
            sub.topic, sub.trigger, sub.url, sub.status = topic, trigger, url, status

    def delete_subscription(self, webhook_id: str) -> None:
        with self._lock:
            sub = self._subscription(webhook_id)
            del self._subscriptions[sub.id]

    def _subscription(self, webhook_id: str) -> Subscription:
        sub = self._subscriptions.get(int(webhook_id)) if webhook_id.isdigit() else None
        if sub is None:
            raise LoopError(404, NOT_FOUND)
        return sub

    def subscribe_in_admin(self, topic: str, trigger: str, url: str) -> dict[str, Any]:
        """A subscription made in Loop Admin > Developer Tools (admin/test knob).

        The programmatic API's topic enum has no `return.processing` (its contract lists
        return, label, restock, label.request, giftcard, happy.returns.shipment), so that
        topic is subscribed here, as a merchant would in Loop's admin.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        with self._lock:
            sub = Subscription(next(self._webhook_ids), self.shop_id, topic, trigger, url, "active")
            self._subscriptions[sub.id] = sub
            return sub.to_dict()

    def _notify_label(self, record: ReturnRecord, trigger: str) -> None:
        self._notify("label", trigger, label_payload(record, trigger, self.shop_id))

    def _notify_return(self, record: ReturnRecord, trigger: str) -> None:
        self._notify("return", trigger, return_payload(record, trigger, self.shop_id))

    def _notify_processing_failed(self, record: ReturnRecord, message: str | None) -> None:
        trigger = "return.processing.failed"
        self._notify("return.processing", trigger, processing_failed_payload(record, message))

    def _notify(self, topic: str, trigger: str, payload: Mapping[str, Any]) -> None:
        targets = [
            s
            for s in self._subscriptions.values()
            if s.status == "active" and s.topic == topic and s.trigger == trigger
        ]
        if not targets:
            return
        body = _php_json(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Loop-Signature": sign_loop(self.webhook_secret, body),
            "User-Agent": "Loop-Webhooks/1.0 (sandbox)",
        }
        for sub in targets:
            self.webhooks.submit(sub.url, body, headers, topic=f"{topic}/{trigger}")


def label_payload(record: ReturnRecord, trigger: str, shop_id: int) -> dict[str, Any]:
    """The `label` topic payload (label-webhook.payload.yml); the return id is a string."""
    return {
        "topic": "label",
        "trigger": trigger,
        "shop_id": str(shop_id),
        "id": record.id,
        "order_id": str(record.order_id),
        "provider_order_id": record.provider_order_id,
        "carrier": record.carrier,
        "tracking_number": record.tracking_number,
        "label_status": record.label_status,
        "label_updated_at": (
            record.label_updated_at.isoformat() if record.label_updated_at else None
        ),
        "shipment_id": f"shp_{record.id}",
    }


def return_payload(record: ReturnRecord, trigger: str, shop_id: int) -> dict[str, Any]:
    """The `return` topic payload (return-webhook.payload.yml, the fields up to its cut-off);
    ids are integers here, as in Loop's details and webhooks."""
    return {
        "topic": "return",
        "trigger": trigger,
        "shop_id": shop_id,
        "id": int(record.id),
        "state": record.state,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "edited_at": None,
        "total": record.total,
        "outcome": record.outcome,
        "order_id": int(record.order_id),
        "order_name": record.order_name,
        "provider_order_id": record.provider_order_id,
        "currency": record.currency,
    }


def processing_failed_payload(record: ReturnRecord, message: str | None) -> dict[str, Any]:
    """The `return.processing` payload (return-processing-webhook.payload.yml): every field is
    required, `message` may be null or generic, `source` says who asked for the processing."""
    return {
        "topic": "return.processing",
        "trigger": "return.processing.failed",
        "return_id": int(record.id),
        "return_state": record.state,
        "message": message,
        "source": "api",
    }


def _php_json(payload: Mapping[str, Any]) -> bytes:
    """Serialise like Loop's PHP backend: compact, with escaped slashes. A receiver that
    re-serialises the JSON before checking the signature will fail, as it would in production."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def _subscription_fields(body: Any, *, default_status: str) -> tuple[str, str, str, str]:
    if not isinstance(body, dict):
        raise LoopError(422, {"message": "The body must be a JSON object.", "errors": {}})
    errors: dict[str, list[str]] = {}
    for name, allowed in (("topic", WEBHOOK_TOPICS), ("trigger", WEBHOOK_TRIGGERS)):
        value = body.get(name)
        if value is None:
            errors[name] = [f"The {name} field is required."]
        elif value not in allowed:
            errors[name] = [f"Must be one of the following values:{','.join(allowed)}"]
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors["url"] = ["The url field is required and must be a valid URL."]
    status = body.get("status", default_status)
    if status not in ("active", "inactive"):
        errors["status"] = ["Must be one of the following values:active,inactive"]
    if errors:
        first = next(iter(errors.values()))[0]
        raise LoopError(422, {"message": first, "errors": errors})
    return body["topic"], body["trigger"], url, status  # type: ignore[return-value]
