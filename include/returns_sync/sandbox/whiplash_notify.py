"""Notification events, subscriptions and signed webhook delivery for the Whiplash simulator.

A subscription (`POST /api/v2/notification_subscriptions`) names an event of the catalog
(`GET /api/v2/notification_events`), a `notification_type` and an `endpoint`. For each event
every active `webhook` subscription gets a POST of `{"event_name": ..., "<resource>": {...}}`
signed with `X-WHIPLASH-SIGNATURE` = hex HMAC-SHA256(client secret, raw body), sent from
`delivery.WebhookDispatcher`'s background thread so the API never waits on a receiver.

Decisions: the webhook `notification_type` string is "webhook" (undocumented; "email" and
"slack" are accepted and never delivered); `version` defaults to 2 and both versions get the V2
payload; one delivery attempt per event (the real service retries up to 10 times); deleting a
subscription discards it (`discarded_at`), it then answers 404.

Events published: `consumer_return.*` (by the backend), `item.created` (`add_item`),
`order.created` (`add_order`) and, in strict mode, `shipnotice.status_changed` beside each
`consumer_return.status_changed` (a ConsumerReturn is a Shipnotice, so the parent's event may
fire too), with the return rendered as a Shipnotice entity under the `shipnotice` key.

Lenient (the reading our pipeline was written from): an event goes only to the subscriptions
of that event, and every delivery is signed with the OAuth client secret (the V2 docs and
Whiplash's own app gem).

Strict (the harsher reading of what the docs leave open, see `strict.py`):

- **Events we do not handle arrive.** Webhooks can also be set up in Whiplash Preferences,
  where an endpoint is ticked for many events at once, and nothing stops an admin from adding
  events to ours. So every event the account publishes (`order.created`, `item.created`,
  `shipnotice.status_changed`, `consumer_return.created`, ...) goes to every endpoint that has
  an active webhook subscription, once per endpoint, whatever event it subscribed to. A
  receiver must answer them 2xx: failures count toward deactivation (100 in a row).
- **The docs disagree on the signing key.** The V2 docs and the gem say the client secret; the
  newer help-center article says the account's API key (`WhiplashBackend.api_key`). Strict signs
  `version: 1` subscriptions (the V1-era, UI-made kind, whose API authenticated with the API
  key) with the API key and `version: 2` ones with the client secret, whatever secret the
  receiver was configured with: a receiver that checks only its configured `webhook_secret`
  rejects one kind or the other, one that accepts either secret takes both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from include.returns_sync.sandbox.delivery import WebhookDispatcher
from include.returns_sync.sandbox.signing import sign_whiplash
from include.returns_sync.sandbox.whiplash_records import (
    NotificationEvent,
    NotificationSubscription,
    WhiplashApiError,
)

EVENT_CATALOG = (
    ("consumer_return.created", "Sent when a consumer return is created"),
    ("consumer_return.status_changed", "Sent when a consumer return changes status"),
    ("consumer_return.completed", "Sent when a return is marked as completed"),
    ("consumer_return.deleted", "Sent when a consumer return is deleted"),
    ("consumer_return.unexpected", "Sent when an unexpected consumer return arrives"),
    ("item.created", "Sent when an item is created"),
    ("order.created", "Sent when an order is created"),
    ("order.shipped", "Sent when an order ships"),
    ("shipnotice.status_changed", "Sent when a shipnotice changes status"),
)
NOTIFICATION_TYPES = ("webhook", "email", "slack")
#: What a consumer return has and the Shipnotice entity (`ApiV2EntitiesShipnotice`) does not.
RETURN_ONLY_KEYS = frozenset({"exchange_order", "exchange_order_id", "order", "return_items"})


def as_shipnotice(consumer_return: dict[str, Any]) -> dict[str, Any]:
    """A rendered consumer return seen as its parent Shipnotice (for `shipnotice.*` events)."""
    return {k: v for k, v in consumer_return.items() if k not in RETURN_ONLY_KEYS}


class Notifier:
    """Holds the event catalog and subscriptions; the backend's lock guards every call."""

    def __init__(
        self,
        now: Callable[[], datetime],
        next_id: Callable[[str], int],
        signing_secret: str,
        dispatcher: WebhookDispatcher,
        *,
        api_key: str | None = None,
        strict: Callable[[], bool] = lambda: False,
    ) -> None:
        self._now = now
        self._next_id = next_id
        self._secret = signing_secret
        self._api_key = api_key
        self._strict = strict
        self.dispatcher = dispatcher
        created = now()
        self.events = {
            index: NotificationEvent(index, name, description, created)
            for index, (name, description) in enumerate(EVENT_CATALOG, start=1)
        }
        self._subscriptions: dict[int, NotificationSubscription] = {}

    def live_subscriptions(self) -> list[NotificationSubscription]:
        return [s for s in self._subscriptions.values() if s.discarded_at is None]

    def subscription(self, id: int) -> NotificationSubscription:
        subscription = self._subscriptions.get(id)
        if subscription is None or subscription.discarded_at is not None:
            raise WhiplashApiError(404, f"Couldn't find NotificationSubscription with 'id'={id}")
        return subscription

    def create(self, body: Mapping[str, Any], customer_id: int | None) -> NotificationSubscription:
        """A subscription to the events of `customer_id` (None = every customer's)."""
        values = self._values(body, creating=True)
        now = self._now()
        subscription = NotificationSubscription(
            id=self._next_id("subscription"),
            notification_event_id=values["notification_event_id"],
            notification_type=values.get("notification_type", "webhook"),
            endpoint=values.get("endpoint"),
            active=values.get("active", True),
            version=values.get("version", 2),
            created_at=now,
            updated_at=now,
            customer_id=customer_id,
        )
        self._subscriptions[subscription.id] = subscription
        return subscription

    def update(self, id: int, body: Mapping[str, Any]) -> NotificationSubscription:
        subscription = self.subscription(id)
        for key, value in self._values(body, creating=False).items():
            setattr(subscription, key, value)
        subscription.updated_at = self._now()
        return subscription

    def discard(self, id: int) -> None:
        self.subscription(id).discarded_at = self._now()

    def send_test(self, id: int, sample: dict[str, Any]) -> NotificationSubscription:
        """Send one notification of the subscription's event with `sample` as the resource."""
        subscription = self.subscription(id)
        event = self.events[subscription.notification_event_id]
        self._send(subscription, {"event_name": event.name, event.resource_type: sample})
        return subscription

    def subscribers(
        self, event_name: str, customer_id: int | None = None
    ) -> list[NotificationSubscription]:
        """The active webhook subscriptions of `event_name` that may see `customer_id`'s
        events (their own customer's, or every customer's)."""
        event_ids = {event.id for event in self.events.values() if event.name == event_name}
        return [
            subscription
            for subscription in self._webhooks_for(customer_id)
            if subscription.notification_event_id in event_ids
        ]

    def publish(
        self,
        event_name: str,
        resource: Callable[[], dict[str, Any]],
        customer_id: int | None = None,
    ) -> None:
        """Queue `event_name` for its subscribers; `resource` is rendered only if one exists.

        Only subscriptions of the record's customer (`customer_id`) or of every customer get
        it: another customer's endpoint never sees it, in either mode. Strict: also for every
        other endpoint with an active webhook subscription that may see it (once each).
        """
        subscribers = self.subscribers(event_name, customer_id)
        if self._strict():
            endpoints = {subscription.endpoint for subscription in subscribers}
            for subscription in self._webhooks_for(customer_id):
                if subscription.endpoint not in endpoints:
                    endpoints.add(subscription.endpoint)
                    subscribers.append(subscription)
        if not subscribers:
            return
        payload = {"event_name": event_name, event_name.split(".", 1)[0]: resource()}
        for subscription in subscribers:
            self._send(subscription, payload)

    def signing_key(self, subscription: NotificationSubscription) -> str:
        """Client secret; strict: the API key for `version: 1` subscriptions (docstring)."""
        if self._strict() and subscription.version == 1 and self._api_key:
            return self._api_key
        return self._secret

    # ------------------------------------------------------------------ internals

    def _webhooks_for(self, customer_id: int | None) -> list[NotificationSubscription]:
        return [
            subscription
            for subscription in self.live_subscriptions()
            if subscription.active
            and subscription.notification_type == "webhook"
            and subscription.customer_id in (None, customer_id)
        ]

    def _send(self, subscription: NotificationSubscription, payload: dict[str, Any]) -> None:
        if not subscription.endpoint:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Whiplash-Webhooks (sandbox)",
            "X-WHIPLASH-SIGNATURE": sign_whiplash(self.signing_key(subscription), body),
        }
        self.dispatcher.submit(subscription.endpoint, body, headers, str(payload["event_name"]))

    def _values(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        """The writable fields of `body`, checked (422 naming the field when wrong)."""
        values: dict[str, Any] = {}
        if "notification_event_id" in body or creating:
            event_id = _required_int(body, "notification_event_id")
            if event_id not in self.events:
                raise WhiplashApiError(422, f"notification_event_id {event_id} does not exist")
            values["notification_event_id"] = event_id
        if "notification_type" in body:
            kind = str(body["notification_type"])
            if kind not in NOTIFICATION_TYPES:
                allowed = list(NOTIFICATION_TYPES)
                raise WhiplashApiError(
                    422, f"notification_type must be one of {allowed}, got {kind!r}"
                )
            values["notification_type"] = kind
        if "endpoint" in body:
            values["endpoint"] = None if body["endpoint"] is None else str(body["endpoint"])
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise WhiplashApiError(422, f"active must be true or false, got {body['active']!r}")
            values["active"] = body["active"]
        if "version" in body:
            version = _required_int(body, "version")
            if version not in (1, 2):
                raise WhiplashApiError(422, f"version must be 1 or 2, got {version}")
            values["version"] = version
        if creating and values.get("notification_type", "webhook") == "webhook":
            endpoint = values.get("endpoint") or ""
            if not endpoint.startswith(("http://", "https://")):
                raise WhiplashApiError(422, "endpoint is required for webhooks (an http(s) URL)")
        return values


def _required_int(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise WhiplashApiError(422, f"{name} is missing")
    if isinstance(value, bool):
        raise WhiplashApiError(422, f"{name} must be an integer, got {value!r}")
    try:
        return int(str(value))
    except ValueError as exc:
        raise WhiplashApiError(422, f"{name} must be an integer, got {value!r}") from exc
