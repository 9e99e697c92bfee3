"""The endpoints over HTTP: 200 only for a signed, valid event that is already stored."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi import FastAPI

from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.app import MAX_BODY_BYTES, WebhookReceiver, create_app
from include.returns_sync.webhooks.secrets import ConnectionSecrets, StaticSecrets
from tests.webhooks.support import (
    LOOP_SECRET,
    WHIPLASH_CLIENT_ID,
    WHIPLASH_SECRET,
    WebhookServer,
    consumer_return_payload,
    inbox_rows,
    label_payload,
    loop_signature,
    php_json,
    serving,
    whiplash_signature,
)

PLUGIN_FILE = Path(__file__).resolve().parents[2] / "plugins" / "returns_sync_webhooks.py"


def test_a_signed_loop_label_event_is_stored_before_the_200(webhook_server: WebhookServer) -> None:
    reply = webhook_server.loop(label_payload("48000001", "pre_transit"))
    assert reply.status_code == 200
    assert reply.json()["status"] == "accepted"
    [row] = inbox_rows(webhook_server.store)
    assert (row["id"], row["source"], row["topic"], row["resource_id"], row["status"]) == (
        reply.json()["inbox_id"],
        "loop",
        "label.updated",
        "48000001",
        "new",
    )
    assert webhook_server.store.inbox_pending_count("loop") == 1


def test_a_signed_loop_processing_failure_is_stored_for_the_receipts_dag(
    webhook_server: WebhookServer,
) -> None:
    payload = {
        "topic": "return.processing",
        "trigger": "return.processing.failed",
        "return_id": 48000001,
        "return_state": "open",
        "message": None,
        "source": "api",
    }
    reply = webhook_server.loop(payload)
    assert reply.status_code == 200 and reply.json()["status"] == "accepted"
    [row] = inbox_rows(webhook_server.store)
    assert (row["source"], row["topic"], row["resource_id"], row["status"]) == (
        "loop_return",
        "return.processing.failed",
        "48000001",
        "new",
    )
    # the receipts DAG's inbox wakes; the RMA DAG's (label events) does not
    assert webhook_server.store.inbox_pending_count("loop_return") == 1
    assert webhook_server.store.inbox_pending_count("loop") == 0


def test_a_signed_loop_return_closed_event_is_stored_for_the_receipts_dag(
    webhook_server: WebhookServer,
) -> None:
    payload = {"topic": "return", "trigger": "return.closed", "id": 48000001, "state": "closed"}
    reply = webhook_server.loop(payload)
    assert reply.status_code == 200 and reply.json()["status"] == "accepted"
    assert webhook_server.store.inbox_pending_count("loop_return") == 1
    assert webhook_server.loop(payload).json()["status"] == "duplicate"


def test_a_signed_whiplash_event_is_stored_with_the_consumer_return_id(
    webhook_server: WebhookServer,
) -> None:
    reply = webhook_server.whiplash(consumer_return_payload(id=180009))
    assert reply.status_code == 200, reply.text
    [row] = inbox_rows(webhook_server.store)
    assert (row["source"], row["topic"], row["resource_id"]) == (
        "whiplash",
        "consumer_return.completed",
        "180009",
    )


def test_a_duplicate_delivery_is_answered_200_without_new_work(
    webhook_server: WebhookServer,
) -> None:
    first = webhook_server.loop(label_payload("48000001", "in_transit"))
    again = webhook_server.loop(label_payload("48000001", "in_transit"))
    assert again.status_code == 200
    assert again.json() == {
        "status": "duplicate",
        "inbox_id": first.json()["inbox_id"],
        "merchant": "default",
    }
    assert len(inbox_rows(webhook_server.store)) == 1
    # ... also after the first one was handled
    webhook_server.store.inbox_done([first.json()["inbox_id"]])
    assert webhook_server.loop(label_payload("48000001", "in_transit")).json()["status"] == (
        "duplicate"
    )
    assert webhook_server.store.inbox_pending_count() == 0


def test_an_event_that_needs_no_work_is_stored_as_done_and_wakes_nothing(
    webhook_server: WebhookServer,
) -> None:
    reply = webhook_server.loop(label_payload(status="new"))
    assert reply.status_code == 200
    assert reply.json()["status"] == "ignored"
    assert reply.json()["reason"] == "label status 'new' does not start RMA creation"
    [row] = inbox_rows(webhook_server.store)
    assert row["status"] == "done"
    assert row["reason"] == "no work: label status 'new' does not start RMA creation"
    assert webhook_server.store.inbox_pending_count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"event_name": "order.shipped", "order": {"id": 7100001, "status": 300}},
        {"event_name": "item.inventory_changed", "item": {"id": 1001}},
        {"event_name": "shipnotice.status_changed", "shipnotice": {"id": 181660}},
    ],
)
def test_a_well_signed_event_we_do_not_handle_is_200_and_recorded_as_ignored(
    webhook_server: WebhookServer, payload: dict
) -> None:
    """A 4xx would count toward Whiplash disabling the subscription."""
    name = payload["event_name"]

    reply = webhook_server.whiplash(payload)
    again = webhook_server.whiplash(payload)

    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "ignored"
    assert reply.json()["reason"] == f"{name} is not an event we handle"
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    [row] = inbox_rows(webhook_server.store)
    assert (row["source"], row["topic"], row["status"]) == ("whiplash", name, "done")
    assert row["reason"] == f"no work: {name} is not an event we handle"
    assert webhook_server.store.inbox_pending_count() == 0


def test_an_unhandled_event_with_a_bad_signature_is_still_401(
    webhook_server: WebhookServer,
) -> None:
    body = json.dumps({"event_name": "order.shipped", "order": {"id": 1}}).encode()
    reply = webhook_server.post(
        "whiplash", body, {"X-WHIPLASH-SIGNATURE": whiplash_signature(body, "not-the-secret")}
    )
    assert reply.status_code == 401
    assert inbox_rows(webhook_server.store) == []


def test_a_missing_signature_is_401(webhook_server: WebhookServer) -> None:
    reply = webhook_server.post("loop", php_json(label_payload()))
    assert reply.status_code == 401
    assert reply.json() == {"detail": "missing X-Loop-Signature header"}
    reply = webhook_server.post("whiplash", json.dumps(consumer_return_payload()).encode())
    assert reply.status_code == 401
    assert inbox_rows(webhook_server.store) == []


def test_a_bad_signature_is_401_and_nothing_is_stored(webhook_server: WebhookServer) -> None:
    body = php_json(label_payload())
    for signature in (loop_signature(body, "wrong"), "garbage", loop_signature(body + b" ")):
        reply = webhook_server.post("loop", body, {"X-Loop-Signature": signature})
        assert reply.status_code == 401
        assert reply.json() == {"detail": "X-Loop-Signature does not match the request body"}
    assert inbox_rows(webhook_server.store) == []


def test_a_body_reserialised_after_signing_is_401(webhook_server: WebhookServer) -> None:
    raw = php_json(label_payload(tracking_number="1Z/99"))
    reserialised = json.dumps(json.loads(raw)).encode()
    reply = webhook_server.post("loop", reserialised, {"X-Loop-Signature": loop_signature(raw)})
    assert reply.status_code == 401
    raw = json.dumps(consumer_return_payload(), separators=(",", ":")).encode()
    reply = webhook_server.post(
        "whiplash",
        json.dumps(json.loads(raw), indent=1).encode(),
        {"X-WHIPLASH-SIGNATURE": whiplash_signature(raw)},
    )
    assert reply.status_code == 401


def test_the_signature_header_name_is_case_insensitive(webhook_server: WebhookServer) -> None:
    body = json.dumps(consumer_return_payload()).encode()
    reply = webhook_server.post(
        "whiplash", body, {"x-whiplash-signature": whiplash_signature(body)}
    )
    assert reply.status_code == 200


def test_one_vendors_signature_does_not_open_the_other_endpoint(
    webhook_server: WebhookServer,
) -> None:
    body = php_json(label_payload())
    reply = webhook_server.post(
        "whiplash", body, {"X-WHIPLASH-SIGNATURE": whiplash_signature(body, LOOP_SECRET)}
    )
    assert reply.status_code == 401


def test_a_signed_but_malformed_payload_is_400_with_the_reason(
    webhook_server: WebhookServer,
) -> None:
    reply = webhook_server.loop(label_payload(topic="restock"))
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith("topic: only the 'label', 'return' and")
    reply = webhook_server.loop(b"[1,2,3]")
    assert reply.status_code == 400
    assert reply.json() == {"detail": "the body must be a JSON object, got a JSON array"}
    reply = webhook_server.whiplash({"event_name": "consumer_return.completed"})
    assert reply.status_code == 400
    assert "consumer_return" in reply.json()["detail"]
    assert inbox_rows(webhook_server.store) == []


def test_an_empty_whiplash_body_signed_with_the_client_id_is_400_not_401(
    webhook_server: WebhookServer,
) -> None:
    signature = whiplash_signature(WHIPLASH_CLIENT_ID.encode())
    reply = webhook_server.post("whiplash", b"", {"X-WHIPLASH-SIGNATURE": signature})
    assert reply.status_code == 400
    assert reply.json() == {"detail": "the body is empty; expected a JSON object"}


def test_a_body_over_one_megabyte_is_413_before_anything_else(
    webhook_server: WebhookServer,
) -> None:
    big = b'{"pad":"' + b"x" * MAX_BODY_BYTES + b'"}'
    reply = webhook_server.post("loop", big, {"X-Loop-Signature": loop_signature(big)})
    assert reply.status_code == 413
    assert reply.json() == {"detail": f"request body exceeds {MAX_BODY_BYTES} bytes"}
    reply = webhook_server.post("whiplash", big)  # unsigned: the size is checked first
    assert reply.status_code == 413


def test_a_chunked_body_over_the_limit_is_413_without_a_content_length(
    webhook_server: WebhookServer,
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 65_536

    reply = requests.post(
        f"{webhook_server.url}/webhooks/loop",
        data=chunks(),
        headers={"X-Loop-Signature": "x"},
        timeout=10,
    )
    assert reply.status_code == 413


def test_a_body_of_exactly_the_limit_is_read(webhook_server: WebhookServer) -> None:
    payload = label_payload()
    base = php_json({**payload, "pad": ""})
    body = php_json({**payload, "pad": "x" * (MAX_BODY_BYTES - len(base))})
    assert len(body) == MAX_BODY_BYTES
    assert webhook_server.loop(body).status_code == 200


def test_other_methods_and_paths_are_not_served(webhook_server: WebhookServer) -> None:
    assert requests.get(f"{webhook_server.url}/webhooks/loop", timeout=5).status_code == 405
    assert requests.post(f"{webhook_server.url}/webhooks/shopify", timeout=5).status_code == 404
    assert requests.get(f"{webhook_server.url}/docs", timeout=5).status_code == 404
    assert requests.get(f"{webhook_server.url}/openapi.json", timeout=5).status_code == 404


def test_no_configured_secret_is_503_and_says_so_in_the_log(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(WebhookReceiver(store=lambda: store, secrets=StaticSecrets({})))
    with serving(app, store) as server, caplog.at_level(logging.ERROR):
        reply = server.loop(label_payload())
    assert reply.status_code == 503
    assert reply.json() == {"detail": "loop webhook verification is not configured"}
    assert "Cannot verify loop webhooks" in caplog.text


def test_a_store_that_cannot_write_is_503_so_the_vendor_retries(
    static_secrets: StaticSecrets,
) -> None:
    def broken_store() -> StateStore:
        raise ConnectionError("database is down: INSERT ... jane@example.com")

    app = create_app(WebhookReceiver(store=broken_store, secrets=static_secrets))
    with serving(app) as server:
        reply = server.loop(label_payload())
    assert reply.status_code == 503


def test_logs_carry_no_secret_signature_or_payload(
    webhook_server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    payload = consumer_return_payload()
    body = json.dumps(payload).encode()
    signature = whiplash_signature(body)
    with caplog.at_level(logging.DEBUG):
        webhook_server.post("whiplash", body, {"X-WHIPLASH-SIGNATURE": signature})
        webhook_server.post("whiplash", body, {"X-WHIPLASH-SIGNATURE": "0" * 64})
        webhook_server.whiplash(
            {**payload, "consumer_return": {"id": "x", "sender": "jane@example.com"}}
        )
    assert "stored as inbox event" in caplog.text
    for secret in (WHIPLASH_SECRET, LOOP_SECRET, signature, "jane", "Jane Doe"):
        assert secret not in caplog.text


def test_whiplash_webhooks_verify_with_the_client_secret_when_no_webhook_secret_is_set(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whiplash signs V2 app webhooks with the OAuth client secret (the connection password)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WHIPLASH_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": "http://127.0.0.1:9",
                "login": "cid",
                "password": "client-secret",
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOP_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "password": "api-key",
                "extra": {"webhook_secret": ["old", "new"]},
            }
        ),
    )
    app = create_app(WebhookReceiver(store=lambda: store, secrets=ConnectionSecrets()))
    with serving(app, store) as server:
        body = json.dumps(consumer_return_payload()).encode()
        ok = server.post(
            "whiplash", body, {"X-WHIPLASH-SIGNATURE": whiplash_signature(body, "client-secret")}
        )
        loop_body = php_json(label_payload())
        rotated = server.post(
            "loop", loop_body, {"X-Loop-Signature": loop_signature(loop_body, "new")}
        )
    assert ok.status_code == 200, ok.text
    assert rotated.status_code == 200, rotated.text


def test_whiplash_webhooks_verify_with_the_webhook_secret_or_the_client_secret(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whiplash's docs disagree on the signing key: API key (help center) or client secret."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WHIPLASH_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": "http://127.0.0.1:9",
                "login": "cid",
                "password": "client-secret",
                "extra": {"webhook_secret": "account-api-key"},
            }
        ),
    )
    app = create_app(WebhookReceiver(store=lambda: store, secrets=ConnectionSecrets()))
    replies = {}
    with serving(app, store) as server:
        for n, secret in enumerate(("account-api-key", "client-secret", "someone-else", "cid")):
            body = json.dumps(consumer_return_payload(id=180001 + n)).encode()
            signature = whiplash_signature(body, secret)
            replies[secret] = server.post("whiplash", body, {"X-WHIPLASH-SIGNATURE": signature})
    assert replies["account-api-key"].status_code == 200, replies["account-api-key"].text
    assert replies["client-secret"].status_code == 200, replies["client-secret"].text
    assert replies["someone-else"].status_code == 401
    assert replies["cid"].status_code == 401
    assert [row["resource_id"] for row in inbox_rows(store)] == ["180001", "180002"]


def test_the_plugin_mounts_the_app_under_returns_sync(
    store: StateStore, static_secrets: StaticSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mounted the way the Airflow API server mounts plugin apps (`app.mount(url_prefix, app)`)."""
    from include.returns_sync.webhooks import app as app_module

    spec = importlib.util.spec_from_file_location("returns_sync_webhooks", PLUGIN_FILE)
    assert spec is not None and spec.loader is not None
    plugin_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin_module)

    monkeypatch.setattr(
        app_module,
        "WebhookReceiver",
        lambda: WebhookReceiver(store=lambda: store, secrets=static_secrets),
    )
    [entry] = plugin_module.ReturnsSyncWebhooksPlugin.fastapi_apps
    root = FastAPI()
    root.mount(entry["url_prefix"], entry["app"])
    with serving(root, store, prefix="/returns-sync") as server:
        reply = server.loop(label_payload())
    assert reply.status_code == 200, reply.text
    assert len(inbox_rows(store)) == 1
