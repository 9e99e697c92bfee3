"""The Loop simulator's strict reading of Return Details and line item outcomes, over HTTP.

Strict (`strict.py`): Return Details carry no label fields, as Loop's documented example; the
detailed list still carries the label; every line item says `outcome: "default"` and the
return-level `outcome` carries the real one. Lenient serves what it always served.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.returns_sync.sandbox.corruption import HTML_ERROR_PAGE, without
from include.returns_sync.sandbox.loop import iso
from tests.sandbox.conftest import NOW, LoopApi

LABEL_FIELDS = {"label_status", "carrier", "tracking_number", "label_url", "label_updated_at"}


def add(loop_api: LoopApi, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "order_name": "#1001",
        "provider_order_id": 5_400_000_001,
        "items": [("SKU-1", 2), ("SKU-2", 1)],
        "outcome": "exchange",
        "created_at": NOW - timedelta(hours=1),
    }
    values.update(overrides)
    return str(loop_api.backend.add_return(**values)["id"])


def details(loop_api: LoopApi, rid: str) -> dict[str, Any]:
    response = loop_api.get("/warehouse/return/details", params={"return_id": rid})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def listed(loop_api: LoopApi, rid: str) -> dict[str, Any]:
    window = {"from": iso(NOW - timedelta(days=1)), "to": iso(NOW), "filter": "updated_at"}
    response = loop_api.get("/warehouse/return/list", params=window)
    assert response.status_code == 200
    [record] = [r for r in response.json() if r["id"] == rid]
    return record  # type: ignore[no-any-return]


def test_strict_details_carry_no_label_fields(loop_api: LoopApi) -> None:
    loop_api.backend.strict = True
    rid = add(loop_api, label_status="in_transit")
    body = details(loop_api, rid)
    assert not LABEL_FIELDS & set(body)
    assert body["state"] == "open" and body["updated_at"]  # what finds it in the list


def test_strict_list_still_carries_the_label(loop_api: LoopApi) -> None:
    loop_api.backend.strict = True
    rid = add(loop_api, label_status="in_transit")
    record = listed(loop_api, rid)
    assert record["label_status"] == "in_transit"
    assert record["carrier"] == "USPS" and record["tracking_number"]
    assert record["label_url"].endswith(".pdf")
    assert record["updated_at"] == details(loop_api, rid)["updated_at"]


def test_strict_line_items_say_default_and_the_return_carries_the_outcome(
    loop_api: LoopApi,
) -> None:
    loop_api.backend.strict = True
    rid = add(loop_api, outcome="store_credit")
    for body in (details(loop_api, rid), listed(loop_api, rid)):
        assert body["outcome"] == "store_credit"
        assert [item["outcome"] for item in body["line_items"]] == ["default"] * 3


def test_lenient_details_and_list_are_unchanged(loop_api: LoopApi) -> None:
    rid = add(loop_api, label_status="pre_transit", outcome="refund")
    for body in (details(loop_api, rid), listed(loop_api, rid)):
        assert body["label_status"] == "pre_transit" and body["tracking_number"]
        assert [item["outcome"] for item in body["line_items"]] == ["refund"] * 3


def test_strict_mode_can_be_switched_at_runtime(loop_api: LoopApi) -> None:
    rid = add(loop_api)
    assert "label_status" in details(loop_api, rid)
    loop_api.backend.strict = True
    assert "label_status" not in details(loop_api, rid)
    loop_api.backend.strict = False
    assert "label_status" in details(loop_api, rid)


def test_strict_details_still_serve_corruptions_as_set(loop_api: LoopApi) -> None:
    loop_api.backend.strict = True
    rid = add(loop_api)
    loop_api.backend.corrupt(rid, without("state"))
    body = details(loop_api, rid)
    assert "state" not in body and not LABEL_FIELDS & set(body)
    loop_api.backend.corrupt(rid, HTML_ERROR_PAGE)
    page = loop_api.get("/warehouse/return/details", params={"return_id": rid})
    assert page.headers["content-type"].startswith("text/html")
