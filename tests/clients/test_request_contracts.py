"""Every request the hooks send in a representative session validates against the vendor contracts.

The contracts are read from ../shared/contracts (never copied), patched for their documented
errata (Whiplash `examples: null`; Loop ASN `from`/`to` declared as dates but used as
date-times), and checked with openapi-core. The OAuth token request is in neither contract and
is checked by hand. OpenAPI cannot forbid unknown query parameters, so passing here means "no
declared rule broken", not "the vendor understands every parameter".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

from include.returns_sync.clients.base import VendorHook
from include.returns_sync.clients.loop import LoopHook
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.sandbox import Sandbox
from tests.clients.conftest import FAST_TIMEOUT, set_connection, zero_wait

LOOP_SERVER = "https://api.loopreturns.com/api/v1"
WHIPLASH_SERVER = "https://www.getwhiplash.com"


def _without_null_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_null_examples(v)
            for k, v in node.items()
            if not (k == "examples" and v is None)
        }
    if isinstance(node, list):
        return [_without_null_examples(item) for item in node]
    return node


def _asn_dates_as_strings(spec: dict[str, Any]) -> dict[str, Any]:
    patched = copy.deepcopy(spec)
    for parameter in patched["paths"]["/warehouse/reporting/asn"]["get"]["parameters"]:
        parameter["schema"].pop("format", None)
    return patched


@pytest.fixture(scope="module")
def contracts(contracts_dir: Path) -> dict[str, OpenAPI]:
    loop = yaml.safe_load((contracts_dir / "loop/returns-api.openapi.yml").read_text())
    webhooks = yaml.safe_load(
        (contracts_dir / "loop/programmatic-webhooks-api.openapi.yml").read_text()
    )
    dispositions = yaml.safe_load(
        (contracts_dir / "loop/assess-dispositions.openapi.yml").read_text()
    )
    whiplash = json.loads((contracts_dir / "whiplash/rydership-v2.openapi.json").read_text())
    return {
        "loop": OpenAPI.from_dict(_asn_dates_as_strings(loop)),
        "loop-webhooks": OpenAPI.from_dict(webhooks),
        "loop-dispositions": OpenAPI.from_dict(dispositions),
        "whiplash": OpenAPI.from_dict(_without_null_examples(whiplash)),
    }


def record_requests(hook: VendorHook) -> list[requests.PreparedRequest]:
    sent: list[requests.PreparedRequest] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.request)

    hook.get_conn().hooks["response"].append(record)
    return sent


def as_vendor_url(request: requests.PreparedRequest, sandbox_base: str, vendor_base: str) -> Any:
    """The same request addressed to the vendor's real server, as the contract names it."""
    vendor_request = request.copy()
    assert vendor_request.url is not None and vendor_request.url.startswith(sandbox_base)
    vendor_request.url = vendor_base + vendor_request.url[len(sandbox_base) :]
    return RequestsOpenAPIRequest(vendor_request)


@pytest.fixture
def session(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Run a representative session through both hooks and hand back what they sent."""
    sandbox.seed_day(40)
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=sandbox.loop_url,
        password=sandbox.loop_api_key,
    )
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=sandbox.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
        extra={"refresh_token": "sandbox-refresh-0"},
    )
    loop = LoopHook(retry_policy=zero_wait(), rate_limit_per_second=0, timeout=FAST_TIMEOUT)
    whiplash = WhiplashHook(
        retry_policy=zero_wait(),
        rate_limit_per_second=0,
        timeout=FAST_TIMEOUT,
        customer_id=1,  # the merchant inside the account, as runtime passes it
    )
    loop_sent, whiplash_sent = record_requests(loop), record_requests(whiplash)

    now = datetime.now(UTC)
    returns = list(
        loop.list_returns(start=now - timedelta(days=2), end=now + timedelta(days=1), page_size=7)
    )
    eligible = [r for r in returns if r.label_status == "pre_transit" and r.line_items]
    first, second = str(eligible[0].id), str(eligible[1].id)
    loop_return = loop.get_return(first)
    loop.get_notes(first)
    loop.asn_report(now - timedelta(days=2), now + timedelta(days=1))

    whiplash.find_consumer_returns_by_loop_ids([str(r.id) for r in returns])
    skus = {line.sku for r in eligible for line in r.line_items if line.sku}
    items = whiplash.find_items_by_sku(skus)
    orders = whiplash.find_orders_by_originator([str(loop_return.provider_order_id)])
    whiplash.find_orders_by_name([str(loop_return.order_name)])
    order = orders[str(loop_return.provider_order_id)]
    rma = whiplash.create_consumer_return(
        {
            "order_id": order.id,
            "requires_label": False,
            "reference": str(loop_return.id),
            "tracking": loop_return.tracking_number,
            "carrier": loop_return.carrier,
            "originator_attributes": {"original_id": str(loop_return.id), "group_id": "shop"},
            "shipnotice_items_attributes": [
                {
                    "item_id": items[str(line.sku)].id,
                    "quantity": 1,
                    "return_action": "refund",
                    "description": line.return_reason or "Returned",
                    "originator_attributes": {"original_id": str(line.line_item_id)},
                }
                for line in loop_return.line_items
            ],
        }
    )
    whiplash.get_consumer_return(rma.id)
    list(whiplash.list_consumer_returns(updated_since=now - timedelta(days=1), statuses=[100]))
    events = whiplash.notification_events()
    whiplash.create_notification_subscription(events[0]["id"], "https://example.com/whiplash")
    whiplash.list_notification_subscriptions()

    loop.create_note(first, "Received as expected")
    loop.get_notes(first)
    loop.process_return(first, {"whiplash_rma": str(rma.id)})
    loop.flag_return(second)
    loop.assess_dispositions(  # 31 units: two calls of at most 30
        [
            {
                "line_item_id": int(line.line_item_id),
                "disposition_outcome": "back_to_stock",
                "note": "returns-sync: received in good condition at the warehouse",
            }
            for line in loop_return.line_items
        ]
        * 31
    )
    webhook = loop.create_webhook("label", "label.updated", "https://example.com/loop")
    loop.update_webhook(
        webhook["id"], topic="label", trigger="label.updated", url="https://example.com/loop2"
    )
    loop.list_webhooks()
    loop.test_connection()

    yield {
        "sandbox": sandbox,
        "loop": loop_sent,
        "whiplash": [r for r in whiplash_sent if not str(r.url).endswith("/oauth/token")],
        "token": [r for r in whiplash_sent if str(r.url).endswith("/oauth/token")],
    }


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")  # the oauth2 alternative scheme
def test_every_loop_request_matches_the_loop_contracts(
    session: dict[str, Any], contracts: dict[str, OpenAPI]
) -> None:
    base = session["sandbox"].loop_url
    paths = set()
    for request in session["loop"]:
        path = urlsplit(request.url).path
        paths.add((request.method, path.split("/api/v1", 1)[1].split("/")[1]))
        if "/webhooks" in path:
            contract = contracts["loop-webhooks"]
        elif "/dispositioning/" in path:
            contract = contracts["loop-dispositions"]
            assert len(json.loads(request.body or b"{}")["items"]) <= 30
        else:
            contract = contracts["loop"]
        contract.validate_request(as_vendor_url(request, base, LOOP_SERVER))
    assert len(session["loop"]) >= 12
    assert sum("/dispositioning/" in str(r.url) for r in session["loop"]) >= 2  # chunked
    assert {
        ("GET", "warehouse"),
        ("POST", "warehouse"),
        ("POST", "webhooks"),
        ("PUT", "webhooks"),
        ("POST", "dispositioning"),
    } <= paths


def test_every_whiplash_api_request_matches_the_rydership_contract(
    session: dict[str, Any], contracts: dict[str, OpenAPI]
) -> None:
    base = session["sandbox"].whiplash_url
    for request in session["whiplash"]:
        contracts["whiplash"].validate_request(as_vendor_url(request, base, WHIPLASH_SERVER))
        assert request.headers["Authorization"].startswith("Bearer ")
        assert request.headers["X-Customer-ID"] == "1"
    methods = {request.method for request in session["whiplash"]}
    assert methods == {"GET", "POST"} and len(session["whiplash"]) >= 10


def test_the_oauth_token_request_is_a_well_formed_refresh_grant(session: dict[str, Any]) -> None:
    """Checked by hand: form body, refresh grant with client_secret_post, no bearer header."""
    (request,) = session["token"]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    form = {key: values[0] for key, values in parse_qs(str(request.body)).items()}
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "sandbox-refresh-0",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
def test_a_request_breaking_the_contract_is_caught(
    session: dict[str, Any], contracts: dict[str, OpenAPI]
) -> None:
    """The yardstick can fail: a note without content and a call without the key are rejected."""
    base = session["sandbox"].loop_url
    note = next(r for r in session["loop"] if str(r.url).endswith("/note")).copy()
    note.prepare_body(data=None, files=None, json={})
    with pytest.raises(Exception, match="content"):
        contracts["loop"].validate_request(as_vendor_url(note, base, LOOP_SERVER))
    anonymous = session["loop"][0].copy()
    del anonymous.headers["X-Authorization"]
    with pytest.raises(Exception, match=r"[Ss]ecurity"):
        contracts["loop"].validate_request(as_vendor_url(anonymous, base, LOOP_SERVER))
