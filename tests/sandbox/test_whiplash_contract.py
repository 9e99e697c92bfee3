"""The Whiplash simulator against the vendor's own OpenAPI file (Rydership V2, via openapi-core).

Every kind of answer the simulator gives, and every request these tests send, is checked
against `../shared/contracts/whiplash/rydership-v2.openapi.json`, with two documented patches:

1. `examples: null` is dropped (the contracts README errata: OpenAPI requires a map there);
2. a few fields the schema declares non-null are made nullable, each because the vendor's own
   response examples in that file carry `null` there (`NULLABLE_ERRATA`; a test below proves
   the evidence is still in the file, so a patch cannot outlive its reason).

`POST /oauth/token` is not in the spec and is checked by hand; 400/404 answers are not
documented for these operations and are checked against the spec's error entity by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from openapi_core.validation.request.exceptions import InvalidRequestBody
from openapi_schema_validator import OAS31Validator

from include.returns_sync.sandbox.serving import serve_in_thread
from include.returns_sync.sandbox.whiplash import WhiplashBackend, build_whiplash_app
from tests.sandbox.conftest import WebhookReceiver

CR = "ApiV2EntitiesConsumerReturn"
RI = "ApiV2EntitiesReturnItem"
IN_TRANSIT = "api.v2.consumer_return.in_transit"
# (schema, property) -> (vendor example, path inside it that shows null)
NULLABLE_ERRATA: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = {
    (CR, "arrived_at"): (IN_TRANSIT, ("arrived_at",)),
    (CR, "exchange_order"): (IN_TRANSIT, ("exchange_order",)),
    # A return without an order renders its nil association as null, as exchange_order does.
    (CR, "order"): (IN_TRANSIT, ("exchange_order",)),
    # ConsumerReturn is a Shipnotice (same table); shipnotices show a null carrier.
    (CR, "carrier"): ("api.v2.shipnotice.in_transit", ("carrier",)),
    (RI, "extended_description"): (IN_TRANSIT, ("return_items", 0, "extended_description")),
    (RI, "order_item_id"): (IN_TRANSIT, ("return_items", 0, "order_item_id")),
    (RI, "return_item_originator_id"): (
        IN_TRANSIT,
        ("return_items", 0, "return_item_originator_id"),
    ),
    (RI, "originator_id"): (IN_TRANSIT, ("return_items", 0, "originator_id")),
}


def _drop_null_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _drop_null_examples(v)
            for k, v in node.items()
            if not (k == "examples" and v is None)
        }
    if isinstance(node, list):
        return [_drop_null_examples(item) for item in node]
    return node


def _make_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [{"$ref": schema["$ref"]}, {"type": "null"}]}
    patched = dict(schema)
    kinds = patched["type"] if isinstance(patched["type"], list) else [patched["type"]]
    patched["type"] = [*kinds, "null"] if "null" not in kinds else kinds
    return patched


@dataclass
class Contract:
    raw: dict[str, Any]
    api: OpenAPI
    patched: dict[str, Any]

    def entity_errors(self, schema_name: str, value: Any) -> list[str]:
        validator = OAS31Validator(
            {
                "$ref": f"#/components/schemas/{schema_name}",
                "components": self.patched["components"],
            }
        )
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(value)
        ]


@pytest.fixture(scope="module")
def contract(contracts_dir: Path) -> Contract:
    """The ~1 MB spec, loaded and patched once per module."""
    return load_contract(contracts_dir)


def load_contract(contracts_dir: Path) -> Contract:
    """The spec with its documented patches (shared with the merchants tests)."""
    raw = json.loads((contracts_dir / "whiplash" / "rydership-v2.openapi.json").read_text())
    patched = _drop_null_examples(deepcopy(raw))
    schemas = patched["components"]["schemas"]
    for schema_name, prop in NULLABLE_ERRATA:
        schemas[schema_name]["properties"][prop] = _make_nullable(
            schemas[schema_name]["properties"][prop]
        )
    return Contract(raw, OpenAPI.from_dict(patched), patched)


@dataclass
class Recorder:
    """A session that remembers every (request, response) it exchanged with the simulator."""

    url: str
    backend: WhiplashBackend
    session: requests.Session = field(default_factory=requests.Session)
    exchanges: list[requests.Response] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session.hooks["response"].append(
            lambda response, *a, **k: self.exchanges.append(response)
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v2{path}", timeout=5, **kwargs)

    def drain(self) -> list[requests.Response]:
        taken, self.exchanges = self.exchanges, []
        return taken


@pytest.fixture
def whiplash() -> Iterator[Recorder]:
    backend = WhiplashBackend()
    backend.add_item("TEE-1", "Linen Tee", "20.00")
    backend.add_item("HAT-1", "Wool Hat", "15.50")
    backend.add_order("5550001", "#1001", [("TEE-1", 2), ("HAT-1", 1)])
    server = serve_in_thread(build_whiplash_app(backend))
    token = requests.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
        timeout=5,
    ).json()["access_token"]
    recorder = Recorder(server.url, backend)
    recorder.session.headers["Authorization"] = f"Bearer {token}"
    try:
        yield recorder
    finally:
        recorder.session.close()
        server.stop()
        backend.close()


def _return_body(original_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": 50001,
        "requires_label": False,
        "reference": original_id,
        "tracking": "1Z999",
        "carrier": "UPS",
        "eta": "2026-03-20T00:00:00Z",
        "originator_attributes": {"original_id": original_id, "group_id": "shop-1"},
        "shipnotice_items_attributes": [
            {
                "item_id": 1001,
                "quantity": 2,
                "return_action": "refund",
                "description": "Too small",
                "originator_attributes": {"original_id": "li-1", "misc": "li-1,li-2"},
            },
            {"item_id": 1002, "quantity": 1, "return_action": "exchange", "description": "Color"},
        ],
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def _assert_conforms(contract: Contract, exchanges: list[requests.Response]) -> None:
    for response in exchanges:
        openapi_request = RequestsOpenAPIRequest(response.request)
        what = f"{response.request.method} {response.request.path_url} -> {response.status_code}"
        try:
            contract.api.validate_request(openapi_request)
            contract.api.validate_response(openapi_request, RequestsOpenAPIResponse(response))
        except OpenAPIError as exc:
            cause = getattr(exc.__cause__, "schema_errors", None) or exc.__cause__ or exc
            pytest.fail(f"{what} does not conform to the spec: {cause}")


# --------------------------------------------------------------------------- the patches


def test_every_nullable_patch_is_backed_by_a_null_in_the_vendors_own_examples(
    contract: Contract,
) -> None:
    examples = contract.raw["components"]["examples"]
    for (schema_name, prop), (example, path) in NULLABLE_ERRATA.items():
        value: Any = examples[example]["value"]
        for step in path:
            value = value[step]
        assert value is None, f"{example} no longer shows null at {path}"
        declared = contract.raw["components"]["schemas"][schema_name]["properties"][prop]
        assert "null" not in json.dumps(declared.get("type", "")), (
            f"{schema_name}.{prop} is nullable now"
        )


# --------------------------------------------------------------------------- conforming answers


def test_every_successful_answer_and_its_request_conform_to_the_spec(
    contract: Contract, whiplash: Recorder, webhook_receiver: WebhookReceiver
) -> None:
    events = whiplash.call("GET", "/notification_events").json()
    completed_event = next(e["id"] for e in events if e["name"] == "consumer_return.completed")
    whiplash.call("GET", f"/notification_events/{completed_event}")
    subscription = whiplash.call(
        "POST",
        "/notification_subscriptions",
        json={
            "notification_event_id": completed_event,
            "notification_type": "webhook",
            "endpoint": webhook_receiver.url,
            "active": True,
            "version": 2,
        },
    ).json()
    sub_path = f"/notification_subscriptions/{subscription['id']}"
    whiplash.call("GET", "/notification_subscriptions", params={"page": 1, "per_page": 10})
    whiplash.call("GET", "/notification_subscriptions/count")
    whiplash.call("GET", sub_path)
    whiplash.call("PUT", sub_path, json={"active": True, "version": 2})
    whiplash.call("GET", f"{sub_path}/test")

    search = json.dumps({"sku_in": ["TEE-1", "HAT-1"]})
    whiplash.call(
        "GET", "/items", params={"search": search, "sort": "sku asc", "page": 1, "per_page": 2}
    )
    whiplash.call("GET", "/items/count", params={"search": search})
    whiplash.call("GET", "/items/1001")
    whiplash.call(
        "GET", "/orders", params={"search": json.dumps({"originator_original_id_eq": "5550001"})}
    )
    whiplash.call("GET", "/orders/count")
    whiplash.call("GET", "/orders/50001")

    created = whiplash.call("POST", "/consumer_returns", json=_return_body("9001")).json()
    bare = whiplash.call(
        "POST",
        "/consumer_returns",
        json=_return_body("9002", order_id=None, carrier=None, eta=None),
    ).json()
    whiplash.call(
        "PUT", f"/consumer_returns/{created['id']}", json={"tracking": "1ZNEW", "total_boxes": 1}
    )
    whiplash.call(
        "PUT", f"/simulate/consumer_returns/{created['id']}/processing", json={"finalize": False}
    )
    whiplash.backend.receive(created["id"], [("TEE-1", 1, 1), ("HAT-1", 0, 0)])
    whiplash.call("GET", f"/consumer_returns/{created['id']}")
    whiplash.call(
        "GET",
        "/consumer_returns",
        params={
            "search": json.dumps({"updated_at_gteq": created["created_at"]}),
            "sort": "updated_at asc",
        },
    )
    whiplash.call(
        "GET", "/consumer_returns/count", params={"search": json.dumps({"reference_eq": "9001"})}
    )
    whiplash.call(
        "GET",
        "/originators",
        params={"originated_type": "Shipnotice", "search": '{"original_id_eq": "9001"}'},
    )
    whiplash.call(
        "PUT", f"/simulate/consumer_returns/{bare['id']}/processing", json={"finalize": True}
    )
    third = whiplash.call("POST", "/consumer_returns", json=_return_body("9003")).json()
    whiplash.call("DELETE", f"/consumer_returns/{third['id']}")
    whiplash.call("DELETE", sub_path)

    exchanges = whiplash.drain()
    assert all(200 <= r.status_code < 300 for r in exchanges), [
        (r.request.path_url, r.status_code, r.text) for r in exchanges if r.status_code >= 300
    ]
    assert {r.status_code for r in exchanges} == {200, 201, 204}
    _assert_conforms(contract, exchanges)


def test_strict_paging_answers_and_their_requests_conform_to_the_spec(
    contract: Contract, whiplash: Recorder
) -> None:
    """Strict: `per_page` capped silently at 50, no page-size header; predicates may be ignored."""
    whiplash.backend.strict = True
    for index in range(60):
        whiplash.backend.add_item(f"BULK-{index:03d}")
    for original_id in ("9001", "9002"):
        whiplash.call("POST", "/consumer_returns", json=_return_body(original_id))
    whiplash.drain()

    pages = [
        whiplash.call("GET", "/items", params={"sort": "id asc", "per_page": 100, "page": n})
        for n in (1, 2, 3)
    ]
    whiplash.backend.ignored_predicates = {"id_gt", "updated_at_gteq"}
    ignored = whiplash.call(
        "GET",
        "/consumer_returns",
        params={
            "search": json.dumps({"updated_at_gteq": "2999-01-01T00:00:00Z", "id_gt": 1}),
            "sort": "updated_at asc,id asc",
            "per_page": 100,
            "page": 1,
        },
    )
    whiplash.call("GET", "/consumer_returns/count", params={"search": json.dumps({"id_gt": 10**9})})

    exchanges = whiplash.drain()
    assert [len(page.json()) for page in pages] == [50, 12, 0]
    assert all("Per-Page" not in page.headers for page in pages)
    assert len(ignored.json()) == 2 and exchanges[-1].json() == {"count": 2}
    assert {r.status_code for r in exchanges} == {200}
    _assert_conforms(contract, exchanges)


def test_documented_error_answers_conform_to_the_spec(
    contract: Contract, whiplash: Recorder
) -> None:
    whiplash.call("POST", "/consumer_returns", json=_return_body("9001"))
    whiplash.call("POST", "/consumer_returns", json=_return_body("9001"))  # 409
    unknown_item = _return_body("9004")
    unknown_item["shipnotice_items_attributes"][0]["item_id"] = 777
    whiplash.call("POST", "/consumer_returns", json=unknown_item)  # 422
    whiplash.call("POST", "/notification_subscriptions", json={"notification_event_id": 999})  # 422
    whiplash.session.headers["Authorization"] = "Bearer expired-or-forged"
    for path in ("/consumer_returns", "/items", "/orders", "/notification_events"):
        whiplash.call("GET", path)  # 401

    exchanges = whiplash.drain()

    assert [r.status_code for r in exchanges] == [201, 409, 422, 422, 401, 401, 401, 401]
    _assert_conforms(contract, exchanges)


@pytest.mark.parametrize(
    "broken",
    [
        {"requires_label": None},
        {"shipnotice_items_attributes": None},
        {
            "shipnotice_items_attributes": [
                {"item_id": 1001, "quantity": 1, "return_action": "refund"}
            ]
        },
        {"shipnotice_items_attributes": [{"item_id": 1001, "quantity": 1, "description": "x"}]},
    ],
)
def test_a_create_the_spec_rejects_is_refused_by_the_simulator_with_422(
    contract: Contract, whiplash: Recorder, broken: dict[str, Any]
) -> None:
    body = _return_body("9005", **broken)

    answer = whiplash.call("POST", "/consumer_returns", json=body)

    assert answer.status_code == 422
    with pytest.raises(InvalidRequestBody):
        contract.api.validate_request(RequestsOpenAPIRequest(answer.request))
    openapi_request = RequestsOpenAPIRequest(answer.request)
    contract.api.validate_response(openapi_request, RequestsOpenAPIResponse(answer))


def test_undocumented_400_and_404_answers_use_the_spec_error_entity(
    contract: Contract, whiplash: Recorder
) -> None:
    answers = [
        whiplash.call("GET", "/consumer_returns", params={"search": "{broken"}),
        whiplash.call("GET", "/items", params={"per_page": "lots"}),
        whiplash.call("GET", "/originators"),
        whiplash.call("GET", "/consumer_returns/424242"),
        whiplash.call("GET", "/notification_subscriptions/5"),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400, 404, 404]
    for answer in answers:
        assert contract.entity_errors("ApiSharedEntitiesApiError", answer.json()) == []
        assert answer.json()["message"]


def test_webhook_payloads_carry_a_conforming_consumer_return(
    contract: Contract, whiplash: Recorder, webhook_receiver: WebhookReceiver
) -> None:
    for event in whiplash.call("GET", "/notification_events").json():
        if event["name"].startswith("consumer_return."):
            whiplash.call(
                "POST",
                "/notification_subscriptions",
                json={
                    "notification_event_id": event["id"],
                    "notification_type": "webhook",
                    "endpoint": webhook_receiver.url,
                },
            )
    created = whiplash.call("POST", "/consumer_returns", json=_return_body("9001")).json()
    whiplash.backend.receive(created["id"], [("TEE-1", 2, 0), ("HAT-1", 1, 0)])

    deliveries = webhook_receiver.wait_for(3)

    assert len(deliveries) == 3
    for delivery in deliveries:
        payload = json.loads(delivery.body)
        assert set(payload) == {"event_name", "consumer_return"}
        assert contract.entity_errors(CR, payload["consumer_return"]) == []


def test_strict_webhooks_of_events_we_do_not_handle_carry_conforming_entities(
    contract: Contract, whiplash: Recorder, webhook_receiver: WebhookReceiver
) -> None:
    whiplash.backend.strict = True
    events = {e["name"]: e["id"] for e in whiplash.call("GET", "/notification_events").json()}
    whiplash.call(
        "POST",
        "/notification_subscriptions",
        json={
            "notification_event_id": events["consumer_return.completed"],
            "notification_type": "webhook",
            "endpoint": webhook_receiver.url,
        },
    )
    created = whiplash.call("POST", "/consumer_returns", json=_return_body("9001")).json()
    whiplash.backend.receive(created["id"], [("TEE-1", 2, 0), ("HAT-1", 1, 0)])
    whiplash.backend.add_item("SCARF-1", "Scarf", "12.00")
    whiplash.backend.add_order("5550002", "#1002", [("SCARF-1", 1)])

    deliveries = webhook_receiver.wait_for(6)

    schemas = {
        "consumer_return": CR,
        "shipnotice": "ApiV2EntitiesShipnotice",  # the return seen as its parent Shipnotice
        "item": "ApiV2EntitiesItem",
        "order": "ApiV2EntitiesOrder",
    }
    seen = set()
    for delivery in deliveries:
        payload = json.loads(delivery.body)
        (resource_type,) = set(payload) - {"event_name"}
        assert payload["event_name"].split(".")[0] == resource_type
        assert contract.entity_errors(schemas[resource_type], payload[resource_type]) == []
        seen.add(payload["event_name"])
    assert {"shipnotice.status_changed", "item.created", "order.created"} <= seen


# --------------------------------------------------------------------------- OAuth, by hand


def test_token_endpoint_answers_like_the_documented_oauth_server(whiplash: Recorder) -> None:
    url = f"{whiplash.url}/oauth/token"
    creds = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    client = requests.post(url, data={"grant_type": "client_credentials", **creds}, timeout=5)
    refreshed = requests.post(
        url,
        json={"grant_type": "refresh_token", "refresh_token": "sandbox-refresh-0", **creds},
        timeout=5,
    )
    refused = requests.post(
        url, data={"grant_type": "client_credentials", "client_id": "x"}, timeout=5
    )
    spent = requests.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": "sandbox-refresh-0", **creds},
        timeout=5,
    )

    for answer in (client, refreshed):
        token = answer.json()
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Cache-Control"] == "no-store"
        assert isinstance(token["access_token"], str) and token["access_token"]
        assert token["token_type"] == "bearer"
        assert token["expires_in"] == 7200
        assert isinstance(token["created_at"], int) and isinstance(token["scope"], str)
    assert isinstance(refreshed.json()["refresh_token"], str)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert (spent.status_code, spent.json()["error"]) == (400, "invalid_grant")
    for answer in (refused, spent):
        assert set(answer.json()) == {"error", "error_description"}
