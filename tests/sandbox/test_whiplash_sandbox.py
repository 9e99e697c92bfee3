"""The Whiplash simulator, specified over real HTTP: OAuth, lists and search, consumer returns,
receiving, webhooks and the sandbox-only simulate endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from include.returns_sync.sandbox.chaos import with_chaos
from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.serving import serve_in_thread
from include.returns_sync.sandbox.stats import CallStats
from include.returns_sync.sandbox.whiplash import WhiplashBackend, build_whiplash_app
from tests.sandbox.conftest import WebhookReceiver

NOW = datetime(2026, 3, 13, 15, 39, 21, tzinfo=UTC)
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
SEED_REFRESH = "refresh-seed"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000-0[45]:00$")


@dataclass
class WhiplashApi:
    """A Whiplash simulator on 127.0.0.1 with a bearer token already fetched."""

    url: str
    backend: WhiplashBackend
    clock: SandboxClock
    session: requests.Session
    orders: dict[str, dict[str, Any]]

    def token(self, **form: str) -> requests.Response:
        data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
        return requests.post(f"{self.url}/oauth/token", data=data, timeout=5)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.url}/api/v2{path}", params=params, timeout=5)

    def search(self, path: str, predicates: dict[str, Any], **params: Any) -> list[Any]:
        response = self.get(path, search=json.dumps(predicates), **params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(f"{self.url}/api/v2{path}", json=body, timeout=5)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.session.put(f"{self.url}/api/v2{path}", json=body, timeout=5)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(f"{self.url}/api/v2{path}", timeout=5)

    def create_return(self, **overrides: Any) -> requests.Response:
        return self.post("/consumer_returns", return_body(self, **overrides))


def return_body(api: WhiplashApi, **overrides: Any) -> dict[str, Any]:
    """A valid create payload, as our RMA flow sends it (Loop return 9001, order #1001)."""
    order = api.orders["5550001"]
    tee = order["order_items"][0]["item_id"]
    body: dict[str, Any] = {
        "order_id": order["id"],
        "requires_label": False,
        "reference": "9001",
        "tracking": "1Z999",
        "carrier": "UPS",
        "originator_attributes": {"original_id": "9001", "group_id": "shop-1"},
        "shipnotice_items_attributes": [
            {
                "item_id": tee,
                "quantity": 2,
                "return_action": "refund",
                "description": "Too small",
                "originator_attributes": {"original_id": "li-1", "misc": "li-1,li-2"},
            }
        ],
    }
    body.update(overrides)
    return body


class AppSwitch:
    """An ASGI app that forwards to `current`: one server per module, a fresh backend per test."""

    def __init__(self) -> None:
        self.current: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.current(scope, receive, send)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, AppSwitch]]:
    switch = AppSwitch()
    server = serve_in_thread(switch)
    try:
        yield server.url, switch
    finally:
        server.stop()


@pytest.fixture
def whiplash(served: tuple[str, AppSwitch]) -> Iterator[WhiplashApi]:
    url, switch = served
    clock = SandboxClock(NOW)
    backend = WhiplashBackend(
        clock=clock, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=SEED_REFRESH
    )
    backend.add_item("TEE-1", "Linen Tee", "20.00")
    backend.add_item("HAT-1", "Wool Hat", "15.5")
    backend.add_item("BAG-1", "Canvas Tote", "30")
    orders = {
        "5550001": backend.add_order("5550001", "#1001", [("TEE-1", 2), ("HAT-1", 1)]),
        "5550002": backend.add_order("5550002", "#1002", [("BAG-1", 1)]),
    }
    switch.current = build_whiplash_app(backend)
    session = requests.Session()
    api = WhiplashApi(url, backend, clock, session, orders)
    token = api.token(grant_type="client_credentials").json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        yield api
    finally:
        session.close()
        backend.close()


# --------------------------------------------------------------------------- OAuth


def test_client_credentials_grant_issues_a_bearer_token_without_refresh_token(
    whiplash: WhiplashApi,
) -> None:
    answer = whiplash.token(grant_type="client_credentials")

    assert answer.status_code == 200
    token = answer.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 7200
    assert token["created_at"] == int(NOW.timestamp())
    assert "refresh_token" not in token
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{whiplash.url}/api/v2/items", headers=headers, timeout=5).ok


def test_refresh_grant_rotates_the_refresh_token_and_spends_the_old_one(
    whiplash: WhiplashApi,
) -> None:
    first = requests.post(
        f"{whiplash.url}/oauth/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": SEED_REFRESH,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=5,
    )
    assert first.status_code == 200, first.text
    rotated = first.json()["refresh_token"]
    assert rotated != SEED_REFRESH
    assert whiplash.backend.current_refresh_token == rotated

    reused = whiplash.token(grant_type="refresh_token", refresh_token=SEED_REFRESH)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    second = whiplash.token(grant_type="refresh_token", refresh_token=rotated)
    assert second.status_code == 200
    old_access = {"Authorization": f"Bearer {first.json()['access_token']}"}
    new_access = {"Authorization": f"Bearer {second.json()['access_token']}"}
    assert (
        requests.get(f"{whiplash.url}/api/v2/items", headers=old_access, timeout=5).status_code
        == 401
    )
    assert requests.get(f"{whiplash.url}/api/v2/items", headers=new_access, timeout=5).ok


def test_access_token_expires_after_its_ttl_on_the_sandbox_clock(whiplash: WhiplashApi) -> None:
    whiplash.clock.advance(timedelta(seconds=7199))
    assert whiplash.get("/items").status_code == 200

    whiplash.clock.advance(timedelta(seconds=1))
    expired = whiplash.get("/items")

    assert expired.status_code == 401
    assert expired.json() == {"message": "The access token expired"}
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]


@pytest.mark.parametrize("grant", ["client_credentials", "refresh_token"])
def test_wrong_client_secret_is_invalid_client(whiplash: WhiplashApi, grant: str) -> None:
    answer = requests.post(
        f"{whiplash.url}/oauth/token",
        data={
            "grant_type": grant,
            "refresh_token": SEED_REFRESH,
            "client_id": CLIENT_ID,
            "client_secret": "nope",
        },
        timeout=5,
    )

    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert whiplash.backend.current_refresh_token == SEED_REFRESH


def test_token_endpoint_accepts_http_basic_client_authentication(whiplash: WhiplashApi) -> None:
    answer = requests.post(
        f"{whiplash.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert answer.status_code == 200


def test_unsupported_or_missing_grant_type_is_a_400(whiplash: WhiplashApi) -> None:
    assert whiplash.token(grant_type="password").json()["error"] == "unsupported_grant_type"
    assert whiplash.token().json()["error"] == "invalid_request"


def test_missing_unknown_and_revoked_tokens_are_401_with_a_message(whiplash: WhiplashApi) -> None:
    url = f"{whiplash.url}/api/v2/consumer_returns"
    missing = requests.get(url, timeout=5)
    unknown = requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=5)
    whiplash.backend.revoke_all_tokens()
    revoked = whiplash.get("/consumer_returns")

    assert [r.status_code for r in (missing, unknown, revoked)] == [401, 401, 401]
    assert missing.json()["message"] == "The access token is missing"
    assert unknown.json()["message"] == "The access token is invalid"
    assert revoked.json()["message"] == "The access token was revoked"


def test_customer_and_shop_scoping_headers_are_recorded(whiplash: WhiplashApi) -> None:
    whiplash.session.get(
        f"{whiplash.url}/api/v2/items",
        headers={"X-Customer-ID": "200", "X-Shop-ID": "7"},
        timeout=5,
    )
    assert (whiplash.backend.last_customer_id, whiplash.backend.last_shop_id) == ("200", "7")


# --------------------------------------------------------------------------- lists and search


def test_lists_are_bare_arrays_paged_by_page_and_per_page(whiplash: WhiplashApi) -> None:
    for index in range(4):
        whiplash.backend.add_item(f"SOCK-{index}", f"Sock {index}")

    pages = [whiplash.get("/items", page=n, per_page=3).json() for n in (1, 2, 3, 4)]

    assert [len(page) for page in pages] == [3, 3, 1, 0]
    ids = [item["id"] for page in pages for item in page]
    assert ids == sorted(ids) and len(set(ids)) == 7
    assert whiplash.get("/items/count").json() == {"count": 7}


def test_per_page_defaults_to_50_and_is_capped_at_250(whiplash: WhiplashApi) -> None:
    for index in range(257):
        whiplash.backend.add_item(f"BULK-{index:03d}")

    assert len(whiplash.get("/items").json()) == 50
    assert len(whiplash.get("/items", per_page=1000).json()) == 250


def test_lenient_lists_announce_their_page_size_in_per_page(whiplash: WhiplashApi) -> None:
    assert whiplash.get("/items", per_page=1000).headers["Per-Page"] == "250"


def test_strict_lists_cap_per_page_at_50_silently(whiplash: WhiplashApi) -> None:
    whiplash.backend.strict = True
    for index in range(117):
        whiplash.backend.add_item(f"BULK-{index:03d}")

    answers = [whiplash.get("/items", per_page=100, page=n) for n in (1, 2, 3, 4)]

    assert [len(answer.json()) for answer in answers] == [50, 50, 20, 0]
    for answer in answers:
        assert not {"per-page", "x-per-page", "total", "x-total", "link"} & {
            name.lower() for name in answer.headers
        }
    ids = [item["id"] for answer in answers for item in answer.json()]
    assert len(set(ids)) == 120
    assert len(whiplash.get("/items", per_page=10).json()) == 10


def test_ignored_predicates_filter_nothing_in_lists_and_counts(whiplash: WhiplashApi) -> None:
    first = whiplash.get("/items").json()[0]["id"]
    assert len(whiplash.search("/items", {"id_gt": first})) == 2

    whiplash.backend.ignored_predicates = {"id_gt"}

    assert len(whiplash.search("/items", {"id_gt": first})) == 3
    count = whiplash.get("/items/count", search=json.dumps({"id_gt": first})).json()
    assert count == {"count": 3}
    assert whiplash.search("/items", {"id_gt": first, "sku_eq": "HAT-1"})[0]["sku"] == "HAT-1"


@pytest.mark.parametrize("params", [{"page": "zero"}, {"per_page": "0"}, {"page": "-1"}])
def test_a_bad_page_parameter_is_a_400_naming_it(
    whiplash: WhiplashApi, params: dict[str, str]
) -> None:
    answer = whiplash.get("/items", **params)
    assert answer.status_code == 400
    assert next(iter(params)) in answer.json()["message"]


def test_page_total_and_page_links_add_headers(whiplash: WhiplashApi) -> None:
    answer = whiplash.get("/items", per_page=2, page=1, page_total="true", page_links="true")
    assert answer.headers["Total"] == "3"
    assert 'rel="next"' in answer.headers["Link"] and "page=2" in answer.headers["Link"]


def test_fields_keeps_only_the_named_attributes(whiplash: WhiplashApi) -> None:
    rows = whiplash.get("/items", fields="id,sku").json()
    assert [set(row) for row in rows] == [{"id", "sku"}] * 3


def test_search_in_and_eq_predicates_filter_items_by_sku(whiplash: WhiplashApi) -> None:
    skus = lambda rows: sorted(row["sku"] for row in rows)  # noqa: E731
    assert skus(whiplash.search("/items", {"sku_in": ["TEE-1", "BAG-1", "NOPE"]})) == [
        "BAG-1",
        "TEE-1",
    ]
    assert skus(whiplash.search("/items", {"sku_eq": "HAT-1"})) == ["HAT-1"]
    assert skus(whiplash.search("/items", {"sku_eq": "hat-1"})) == []
    assert skus(whiplash.search("/items", {"sku_not_in": ["TEE-1"]})) == ["BAG-1", "HAT-1"]
    assert skus(whiplash.search("/items", {"sku_not_eq": "TEE-1"})) == ["BAG-1", "HAT-1"]
    assert skus(whiplash.search("/items", {"title_cont": "WOOL"})) == ["HAT-1"]
    assert skus(whiplash.search("/items", {"sku_start": "ba"})) == ["BAG-1"]


def test_search_m_or_combines_predicates_on_nested_associations(whiplash: WhiplashApi) -> None:
    either = {"originator_original_id_eq": "5550002", "order_orig_eq": "#1001", "m": "or"}
    both = {"originator_original_id_eq": "5550002", "order_orig_eq": "#1001"}

    assert sorted(o["order_orig"] for o in whiplash.search("/orders", either)) == ["#1001", "#1002"]
    assert whiplash.search("/orders", both) == []
    by_sku = whiplash.search("/orders", {"order_items_sku_eq": "BAG-1"})
    assert [o["order_orig"] for o in by_sku] == ["#1002"]


def test_unknown_predicates_and_blank_values_filter_nothing(whiplash: WhiplashApi) -> None:
    everything = whiplash.search("/orders", {})

    assert whiplash.search("/orders", {"originator_shopify_id_eq": "5550001"}) == everything
    assert whiplash.search("/orders", {"order_orig_matches_regex": "x"}) == everything
    assert whiplash.search("/orders", {"order_orig_in": []}) == everything
    assert len(everything) == 2


@pytest.mark.parametrize("search", ['{"sku_eq": ', '["sku_eq"]', "sku_eq=TEE-1"])
def test_malformed_search_is_a_400_with_a_message(whiplash: WhiplashApi, search: str) -> None:
    answer = whiplash.get("/items", search=search)
    assert answer.status_code == 400
    assert "search" in answer.json()["message"]


def test_sort_orders_by_the_given_attributes(whiplash: WhiplashApi) -> None:
    desc = [item["id"] for item in whiplash.get("/items", sort="id desc").json()]
    by_sku = [item["sku"] for item in whiplash.get("/items", sort="sku asc").json()]

    assert desc == sorted(desc, reverse=True)
    assert by_sku == ["BAG-1", "HAT-1", "TEE-1"]


def test_orders_carry_their_shopify_originator_and_items(whiplash: WhiplashApi) -> None:
    (order,) = whiplash.search("/orders", {"originator_original_id_in": ["5550001"]})

    assert order["originator"]["provider"] == "shopify"
    assert order["originator"]["original_id"] == "5550001"
    assert [(i["sku"], i["quantity"]) for i in order["order_items"]] == [("TEE-1", 2), ("HAT-1", 1)]
    assert whiplash.get(f"/orders/{order['id']}").json() == order


def test_unknown_ids_are_404_and_malformed_ids_400(whiplash: WhiplashApi) -> None:
    assert whiplash.get("/items/1").status_code == 404
    assert whiplash.get("/consumer_returns/424242").json()["message"].startswith("Couldn't find")
    assert whiplash.get("/consumer_returns/abc").status_code == 400


# --------------------------------------------------------------------------- consumer returns


def test_create_answers_201_with_the_consumer_return_entity(whiplash: WhiplashApi) -> None:
    answer = whiplash.create_return()

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert isinstance(created["id"], int)
    assert (created["status"], created["status_name"]) == (100, "In Transit")
    assert created["reference"] == "9001" and created["tracking"] == "1Z999"
    assert created["arrived_at"] is None and created["completed_at"] is None
    assert TIMESTAMP.match(created["created_at"]) and created["created_at"].endswith("-04:00")
    assert created["originator"]["original_id"] == "9001"
    assert created["originator"]["originated_type"] == "Shipnotice"
    assert created["originator"]["provider"] == "api"
    (line,) = created["return_items"]
    assert (line["sku"], line["quantity"], line["quantity_good"], line["quantity_damaged"]) == (
        "TEE-1",
        2,
        0,
        0,
    )
    assert line["order_item_id"] == created["order"]["order_items"][0]["id"]
    assert created["order"]["order_orig"] == "#1001"
    assert whiplash.backend.item_originators(created["id"])[0]["misc"] == "li-1,li-2"
    assert whiplash.get(f"/consumer_returns/{created['id']}").json() == created


def test_a_second_create_with_the_same_originator_id_is_a_409(whiplash: WhiplashApi) -> None:
    assert whiplash.create_return().status_code == 201

    again = whiplash.create_return(reference="another")

    assert again.status_code == 409
    assert "9001" in again.json()["message"]
    assert whiplash.backend.creates_count("9001") == 1
    found = whiplash.search("/consumer_returns", {"originator_original_id_eq": "9001"})
    assert len(found) == 1
    assert whiplash.get("/consumer_returns/count", search='{"reference_in": ["9001"]}').json() == {
        "count": 1
    }


def _without(key: str) -> dict[str, Any]:
    line = {"item_id": 1001, "quantity": 1, "return_action": "refund", "description": "x"}
    line.pop(key)
    return line


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"requires_label": None}, "requires_label"),
        ({"shipnotice_items_attributes": None}, "shipnotice_items_attributes"),
        ({"shipnotice_items_attributes": []}, "shipnotice_items_attributes"),
        ({"order_id": 99}, "order_id"),
        ({"shipnotice_items_attributes": [_without("item_id")]}, "[0][item_id]"),
        ({"shipnotice_items_attributes": [_without("return_action")]}, "[0][return_action]"),
        ({"shipnotice_items_attributes": [_without("description")]}, "[0][description]"),
        (
            {
                "shipnotice_items_attributes": [
                    {"item_id": 1001, "quantity": 0, "return_action": "refund", "description": "x"}
                ]
            },
            "[0][quantity]",
        ),
        (
            {
                "shipnotice_items_attributes": [
                    {"item_id": 77, "quantity": 1, "return_action": "refund", "description": "x"}
                ]
            },
            "[0][item_id]",
        ),
    ],
)
def test_invalid_creates_are_422_naming_the_field(
    whiplash: WhiplashApi, overrides: dict[str, Any], named: str
) -> None:
    body = return_body(whiplash, **overrides)
    body = {key: value for key, value in body.items() if value is not None}

    answer = whiplash.post("/consumer_returns", body)

    assert answer.status_code == 422
    assert named in answer.json()["message"]
    assert whiplash.backend.consumer_returns() == []


def test_a_malformed_json_body_is_a_400(whiplash: WhiplashApi) -> None:
    answer = whiplash.session.post(
        f"{whiplash.url}/api/v2/consumer_returns",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert "JSON" in answer.json()["message"]


def test_update_changes_only_updatable_fields_and_bumps_updated_at(whiplash: WhiplashApi) -> None:
    created = whiplash.create_return().json()
    whiplash.clock.advance(timedelta(minutes=5))

    updated = whiplash.put(
        f"/consumer_returns/{created['id']}", {"tracking": "1ZNEW", "status": 300}
    ).json()

    assert updated["tracking"] == "1ZNEW"
    assert updated["status"] == 100
    assert updated["updated_at"] > created["updated_at"]


def test_delete_removes_an_in_transit_return_but_not_an_arrived_one(whiplash: WhiplashApi) -> None:
    first = whiplash.create_return().json()
    second = whiplash.create_return(originator_attributes={"original_id": "9002"}).json()
    whiplash.backend.receive(second["id"], [("TEE-1", 2, 0)])

    assert whiplash.delete(f"/consumer_returns/{first['id']}").status_code == 204
    assert whiplash.get(f"/consumer_returns/{first['id']}").status_code == 404
    assert whiplash.delete(f"/consumer_returns/{second['id']}").status_code == 422


def test_updated_at_search_finds_returns_changed_since_a_watermark(whiplash: WhiplashApi) -> None:
    first = whiplash.create_return().json()
    second = whiplash.create_return(originator_attributes={"original_id": "9002"}).json()
    watermark = first["updated_at"]
    whiplash.clock.advance(timedelta(hours=1))
    whiplash.backend.receive(second["id"], [("TEE-1", 2, 0)])

    changed = whiplash.search(
        "/consumer_returns", {"updated_at_gt": watermark, "status_in": [300]}, sort="updated_at asc"
    )
    utc_watermark = (NOW + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert [r["id"] for r in changed] == [second["id"]]
    assert len(whiplash.search("/consumer_returns", {"updated_at_gteq": watermark})) == 2
    assert len(whiplash.search("/consumer_returns", {"updated_at_lt": watermark})) == 0
    assert [
        r["id"] for r in whiplash.search("/consumer_returns", {"updated_at_gt": utc_watermark})
    ] == [second["id"]]


def test_originators_need_an_originated_type_and_file_returns_under_shipnotice(
    whiplash: WhiplashApi,
) -> None:
    created = whiplash.create_return().json()

    missing = whiplash.get("/originators", search='{"original_id_eq": "9001"}')
    found = whiplash.get(
        "/originators", originated_type="Shipnotice", search='{"original_id_eq": "9001"}'
    ).json()
    as_subclass = whiplash.get(
        "/originators", originated_type="ConsumerReturn", search='{"original_id_eq": "9001"}'
    ).json()

    assert missing.status_code == 400 and "originated_type" in missing.json()["message"]
    assert [o["originated_id"] for o in found] == [created["id"]]
    assert as_subclass == []


# --------------------------------------------------------------------------- receiving


def test_receive_records_good_damaged_and_unexpected_units(whiplash: WhiplashApi) -> None:
    created = whiplash.create_return().json()
    whiplash.clock.advance(timedelta(minutes=30))

    received = whiplash.backend.receive(created["id"], [("TEE-1", 1, 1), ("BAG-1", 1, 0)])

    lines = {line["sku"]: line for line in received["return_items"]}
    assert (lines["TEE-1"]["quantity"], lines["TEE-1"]["quantity_good"]) == (2, 1)
    assert lines["TEE-1"]["quantity_damaged"] == 1
    assert (lines["BAG-1"]["quantity"], lines["BAG-1"]["quantity_good"]) == (0, 1)
    assert (received["status"], received["status_name"]) == (300, "Completed")
    assert received["arrived_at"] == received["completed_at"] == received["updated_at"]
    assert received["updated_at"] > created["updated_at"]
    assert whiplash.get(f"/consumer_returns/{created['id']}").json() == received


def test_receive_can_leave_a_return_in_another_status(whiplash: WhiplashApi) -> None:
    created = whiplash.create_return().json()

    problem = whiplash.backend.receive(created["id"], [("TEE-1", 2, 0)], status=250)

    assert (problem["status"], problem["status_name"]) == (250, "Problem")
    assert problem["completed_at"] is None
    with pytest.raises(ValueError, match="status 42"):
        whiplash.backend.receive(created["id"], [], status=42)
    with pytest.raises(ValueError, match="GHOST"):
        whiplash.backend.receive(created["id"], [("GHOST", 1, 0)])


# --------------------------------------------------------------------------- webhooks


def _subscribe(whiplash: WhiplashApi, event_name: str, endpoint: str, **extra: Any) -> dict:
    events = {e["name"]: e["id"] for e in whiplash.get("/notification_events").json()}
    body = {
        "notification_event_id": events[event_name],
        "notification_type": "webhook",
        "endpoint": endpoint,
        "active": True,
        "version": 2,
        **extra,
    }
    answer = whiplash.post("/notification_subscriptions", body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_notification_events_list_the_consumer_return_events(whiplash: WhiplashApi) -> None:
    names = {e["name"] for e in whiplash.get("/notification_events").json()}
    assert {
        "consumer_return.created",
        "consumer_return.status_changed",
        "consumer_return.completed",
    } <= names


def test_status_webhooks_are_signed_with_the_client_secret(
    whiplash: WhiplashApi, webhook_receiver: WebhookReceiver
) -> None:
    for event in ("created", "status_changed", "completed"):
        _subscribe(whiplash, f"consumer_return.{event}", webhook_receiver.url)
    _subscribe(whiplash, "consumer_return.deleted", webhook_receiver.url, active=False)

    created = whiplash.create_return().json()
    whiplash.backend.receive(created["id"], [("TEE-1", 2, 0)])
    deliveries = webhook_receiver.wait_for(3)

    assert whiplash.backend.wait_for_webhooks()
    assert len(deliveries) == 3
    payloads = [json.loads(d.body) for d in deliveries]
    assert [p["event_name"] for p in payloads] == [
        "consumer_return.created",
        "consumer_return.status_changed",
        "consumer_return.completed",
    ]
    assert payloads[-1]["consumer_return"] == whiplash.backend.get_consumer_return(created["id"])
    for delivery in deliveries:
        expected = hmac.new(CLIENT_SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["X-WHIPLASH-SIGNATURE"] == expected


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _activity(whiplash: WhiplashApi) -> None:
    """A return created and received, an item and an order added."""
    created = whiplash.create_return().json()
    whiplash.backend.receive(created["id"], [("TEE-1", 2, 0)])
    whiplash.backend.add_item("SCARF-1", "Scarf")
    whiplash.backend.add_order("5550003", "#1003", [("SCARF-1", 1)])


def test_lenient_delivers_only_the_subscribed_event(
    whiplash: WhiplashApi, webhook_receiver: WebhookReceiver
) -> None:
    _subscribe(whiplash, "consumer_return.completed", webhook_receiver.url)
    _activity(whiplash)
    assert whiplash.backend.wait_for_webhooks()
    names = [json.loads(d.body)["event_name"] for d in webhook_receiver.wait_for(1)]
    assert names == ["consumer_return.completed"]


def test_strict_delivers_events_we_do_not_handle_to_every_webhook_endpoint(
    whiplash: WhiplashApi, webhook_receiver: WebhookReceiver
) -> None:
    whiplash.backend.strict = True
    _subscribe(whiplash, "consumer_return.completed", webhook_receiver.url)
    _subscribe(whiplash, "consumer_return.status_changed", webhook_receiver.url)

    _activity(whiplash)
    assert whiplash.backend.wait_for_webhooks()
    deliveries = webhook_receiver.wait_for(6)

    payloads = [json.loads(d.body) for d in deliveries]
    assert [p["event_name"] for p in payloads] == [
        "consumer_return.created",
        "consumer_return.status_changed",
        "shipnotice.status_changed",
        "consumer_return.completed",
        "item.created",
        "order.created",
    ]
    assert payloads[2]["shipnotice"]["id"] == payloads[1]["consumer_return"]["id"]
    assert payloads[4]["item"]["sku"] == "SCARF-1"
    assert payloads[5]["order"]["order_orig"] == "#1003"
    for delivery in deliveries:  # version 2 subscriptions: the client secret
        assert delivery.headers["X-WHIPLASH-SIGNATURE"] == _sign(CLIENT_SECRET, delivery.body)


def test_strict_signs_version_1_webhooks_with_the_api_key_and_version_2_with_the_client_secret(
    whiplash: WhiplashApi, webhook_receiver: WebhookReceiver
) -> None:
    whiplash.backend.strict = True
    _subscribe(whiplash, "consumer_return.completed", f"{webhook_receiver.url}/v1", version=1)
    _subscribe(whiplash, "consumer_return.completed", f"{webhook_receiver.url}/v2", version=2)

    whiplash.backend.add_item("SCARF-1", "Scarf")
    assert whiplash.backend.wait_for_webhooks()
    deliveries = {d.path.rsplit("/", 1)[-1]: d for d in webhook_receiver.wait_for(2)}

    assert set(deliveries) == {"v1", "v2"}
    v1, v2 = deliveries["v1"], deliveries["v2"]
    assert v1.headers["X-WHIPLASH-SIGNATURE"] == _sign(whiplash.backend.api_key, v1.body)
    assert v2.headers["X-WHIPLASH-SIGNATURE"] == _sign(CLIENT_SECRET, v2.body)
    assert whiplash.backend.api_key != CLIENT_SECRET


def test_subscriptions_can_be_read_updated_tested_and_deleted(
    whiplash: WhiplashApi, webhook_receiver: WebhookReceiver
) -> None:
    subscription = _subscribe(whiplash, "consumer_return.completed", webhook_receiver.url)
    path = f"/notification_subscriptions/{subscription['id']}"

    paused = whiplash.put(path, {"active": False}).json()
    tested = whiplash.get(f"{path}/test")
    (delivery,) = webhook_receiver.wait_for(1)

    assert paused["active"] is False and whiplash.get(path).json() == paused
    assert tested.status_code == 200
    assert json.loads(delivery.body)["event_name"] == "consumer_return.completed"
    assert whiplash.delete(path).status_code == 204
    assert whiplash.get(path).status_code == 404
    assert whiplash.get("/notification_subscriptions/count").json() == {"count": 0}


def test_a_subscription_to_an_unknown_event_or_without_endpoint_is_422(
    whiplash: WhiplashApi,
) -> None:
    unknown = whiplash.post(
        "/notification_subscriptions",
        {"notification_event_id": 999, "notification_type": "webhook", "endpoint": "http://x"},
    )
    no_endpoint = whiplash.post(
        "/notification_subscriptions", {"notification_event_id": 1, "notification_type": "webhook"}
    )
    assert unknown.status_code == 422 and "notification_event_id" in unknown.json()["message"]
    assert no_endpoint.status_code == 422 and "endpoint" in no_endpoint.json()["message"]


# --------------------------------------------------------------------------- simulate + chaos


def test_simulate_processing_moves_a_return_to_processing_then_completed(
    whiplash: WhiplashApi,
) -> None:
    created = whiplash.create_return().json()
    path = f"/simulate/consumer_returns/{created['id']}/processing"

    processing = whiplash.put(path, {"finalize": False}).json()
    completed = whiplash.put(path, {"finalize": True}).json()
    again = whiplash.put(path, {"finalize": True})

    assert (processing["status"], processing["status_name"]) == (200, "Processing")
    assert processing["arrived_at"] is not None
    assert (completed["status"], completed["status_name"]) == (300, "Completed")
    (line,) = completed["return_items"]
    assert (line["quantity_good"], line["quantity_damaged"]) == (2, 0)
    assert again.status_code == 422


def test_the_app_mounts_behind_the_chaos_gate_with_the_whiplash_rate_limit() -> None:
    backend = WhiplashBackend()
    stats = CallStats()
    gate = with_chaos(
        build_whiplash_app(backend),
        vendor="whiplash",
        rate_limit=RateLimit.whiplash(enabled=True),
        stats=stats,
    )
    server = serve_in_thread(gate)
    try:
        token = requests.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "sandbox-refresh-0",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
            timeout=5,
        ).json()["access_token"]
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            statuses = [
                session.get(f"{server.url}/api/v2/consumer_returns/123", timeout=5).status_code
                for _ in range(12)
            ]
    finally:
        server.stop()
        backend.close()

    assert statuses[:9] == [404] * 9 and 429 in statuses
    assert stats.snapshot()["requests"]["GET /api/v2/consumer_returns/{id}"] == 12
    assert [call.status for call in backend.call_log].count(404) == statuses.count(404)
