"""Helpers for the webhook tests: vendor signing recipes, payload builders, an HTTP client.

Signatures are computed here from the vendors' documented recipes (not with the code under
test), so a wrong recipe in `signatures.py` fails the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from include.returns_sync.sandbox.serving import serve_in_thread
from include.returns_sync.state import StateStore

LOOP_SECRET = "loop-webhook-secret-for-tests"
WHIPLASH_SECRET = "whiplash-client-secret-for-tests"
WHIPLASH_CLIENT_ID = "whiplash-client-id"


def loop_signature(body: bytes, secret: str = LOOP_SECRET) -> str:
    """Loop's recipe: base64 of HMAC-SHA256(secret, raw body)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def whiplash_signature(body: bytes, secret: str = WHIPLASH_SECRET) -> str:
    """Whiplash's recipe: hex of HMAC-SHA256(secret, raw body)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def php_json(payload: dict[str, Any]) -> bytes:
    """Serialised like Loop's backend: compact, slashes escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def label_payload(return_id: str = "48000001", status: str = "pre_transit", **extra: Any) -> dict:
    payload = {
        "topic": "label",
        "trigger": "label.updated",
        "shop_id": "65432",
        "id": return_id,
        "order_id": "7100001",
        "provider_order_id": 5400000037037,
        "carrier": "USPS",
        "tracking_number": "9400000000000000000001",
        "label_status": status,
        "label_updated_at": "2026-03-01T12:00:00+00:00",
        "shipment_id": f"shp_{return_id}",
    }
    payload.update(extra)
    return payload


def consumer_return_payload(
    event: str = "consumer_return.completed", id: int = 180001, status: int = 300, **extra: Any
) -> dict:
    record = {
        "id": id,
        "status": status,
        "status_name": "Completed",
        "updated_at": "2026-03-13T11:39:21.000-04:00",
        "reference": "48000001",
        "sender": {"name": "Jane Doe", "email": "jane@example.com"},
    }
    record.update(extra)
    return {"event_name": event, "consumer_return": record}


@dataclass
class WebhookServer:
    """The webhook app served over HTTP on 127.0.0.1, with the store behind it."""

    url: str
    store: StateStore

    def post(
        self, vendor: str, body: bytes, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            f"{self.url}/webhooks/{vendor}",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=10,
        )

    def loop(self, payload: dict[str, Any] | bytes) -> requests.Response:
        body = payload if isinstance(payload, bytes) else php_json(payload)
        return self.post("loop", body, {"X-Loop-Signature": loop_signature(body)})

    def whiplash(self, payload: dict[str, Any] | bytes) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.post("whiplash", body, {"X-WHIPLASH-SIGNATURE": whiplash_signature(body)})


def inbox_rows(store: StateStore) -> list[Any]:
    """Every inbox row (any status), oldest first."""
    from sqlalchemy import select

    from include.returns_sync.state.schema import webhook_inbox

    with store.engine.connect() as conn:
        return list(conn.execute(select(webhook_inbox).order_by(webhook_inbox.c.id)).mappings())


@contextmanager
def serving(app: Any, store: Any = None, prefix: str = "") -> Iterator[WebhookServer]:
    """Serve `app` on 127.0.0.1 for the duration; the webhooks live under `prefix`."""
    server = serve_in_thread(app)
    try:
        yield WebhookServer(server.url + prefix, store)
    finally:
        server.stop()
