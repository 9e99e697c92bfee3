"""Specification of the Loop return -> Whiplash consumer return mapping."""

from __future__ import annotations

import pytest

from include.returns_sync.domain.eligibility import Ineligible, ineligibility
from include.returns_sync.domain.mapping import (
    Lookups,
    Unmappable,
    UnmappableReason,
    build_consumer_return,
    return_action,
)
from include.returns_sync.domain.sku import BLANK_SKU, normalise_aliases, normalise_sku
from include.returns_sync.models import LoopReturn, WhiplashItem, WhiplashOrder


def loop_return(**overrides: object) -> LoopReturn:
    data: dict[str, object] = {
        "id": 9001,
        "state": "open",
        "outcome": "refund",
        "order_id": "555",
        "order_name": "#1001",
        "provider_order_id": 4400,
        "label_status": "pre_transit",
        "carrier": "USPS",
        "tracking_number": "9400TRACK",
        "label_url": "https://labels.example/9001.pdf",
        "line_items": [
            {"line_item_id": 1, "sku": "sku-1 ", "return_reason": "Too small"},
            {"line_item_id": 2, "sku": "SKU-1", "return_reason": "Too small"},
            {"line_item_id": 3, "sku": "Sku-2", "return_reason": "Damaged", "outcome": "exchange"},
        ],
    }
    data.update(overrides)
    return LoopReturn.model_validate(data)


LOOKUPS = Lookups(
    items_by_sku={
        "SKU-1": WhiplashItem(id=11, sku="SKU-1"),
        "SKU-2": WhiplashItem(id=12, sku="sku-2"),
    },
    orders_by_originator={"4400": WhiplashOrder(id=77, warehouse_id=3, return_warehouse_id=5)},
    orders_by_name={"#2002": WhiplashOrder(id=78, warehouse_id=4)},
)


def test_units_of_one_sku_become_one_item_line_with_their_count() -> None:
    payload = build_consumer_return(loop_return(), LOOKUPS).body()
    items = {i["item_id"]: i for i in payload["shipnotice_items_attributes"]}
    assert items[11]["quantity"] == 2
    assert items[12]["quantity"] == 1
    assert items[11]["originator_attributes"] == {"original_id": "1", "misc": "1,2"}
    assert items[11]["description"] == "Too small"


def test_references_are_the_loop_return_id_as_a_decimal_string() -> None:
    payload = build_consumer_return(loop_return(), LOOKUPS).body()
    assert payload["reference"] == "9001"
    assert payload["originator_attributes"] == {"original_id": "9001", "group_id": "555"}
    assert payload["order_id"] == 77
    assert payload["warehouse_id"] == 5  # the order's return warehouse wins over its warehouse
    assert payload["requires_label"] is False
    assert payload["tracking"] == "9400TRACK"


def test_configured_warehouse_wins_and_nulls_are_omitted() -> None:
    payload = build_consumer_return(
        loop_return(carrier=None, label_url=None), LOOKUPS, warehouse_id=9
    ).body()
    assert payload["warehouse_id"] == 9
    assert "carrier" not in payload and "shipping_label_url" not in payload


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        ("refund", "refund"),
        ("exchange", "exchange"),
        ("store_credit", "credit"),
        ("gift_card", "credit"),
        ("Store Credit", "credit"),
        ("upsell", "no_action_required"),
        (None, "no_action_required"),
    ],
)
def test_return_action_follows_the_loop_outcome(outcome: str | None, action: str) -> None:
    assert return_action(outcome) == action


def test_line_item_outcome_overrides_the_return_outcome() -> None:
    payload = build_consumer_return(loop_return(), LOOKUPS).body()
    actions = {i["item_id"]: i["return_action"] for i in payload["shipnotice_items_attributes"]}
    assert actions == {11: "refund", 12: "exchange"}


def test_order_falls_back_to_the_order_name() -> None:
    payload = build_consumer_return(
        loop_return(provider_order_id=None, order_name="2002"), LOOKUPS
    ).body()
    assert payload["order_id"] == 78


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"line_items": []}, UnmappableReason.NO_ITEMS),
        ({"line_items": None}, UnmappableReason.NO_ITEMS),
        ({"line_items": [{"line_item_id": 1, "sku": "NOPE"}]}, UnmappableReason.UNKNOWN_SKU),
        ({"line_items": [{"line_item_id": 1, "sku": None}]}, UnmappableReason.UNKNOWN_SKU),
        ({"provider_order_id": 1, "order_name": "#9"}, UnmappableReason.UNKNOWN_ORDER),
    ],
)
def test_unmappable_returns_name_their_reason(overrides: dict, reason: UnmappableReason) -> None:
    with pytest.raises(Unmappable) as caught:
        build_consumer_return(loop_return(**overrides), LOOKUPS)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_aliases_map_alternative_skus_onto_the_whiplash_sku() -> None:
    aliases = normalise_aliases({"old-sku-1": "SKU-1"})
    r = loop_return(line_items=[{"line_item_id": 5, "sku": "OLD-SKU-1"}])
    payload = build_consumer_return(r, LOOKUPS, aliases=aliases).body()
    assert payload["shipnotice_items_attributes"][0]["item_id"] == 11


def test_sku_normalisation_ignores_case_width_and_spaces() -> None:
    assert normalise_sku("  sku\u00a0 1 ") == "SKU 1"
    assert normalise_sku("ＳＫＵ-1") == "SKU-1"
    assert normalise_sku("") == BLANK_SKU
    assert normalise_sku(None) == BLANK_SKU


@pytest.mark.parametrize(
    ("state", "label", "expected"),
    [
        ("open", "pre_transit", None),
        ("open", "in_transit", None),
        ("open", "out_for_delivery", None),
        ("open", "delivered", None),
        ("open", "new", Ineligible.LABEL_NOT_SHIPPED),
        ("open", "failure", Ineligible.LABEL_NOT_SHIPPED),
        ("open", "error", Ineligible.LABEL_NOT_SHIPPED),
        ("open", None, Ineligible.LABEL_NOT_SHIPPED),
        ("review", "pre_transit", Ineligible.NOT_OPEN),
        ("closed", "delivered", Ineligible.NOT_OPEN),
        ("cancelled", "pre_transit", Ineligible.NOT_OPEN),
        ("expired", "pre_transit", Ineligible.NOT_OPEN),
    ],
)
def test_eligibility(state: str, label: str | None, expected: Ineligible | None) -> None:
    assert ineligibility(loop_return(state=state, label_status=label)) == expected


@pytest.mark.parametrize("line_outcome", ["default", "DEFAULT", None, ""])
def test_a_line_item_outcome_default_follows_the_returns_outcome(line_outcome: object) -> None:
    """Loop's list example shows line items with `outcome: "default"`: the return's outcome."""
    lines = [
        {"line_item_id": 1, "sku": "SKU-1", "outcome": line_outcome},
        {"line_item_id": 3, "sku": "SKU-2", "outcome": "default"},
    ]
    payload = build_consumer_return(
        loop_return(outcome="exchange", line_items=lines), LOOKUPS
    ).body()
    actions = {i["item_id"]: i["return_action"] for i in payload["shipnotice_items_attributes"]}
    assert actions == {11: "exchange", 12: "exchange"}


def test_a_line_items_own_outcome_wins_over_the_returns() -> None:
    lines = [
        {"line_item_id": 1, "sku": "SKU-1", "outcome": "default"},
        {"line_item_id": 3, "sku": "SKU-2", "outcome": "store_credit"},
    ]
    payload = build_consumer_return(loop_return(outcome="refund", line_items=lines), LOOKUPS).body()
    actions = {i["item_id"]: i["return_action"] for i in payload["shipnotice_items_attributes"]}
    assert actions == {11: "refund", 12: "credit"}
