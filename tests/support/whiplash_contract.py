"""The Whiplash OpenAPI contract with its documented patches, for the sandbox's contract tests.

See tests/sandbox/test_whiplash_contract.py for why each patch exists (`NULLABLE_ERRATA`, and a
test there proves the evidence for every patch is still in the vendor's file).
"""

from __future__ import annotations

import json
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from openapi_schema_validator import OAS31Validator

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


def load_contract(contracts_dir: Path) -> Contract:
    """The spec with its documented patches ."""
    raw = json.loads((contracts_dir / "whiplash" / "rydership-v2.openapi.json").read_text())
    patched = _drop_null_examples(deepcopy(raw))
    schemas = patched["components"]["schemas"]
    for schema_name, prop in NULLABLE_ERRATA:
        schemas[schema_name]["properties"][prop] = _make_nullable(
            schemas[schema_name]["properties"][prop]
        )
    return Contract(raw, OpenAPI.from_dict(patched), patched)


def assert_conforms(contract: Contract, exchanges: list[requests.Response]) -> None:
    for response in exchanges:
        openapi_request = RequestsOpenAPIRequest(response.request)
        what = f"{response.request.method} {response.request.path_url} -> {response.status_code}"
        try:
            contract.api.validate_request(openapi_request)
            contract.api.validate_response(openapi_request, RequestsOpenAPIResponse(response))
        except OpenAPIError as exc:
            cause = getattr(exc.__cause__, "schema_errors", None) or exc.__cause__ or exc
            pytest.fail(f"{what} does not conform to the spec: {cause}")
