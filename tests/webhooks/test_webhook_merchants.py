"""Several merchants behind one deployment's endpoints, over HTTP, on a real SQLite store.

Loop: each merchant's URL opens only with that merchant's secret; an unknown merchant is a 404
that stores nothing. Whiplash: one endpoint; the signing account, then the RMA's owner, the
payload's customer id or the account's first merchant decide whose event it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.app import WebhookReceiver, create_app
from include.returns_sync.webhooks.drain import claim
from include.returns_sync.webhooks.routing import MerchantsUnavailable
from include.returns_sync.webhooks.secrets import SigningKeys, StaticSecrets
from tests.webhooks.support import (
    WebhookServer,
    consumer_return_payload,
    inbox_rows,
    label_payload,
    loop_signature,
    php_json,
    serving,
    whiplash_signature,
)


@dataclass(frozen=True)
class Shop:
    """A merchants-file entry as the endpoint reads it (`merchants.Merchant`'s fields)."""

    id: str
    loop_conn_id: str
    whiplash_conn_id: str = "whiplash_default"
    whiplash_customer_id: int | None = None
    order: int = 0


MERCHANTS = [
    Shop("acme", "loop_acme", "whiplash_default", 4711, order=0),
    Shop("solo", "loop_solo", "whiplash_solo", None, order=1),
    Shop("beta", "loop_beta", "whiplash_default", 4712, order=2),
]
SECRETS = {
    "loop_acme": "acme-loop-secret",
    "loop_beta": "beta-loop-secret",
    "loop_solo": "solo-loop-secret",
    "whiplash_default": "shared-account-client-secret",
    "whiplash_solo": "solo-account-client-secret",
}


@pytest.fixture
def merchants_server(store: StateStore) -> Iterator[WebhookServer]:
    keys: dict[str | tuple[str, str], SigningKeys] = {
        ("loop" if conn.startswith("loop") else "whiplash", conn): SigningKeys((secret,))
        for conn, secret in SECRETS.items()
    }
    receiver = WebhookReceiver(
        store=lambda: store,
        secrets=StaticSecrets(keys),
        merchants=lambda: MERCHANTS,
        ignored=lambda: {"typo"},  # an entry of the file left out as invalid
    )
    with serving(create_app(receiver), store) as server:
        yield server


def post_loop(server: WebhookServer, path: str, payload: dict, secret: str) -> requests.Response:
    body = php_json(payload)
    return server.post(path, body, {"X-Loop-Signature": loop_signature(body, secret)})


def post_whiplash(server: WebhookServer, payload: dict, secret: str) -> requests.Response:
    body = json.dumps(payload).encode()
    return server.post("whiplash", body, {"X-WHIPLASH-SIGNATURE": whiplash_signature(body, secret)})


# --------------------------------------------------------------------------- Loop


def test_a_merchants_loop_webhook_is_stored_as_that_merchants_event(
    merchants_server: WebhookServer,
) -> None:
    reply = post_loop(merchants_server, "loop/acme", label_payload("1001"), SECRETS["loop_acme"])
    assert reply.status_code == 200, reply.text
    assert reply.json()["merchant"] == "acme"
    [row] = inbox_rows(merchants_server.store)
    assert (row["merchant"], row["source"], row["resource_id"]) == ("acme", "loop", "1001")
    # the merchant's own runs see it; another merchant's runs do not
    store = merchants_server.store
    assert claim("loop", "beta-run", store.for_merchant("beta")).resource_ids == []
    assert claim("loop", "acme-run", store.for_merchant("acme")).resource_ids == ["1001"]


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        ("loop/acme", "loop_beta"),  # beta's secret does not open acme's endpoint
        ("loop/beta", "loop_acme"),  # nor the other way round
        ("loop/solo", "loop_acme"),
    ],
)
def test_one_merchants_secret_does_not_open_another_merchants_endpoint(
    merchants_server: WebhookServer, path: str, secret: str
) -> None:
    reply = post_loop(merchants_server, path, label_payload("1002"), SECRETS[secret])
    assert reply.status_code == 401
    assert "X-Loop-Signature" in reply.json()["detail"]
    assert inbox_rows(merchants_server.store) == []


def test_an_unknown_merchant_is_a_404_that_stores_nothing(
    merchants_server: WebhookServer,
) -> None:
    reply = post_loop(merchants_server, "loop/gone", label_payload("1003"), SECRETS["loop_acme"])
    assert reply.status_code == 404
    assert reply.json()["detail"] == ("unknown merchant 'gone': no such id in the merchants file")
    assert inbox_rows(merchants_server.store) == []


def test_a_merchant_whose_entry_is_invalid_is_a_503_so_the_vendor_retries(
    merchants_server: WebhookServer,
) -> None:
    reply = post_loop(merchants_server, "loop/typo", label_payload("1007"), SECRETS["loop_acme"])
    assert reply.status_code == 503
    assert inbox_rows(merchants_server.store) == []


def test_the_bare_loop_endpoint_is_the_default_merchant_and_404_when_there_is_none(
    merchants_server: WebhookServer,
) -> None:
    reply = post_loop(merchants_server, "loop", label_payload("1004"), SECRETS["loop_acme"])
    assert reply.status_code == 404
    assert "/returns-sync/webhooks/loop/<merchant id>" in reply.json()["detail"]
    assert inbox_rows(merchants_server.store) == []


def test_the_same_label_event_from_two_shops_is_one_event_each(
    merchants_server: WebhookServer,
) -> None:
    payload = label_payload("1005")  # Loop return ids are per shop: two shops may repeat one
    for merchant in ("acme", "beta"):
        reply = post_loop(
            merchants_server, f"loop/{merchant}", payload, SECRETS[f"loop_{merchant}"]
        )
        assert reply.json()["status"] == "accepted"
    rows = inbox_rows(merchants_server.store)
    assert sorted(row["merchant"] for row in rows) == ["acme", "beta"]


def test_an_unreadable_merchants_file_is_a_503_the_vendor_retries(store: StateStore) -> None:
    def broken() -> list[Shop]:
        raise MerchantsUnavailable("merchants.yaml: not valid YAML")

    receiver = WebhookReceiver(store=lambda: store, secrets=StaticSecrets({}), merchants=broken)
    with serving(create_app(receiver), store) as server:
        reply = post_loop(server, "loop/acme", label_payload("1006"), SECRETS["loop_acme"])
    assert reply.status_code == 503
    assert inbox_rows(store) == []


# --------------------------------------------------------------------------- Whiplash routing


def record_rma(store: StateStore, merchant: str, loop_return_id: str, whiplash_id: int) -> None:
    scoped = store.for_merchant(merchant)
    scoped.claim_for_creation(loop_return_id, token="t", source="poll")
    scoped.record_created(loop_return_id, whiplash_id, adopted=False, token="t")


@pytest.mark.parametrize(
    ("rma_of", "customer_id", "signed_by", "expected", "why"),
    [
        ("beta", None, "whiplash_default", "beta", "rma"),
        ("beta", 4711, "whiplash_default", "beta", "rma"),  # the RMA's owner beats the customer
        (None, 4712, "whiplash_default", "beta", "customer"),
        (None, 4711, "whiplash_default", "acme", "customer"),
        (None, None, "whiplash_default", "acme", "first"),  # nobody's: the account's first
        (None, 999, "whiplash_default", "acme", "first"),  # a customer we do not serve
        (None, None, "whiplash_solo", "solo", "first"),
        (None, 4712, "whiplash_solo", "solo", "first"),  # beta is not in solo's account
        ("beta", None, "whiplash_solo", "solo", "first"),  # nor is beta's RMA
    ],
)
def test_a_whiplash_event_goes_to_the_merchant_whose_return_it_is(
    merchants_server: WebhookServer,
    rma_of: str | None,
    customer_id: int | None,
    signed_by: str,
    expected: str,
    why: str,
) -> None:
    if rma_of is not None:
        record_rma(merchants_server.store, rma_of, "2001", 180001)
    extra = {} if customer_id is None else {"customer_id": customer_id}
    reply = post_whiplash(
        merchants_server, consumer_return_payload(id=180001, **extra), SECRETS[signed_by]
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["merchant"] == expected
    [row] = inbox_rows(merchants_server.store)
    assert (row["merchant"], row["source"], row["resource_id"]) == (expected, "whiplash", "180001")


def test_a_return_that_belongs_to_nobody_is_reconciled_by_one_merchant_only(
    merchants_server: WebhookServer,
) -> None:
    post_whiplash(merchants_server, consumer_return_payload(id=180777), SECRETS["whiplash_default"])
    store = merchants_server.store
    stale = timedelta(minutes=10)
    taken = {
        m.id: store.for_merchant(m.id).inbox_claim("whiplash", 10, f"{m.id}-run", stale)
        for m in MERCHANTS
    }
    assert {m: [e.resource_id for e in events] for m, events in taken.items()} == {
        "acme": ["180777"],
        "solo": [],
        "beta": [],
    }


def test_a_whiplash_event_signed_by_no_configured_account_is_refused(
    merchants_server: WebhookServer,
) -> None:
    reply = post_whiplash(merchants_server, consumer_return_payload(), "somebody-elses-secret")
    assert reply.status_code == 401
    assert inbox_rows(merchants_server.store) == []


def test_the_merchants_file_feeds_the_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.returns_sync.webhooks.routing import configured_merchants, ignored_merchant_ids

    path = tmp_path / "merchants.yaml"
    path.write_text(
        "merchants:\n"
        "  - id: acme\n    whiplash_customer_id: 4711\n"
        "  - id: typo\n    whiplash_customer_id: 4712\n    warehouse: 3\n"
    )
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    assert [(m.id, m.loop_conn_id) for m in configured_merchants()] == [("acme", "loop_acme")]
    assert ignored_merchant_ids() == {"typo"}
    path.write_text("merchants: [\n")
    with pytest.raises(MerchantsUnavailable, match="not valid YAML"):
        configured_merchants()
