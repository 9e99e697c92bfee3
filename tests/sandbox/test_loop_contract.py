"""Every kind of answer the Loop simulator gives, checked against Loop's contract files.

The contracts are read from ../shared/contracts/loop (never copied) and validated with
openapi-core. Patches applied while loading, each explained where it is made:

- errata from ../shared/contracts/README.md: ASN `from`/`to` are declared `format: date` but
  take date-times;
- the action responses' `oneOf` alternatives have no required properties, so every error
  object matches several of them and `oneOf` can never pass: validated as `anyOf`, and each
  body is additionally checked against the one named alternative it must be, strictly;
- fields the contract types as plain strings but that have no value yet (a return without a
  label; an ASN row not closed or restocked) are sent as `null`, as Loop's own examples do for
  `edited_at` and `label_url`: exactly those fields are widened to nullable.

The return-data answers are checked under both readings of the simulator (`strict.py`): strict
Return Details carry no label fields and strict line items say `outcome: "default"`.

"Strictly" means every property the contract lists must be present (the contract's schemas
list fields but mark none required, so a plain validation would accept `{}`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS31Validator

from include.returns_sync.sandbox.loop import iso
from tests.sandbox.conftest import NOW, LoopApi, WebhookReceiver

NULLABLE = {
    "DetailedReturnList": ("carrier", "tracking_number", "label_status"),
    "AsnReport": ("closed_at", "restock_status"),
}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _patched_returns_api(raw: dict[str, Any], server: str) -> dict[str, Any]:
    spec = copy.deepcopy(raw)
    spec["servers"] = [{"url": server}]
    for parameter in spec["paths"]["/warehouse/reporting/asn"]["get"]["parameters"]:
        parameter["schema"].pop("format", None)  # erratum: date-times are accepted
    for path in spec["paths"].values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    schema = media.get("schema", {})
                    if "oneOf" in schema:
                        schema["anyOf"] = schema.pop("oneOf")
    schemas = spec["components"]["schemas"]
    for name, fields in NULLABLE.items():
        for field in fields:
            schemas[name]["properties"][field]["type"] = ["string", "null"]
    return spec


@pytest.fixture(scope="module")
def loop_contracts(contracts_dir: Path) -> dict[str, dict[str, Any]]:
    loop = contracts_dir / "loop"
    return {
        "returns": _load(loop / "returns-api.openapi.yml"),
        "webhooks": _load(loop / "programmatic-webhooks-api.openapi.yml"),
        "label": _load(loop / "label-webhook.payload.yml"),
        "return": _load(loop / "return-webhook.payload.yml"),
        "processing": _load(loop / "return-processing-webhook.payload.yml"),
        "dispositions": _load(loop / "assess-dispositions.openapi.yml"),
    }


class Contract:
    """The Loop contracts bound to the running simulator (built once: parsing is slow)."""

    loop_api: LoopApi

    def __init__(self, contracts: dict[str, dict[str, Any]], loop_api: LoopApi) -> None:
        self.loop_api = loop_api
        returns = _patched_returns_api(contracts["returns"], loop_api.url)
        webhooks = copy.deepcopy(contracts["webhooks"])
        webhooks["servers"] = [{"url": loop_api.url}]
        self.returns_api = OpenAPI.from_dict(returns)
        self.webhooks_api = OpenAPI.from_dict(webhooks)
        dispositions = copy.deepcopy(contracts["dispositions"])
        dispositions["servers"] = [{"url": loop_api.url}]
        self.dispositions_api = OpenAPI.from_dict(dispositions)
        self.schemas = {**webhooks["components"]["schemas"], **returns["components"]["schemas"]}
        self.schemas["Unauthorized"] = returns["components"]["responses"]["Unauthorized"][
            "content"
        ]["application/json"]["schema"]
        self.label_payload = _payload_schema(contracts["label"], "labelWebhook")
        self.return_payload = _payload_schema(contracts["return"], "returnWebhook")
        self.processing_payload = _payload_schema(
            contracts["processing"], "returnProcessingWebhook"
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.loop_api.session.request(method, self.loop_api.url + path, timeout=5, **kwargs)

    def validate(
        self, response: requests.Response, api: str = "returns", *, request: bool = False
    ) -> Any:
        """Validate status, content type and body against the operation's documented answer.

        `request=True` validates what was sent as well (a well-formed call, as our hooks make).
        """
        spec = {
            "returns": self.returns_api,
            "webhooks": self.webhooks_api,
            "dispositions": self.dispositions_api,
        }[api]
        if request:
            spec.validate_request(RequestsOpenAPIRequest(response.request))
        spec.validate_response(
            RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response)
        )
        return response.json() if response.content else None

    def conforms(self, instance: Any, schema_name: str) -> None:
        """The body is exactly the named component: valid, and carrying all its properties."""
        schema = {**strict(self.schemas[schema_name]), "components": {"schemas": self.schemas}}
        _validator(schema).validate(instance)


def _payload_schema(contract: dict[str, Any], name: str) -> dict[str, Any]:
    body = contract["webhooks"][name]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def strict(schema: Any) -> Any:
    """A copy of `schema` in which every listed property is required, recursively."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict):
        result["required"] = sorted(schema["properties"])
    return result


def _validator(schema: dict[str, Any]) -> OAS31Validator:
    return OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)


_bound: dict[str, Contract] = {}


@pytest.fixture
def contract(loop_contracts: dict[str, dict[str, Any]], loop_api: LoopApi) -> Iterator[Contract]:
    """The contracts bound to this test's simulator (the server URL is the same all session)."""
    bound = _bound.get(loop_api.url)
    if bound is None:
        bound = _bound[loop_api.url] = Contract(loop_contracts, loop_api)
    bound.loop_api = loop_api
    yield bound


def _seed(loop_api: LoopApi, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "order_name": "#1001",
        "provider_order_id": 5_400_000_001,
        "items": [("SKU-1", 2), ("SKU-2", 1)],
        "created_at": NOW - timedelta(hours=1),
    }
    values.update(overrides)
    return str(loop_api.backend.add_return(**values)["id"])


# ----------------------------------------------------------------------------- return data


READINGS = pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])


@READINGS
def test_the_bare_detailed_list_matches_the_contract(contract: Contract, strict: bool) -> None:
    contract.loop_api.backend.strict = strict
    _seed(contract.loop_api)
    _seed(contract.loop_api, label_status=None)
    body = contract.validate(contract.call("GET", "/warehouse/return/list"))
    assert len(body) == 2
    for item in body:
        contract.conforms(item, "DetailedReturnList")
        assert {line["outcome"] for line in item["line_items"]} == (
            {"default"} if strict else {item["outcome"]}
        )


@READINGS
def test_the_paginated_list_envelope_carries_contract_valid_returns(
    contract: Contract, strict: bool
) -> None:
    # The contract only describes the bare array; Loop's pagination docs describe the envelope.
    # Its `returns` items are validated against the list's item schema, DetailedReturnList.
    contract.loop_api.backend.strict = strict
    for hours in (3, 2, 1):
        _seed(contract.loop_api, created_at=NOW - timedelta(hours=hours))
    response = contract.call(
        "GET", "/warehouse/return/list", params={"paginate": "true", "pageSize": "2"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"returns", "nextPageUrl", "previousPageUrl"}
    assert isinstance(body["nextPageUrl"], str) and body["previousPageUrl"] is None
    for item in body["returns"]:
        contract.conforms(item, "DetailedReturnList")


@pytest.mark.parametrize(
    ("params", "schema"),
    [
        ({"state": "pending"}, "InvalidState"),
        ({"from": "not-a-date"}, "InvalidFromDate"),
        ({"from": iso(NOW - timedelta(days=200)), "to": iso(NOW)}, "InvalidFromDate"),
        ({"from": iso(NOW), "to": iso(NOW - timedelta(days=1))}, "InvalidToDate"),
    ],
)
def test_list_validation_errors_match_the_contract(
    contract: Contract, params: dict[str, str], schema: str
) -> None:
    response = contract.call("GET", "/warehouse/return/list", params=params)
    assert response.status_code == 422
    contract.conforms(contract.validate(response), schema)


@READINGS
def test_return_details_match_the_contract(contract: Contract, strict: bool) -> None:
    contract.loop_api.backend.strict = strict
    rid = _seed(contract.loop_api)
    body = contract.validate(
        contract.call("GET", "/warehouse/return/details", params={"return_id": rid})
    )
    contract.conforms(body, "ReturnDetails")
    label_fields = {"label_status", "carrier", "tracking_number", "label_url", "label_updated_at"}
    assert bool(label_fields & set(body)) is not strict  # Loop's Details example has none
    assert {line["outcome"] for line in body["line_items"]} == (
        {"default"} if strict else {body["outcome"]}
    )


def test_an_unknown_return_answers_the_contracts_not_found_shape(contract: Contract) -> None:
    # 404 is not documented for details; the body reuses the webhooks API's NotFoundResponse.
    response = contract.call("GET", "/warehouse/return/details", params={"return_id": "404"})
    assert response.status_code == 404
    contract.conforms(response.json(), "NotFoundResponse")


def test_asn_rows_match_the_contract(contract: Contract) -> None:
    _seed(contract.loop_api)
    params = {"from": "2026-03-09", "to": iso(NOW)}  # a date and a date-time, per the erratum
    body = contract.validate(contract.call("GET", "/warehouse/reporting/asn", params=params))
    assert len(body) == 3
    for row in body:
        contract.conforms(row, "AsnReport")


def test_a_missing_api_key_answers_the_contracts_unauthorized_body(contract: Contract) -> None:
    contract.loop_api.session.headers.pop("X-Authorization")
    response = contract.call("GET", "/warehouse/return/list")
    assert response.status_code == 401
    contract.conforms(contract.validate(response), "Unauthorized")


# ----------------------------------------------------------------------------- return actions


@pytest.mark.parametrize(
    ("action", "state", "flagged", "schema"),
    [
        ("process", "open", False, "SuccessMessage"),
        ("process", "closed", False, "UnprocessableStateReturn"),
        ("process", "cancelled", False, "UnprocessableCancelledReturn"),
        ("process", "review", False, "UnprocessableInReviewReturn"),
        ("process", "open", True, "UnprocessableStateReturn"),
        ("flag", "open", False, "SuccessMessage"),
        ("flag", "closed", False, "UnprocessableStateReturn"),
        ("cancel", "open", False, "SuccessMessage"),
        ("cancel", "closed", False, "UnprocessableStateReturn"),
        ("cancel", "expired", False, "ExpiredReturnCannotBeCancelled"),
        ("cancel", "open", True, "FlaggedReturnCannotBeCancelled"),
        ("close", "open", False, "SuccessMessage"),
        ("close", "closed", False, "UnprocessableStateReturn"),
        ("close", "cancelled", False, "UnprocessableCancelledReturn"),
    ],
)
def test_action_answers_match_the_contract(
    contract: Contract, action: str, state: str, flagged: bool, schema: str
) -> None:
    rid = _seed(contract.loop_api, state=state, flagged=flagged)
    response = contract.call("POST", f"/warehouse/return/{rid}/{action}")
    assert response.status_code == 200
    contract.conforms(contract.validate(response), schema)


def test_note_answers_match_the_contract(contract: Contract) -> None:
    rid = _seed(contract.loop_api)
    none_yet = contract.call("GET", f"/warehouse/return/{rid}/notes")
    assert none_yet.status_code == 422
    contract.conforms(contract.validate(none_yet), "FailureMessage")
    created = contract.call("POST", f"/warehouse/return/{rid}/note", json={"content": "Short by 1"})
    contract.conforms(contract.validate(created), "SuccessMessage")
    too_long = contract.call("POST", f"/warehouse/return/{rid}/note", json={"content": "x" * 300})
    assert too_long.status_code == 422
    contract.conforms(contract.validate(too_long), "InvalidContentForNoteResponse")
    listed = contract.validate(contract.call("GET", f"/warehouse/return/{rid}/notes"))
    for note in listed["notes"]:
        contract.conforms(note, "ReturnNote")


def test_disposition_answers_match_the_contract(contract: Contract) -> None:
    rid = _seed(contract.loop_api)
    line_items = [item.line_item_id for item in contract.loop_api.backend._record(rid).line_items]
    items = [
        {"line_item_id": line_items[0], "disposition_outcome": "back_to_stock", "note": "good"},
        {"line_item_id": line_items[1], "disposition_outcome": "missing"},
    ]
    answer = contract.call("POST", "/dispositioning/assess", json={"items": items})
    assert answer.status_code == 200
    assert contract.validate(answer, "dispositions", request=True) == items
    assert contract.loop_api.backend.dispositions()[line_items[1]]["disposition_outcome"] == (
        "missing"
    )
    foreign = [{"line_item_id": 999_999_999, "disposition_outcome": "donate"}]
    refused = contract.call("POST", "/dispositioning/assess", json={"items": foreign})
    assert refused.status_code == 403
    contract.validate(refused, "dispositions", request=True)
    too_many = [{"line_item_id": line_items[0], "disposition_outcome": "recycle"}] * 31
    assert contract.call(
        "POST", "/dispositioning/assess", json={"items": too_many}
    ).status_code == (422)


# ----------------------------------------------------------------------------- webhooks


def test_webhook_subscription_answers_match_the_contract(contract: Contract) -> None:
    hook = {"topic": "label", "trigger": "label.created", "url": "https://example.com/hook"}
    created = contract.call("POST", "/webhooks", json=hook)
    # Loop's v1 reference page answers 201; the contract file lists only 200 with the same
    # body, so the body is checked against that schema.
    assert created.status_code == 201
    contract.conforms(created.json(), "Webhook")
    listed = contract.validate(contract.call("GET", "/webhooks"), api="webhooks")
    contract.conforms(listed["webhooks"][0], "Webhook")
    hook_id = created.json()["id"]
    updated = contract.call("PUT", f"/webhooks/{hook_id}", json={**hook, "status": "active"})
    assert contract.validate(updated, api="webhooks") is None
    invalid = contract.call("PUT", f"/webhooks/{hook_id}", json={**hook, "topic": "nope"})
    assert invalid.status_code == 422
    contract.conforms(contract.validate(invalid, api="webhooks"), "UnprocessableResponse")
    assert (
        contract.validate(contract.call("DELETE", f"/webhooks/{hook_id}"), api="webhooks") is None
    )
    missing = contract.call("DELETE", f"/webhooks/{hook_id}")
    contract.conforms(contract.validate(missing, api="webhooks"), "NotFoundResponse")


def test_the_label_webhook_payload_matches_the_contract(
    contract: Contract, webhook_receiver: WebhookReceiver
) -> None:
    hook = {
        "topic": "label",
        "trigger": "label.updated",
        "url": webhook_receiver.url,
        "status": "active",
    }
    contract.call("POST", "/webhooks", json=hook)
    rid = _seed(contract.loop_api)
    contract.loop_api.backend.set_label_status(rid, "delivered")
    [delivery] = webhook_receiver.wait_for(1)
    assert delivery.headers["X-Loop-Signature"]
    payload = json.loads(delivery.body)
    _validator(strict(contract.label_payload)).validate(payload)
    assert payload["id"] == rid and isinstance(payload["id"], str)


def test_the_return_closed_webhook_payload_matches_the_contract(
    contract: Contract, webhook_receiver: WebhookReceiver
) -> None:
    backend = contract.loop_api.backend
    backend.strict = True
    backend.subscribe_in_admin("return", "return.closed", webhook_receiver.url)
    rid = _seed(contract.loop_api)
    contract.call("POST", f"/warehouse/return/{rid}/process")
    contract.call("GET", "/warehouse/return/details", params={"return_id": rid})
    [delivery] = webhook_receiver.wait_for(1)
    payload = json.loads(delivery.body)
    _validator(contract.return_payload).validate(payload)  # the contract's list is cut off
    assert payload["trigger"] == "return.closed" and payload["state"] == "closed"


def test_the_processing_failed_webhook_payload_matches_the_contract(
    contract: Contract, webhook_receiver: WebhookReceiver
) -> None:
    backend = contract.loop_api.backend
    backend.strict = True
    backend.subscribe_in_admin(
        "return.processing", "return.processing.failed", webhook_receiver.url
    )
    rid = _seed(contract.loop_api)
    backend.fail_processing(rid)
    contract.call("POST", f"/warehouse/return/{rid}/process")
    contract.call("GET", "/warehouse/return/details", params={"return_id": rid})
    [delivery] = webhook_receiver.wait_for(1)
    payload = json.loads(delivery.body)
    _validator(strict(contract.processing_payload)).validate(payload)
    assert payload["return_id"] == int(rid)
