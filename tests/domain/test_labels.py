"""Specification: a Loop record without label fields says "label unknown", never "not shipped".

Loop's Return Details may carry no `label_status`, `carrier`, `tracking_number` or `label_url`
(PRODUCT.md sections 3 and 6). The label then comes from the detailed list, the webhook that
announced the return, or our own records; when none knows it, the return is recorded as
`LABEL_UNKNOWN` and retried. And a refusal of our credentials (401/403) is never a per-return
problem: it fails the run, nothing is recorded unmappable (PRODUCT.md section 6).

A small in-memory Loop list and Whiplash stand in for the HTTP clients (this tests the domain's
decisions); the state store is the real one on a SQLite file. The sandbox-backed DAG tests
cover the flow over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.clients.errors import VendorAuthError, VendorServerError
from include.returns_sync.domain.eligibility import Ineligible, ineligibility
from include.returns_sync.domain.labels import Label, announced_label, fill_labels
from include.returns_sync.domain.rma import RmaSettings, sync_returns
from include.returns_sync.models import (
    ConsumerReturn,
    ConsumerReturnCreate,
    LoopReturn,
    WhiplashItem,
    WhiplashOrder,
)
from include.returns_sync.state import StateStore

UPDATED = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)


def details(rid: str = "48000001", **overrides: Any) -> LoopReturn:
    """A Return Details record as Loop documents it: no label fields at all."""
    data: dict[str, Any] = {
        "id": int(rid),
        "state": "open",
        "outcome": "exchange",
        "order_id": "555",
        "order_name": "#1001",
        "provider_order_id": 4400,
        "updated_at": UPDATED.isoformat(),
        "line_items": [{"line_item_id": 1, "sku": "SKU-1", "outcome": "default"}],
    }
    data.update(overrides)
    return LoopReturn.model_validate(data)


def listed(rid: str = "48000001", label_status: str | None = "pre_transit") -> LoopReturn:
    """The same return as the detailed list shows it, label included."""
    record = details(rid).model_dump(mode="json")
    record.update(
        label_status=label_status,
        carrier="USPS" if label_status else None,
        tracking_number=f"9400{rid}" if label_status else None,
        label_url=f"https://labels.example/{rid}.pdf" if label_status else None,
        label_updated_at=UPDATED.isoformat() if label_status else None,
    )
    return LoopReturn.model_validate(record)


@dataclass
class FakeLoopList:
    """The detailed list: returns by `updated_at` window; counts its calls."""

    returns: list[LoopReturn] = field(default_factory=list)
    calls: list[tuple[datetime, datetime]] = field(default_factory=list)
    fail_with: Exception | None = None

    def list_returns(self, *, start: datetime, end: datetime, **_: Any) -> list[LoopReturn]:
        self.calls.append((start, end))
        if self.fail_with is not None:
            raise self.fail_with
        return [r for r in self.returns if r.updated_at and start <= r.updated_at < end]


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


# ----------------------------------------------------------------------------- eligibility


def test_a_record_without_label_fields_is_label_unknown_not_unshipped() -> None:
    assert not details().label_known
    assert ineligibility(details()) is Ineligible.LABEL_UNKNOWN


def test_a_label_present_but_missing_its_status_stays_ineligible() -> None:
    record = details(label_status=None, carrier="USPS", tracking_number="9400")
    assert record.label_known
    assert ineligibility(record) is Ineligible.LABEL_NOT_SHIPPED
    assert ineligibility(listed(label_status=None)) is Ineligible.LABEL_NOT_SHIPPED


def test_a_return_that_is_not_open_is_ineligible_whatever_its_label() -> None:
    assert ineligibility(details(state="closed")) is Ineligible.NOT_OPEN


# ----------------------------------------------------------------------------- filling


def test_the_detailed_list_fills_the_whole_label_with_one_call_per_cluster() -> None:
    loop = FakeLoopList([listed("48000001"), listed("48000002"), listed("48000003")])
    later = (UPDATED + timedelta(hours=5)).isoformat()
    loop.returns[2] = loop.returns[2].model_copy(
        update={"updated_at": UPDATED + timedelta(hours=5)}
    )
    records = [details("48000001"), details("48000002"), details("48000003", updated_at=later)]
    filled = fill_labels(records, loop=loop)
    assert [r.id for r in filled] == ["48000001", "48000002", "48000003"]
    assert len(loop.calls) == 2  # the first two share a window, the third is hours later
    for record in filled:
        assert ineligibility(record) is None
        assert (record.carrier, record.tracking_number) == ("USPS", f"9400{record.id}")
        assert record.label_url == f"https://labels.example/{record.id}.pdf"


def test_a_return_the_list_shows_without_a_label_is_not_shipped() -> None:
    filled = fill_labels([details()], loop=FakeLoopList([listed(label_status=None)]))
    assert ineligibility(filled[0]) is Ineligible.LABEL_NOT_SHIPPED


def test_the_webhook_label_is_used_when_the_list_does_not_show_the_return() -> None:
    event = {"label_status": "in_transit", "label_updated_at": "2026-03-10T10:59:00+00:00"}
    label = announced_label(event)
    assert label is not None
    filled = fill_labels(
        [details()], loop=FakeLoopList(), announced={"48000001": label}, recorded={}
    )
    assert filled[0].label_status == "in_transit"
    assert filled[0].label_updated_at == datetime(2026, 3, 10, 10, 59, tzinfo=UTC)
    assert ineligibility(filled[0]) is None


def test_our_records_give_the_label_status_last_seen() -> None:
    filled = fill_labels([details()], loop=FakeLoopList(), recorded={"48000001": "pre_transit"})
    assert ineligibility(filled[0]) is None


def test_the_list_is_preferred_to_the_webhook_and_our_records() -> None:
    loop = FakeLoopList([listed(label_status="delivered")])
    filled = fill_labels(
        [details()],
        loop=loop,
        announced={"48000001": Label(status="pre_transit")},
        recorded={"48000001": "pre_transit"},
    )
    assert filled[0].label_status == "delivered"
    assert filled[0].tracking_number == "940048000001"


def test_a_label_no_source_knows_stays_unknown() -> None:
    filled = fill_labels([details()], loop=FakeLoopList(), announced={}, recorded={})
    assert ineligibility(filled[0]) is Ineligible.LABEL_UNKNOWN


def test_records_that_carry_their_label_need_no_list_call() -> None:
    loop = FakeLoopList()
    records = [listed(), details(state="closed")]
    assert fill_labels(records, loop=loop) == records
    assert loop.calls == []


def test_a_refused_list_call_propagates() -> None:
    refused = VendorAuthError("loop", 401, None, "refused", "GET", "/warehouse/return/list")
    with pytest.raises(VendorAuthError):
        fill_labels([details()], loop=FakeLoopList(fail_with=refused))


# ----------------------------------------------------------------------------- the RMA flow


@dataclass
class FakeWhiplash:
    """Whiplash with one item and one order; `create_error` makes every create fail."""

    create_error: Exception | None = None
    lookup_error: Exception | None = None
    created: list[dict[str, Any]] = field(default_factory=list)
    lookups: int = 0

    def find_consumer_returns_by_loop_ids(self, ids: Any) -> dict[str, ConsumerReturn]:
        self.lookups += 1
        if self.lookup_error is not None and self.lookups > 1:
            raise self.lookup_error
        return {}

    def create_consumer_return(self, payload: ConsumerReturnCreate) -> ConsumerReturn:
        if self.create_error is not None:
            raise self.create_error
        self.created.append(payload.body())
        return ConsumerReturn.model_validate({"id": 700 + len(self.created)})

    def find_items_by_sku(self, skus: Any) -> dict[str, WhiplashItem]:
        return {"SKU-1": WhiplashItem(id=11, sku="SKU-1")}

    def find_orders_by_originator(self, ids: Any) -> dict[str, WhiplashOrder]:
        return {"4400": WhiplashOrder(id=77, warehouse_id=3)}

    def find_orders_by_name(self, names: Any) -> dict[str, WhiplashOrder]:
        return {}


def sync(store: StateStore, whiplash: FakeWhiplash, *returns: LoopReturn) -> Any:
    return sync_returns(
        returns, whiplash=whiplash, store=store, settings=RmaSettings(), source="manual"
    )


def test_an_unknown_label_is_recorded_and_retried_not_reported_as_not_shipped(
    store: StateStore,
) -> None:
    report = sync(store, FakeWhiplash(), details())
    [result] = report.results
    assert (result.outcome, result.reason_code) == ("unmappable", "LABEL_UNKNOWN")
    assert store.get_sync_records(["48000001"])["48000001"].reason_code == "LABEL_UNKNOWN"
    assert store.retry_candidates(limit=10) == ["48000001"]


def test_a_filled_label_creates_the_rma_with_its_carrier_tracking_and_return_action(
    store: StateStore,
) -> None:
    whiplash = FakeWhiplash()
    filled = fill_labels([details()], loop=FakeLoopList([listed()]))
    report = sync(store, whiplash, *filled)
    assert [r.outcome for r in report.results] == ["created"]
    [payload] = whiplash.created
    assert (payload["carrier"], payload["tracking"]) == ("USPS", "940048000001")
    # the line item says outcome "default": it follows the return's outcome, exchange
    assert payload["shipnotice_items_attributes"][0]["return_action"] == "exchange"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_on_create_fail_the_run_and_record_nothing_as_unmappable(
    store: StateStore, status: int
) -> None:
    refused = VendorAuthError(
        "whiplash",
        status,
        None,
        "whiplash refused the credentials of connection 'whiplash_default'",
        "POST",
        "/api/v2/consumer_returns",
    )
    with pytest.raises(VendorAuthError):
        sync_returns(
            [listed()],
            whiplash=FakeWhiplash(create_error=refused),
            store=store,
            settings=RmaSettings(),
            source="poll",
        )
    assert store.get_sync_records(["48000001"]) == {}  # claim released, nothing unmappable
    assert store.sync_status_counts()["unmappable"] == 0


def test_refused_credentials_on_the_look_up_after_a_failed_create_fail_the_run(
    store: StateStore,
) -> None:
    failed = VendorServerError("whiplash", 500, None, "boom", "POST", "/api/v2/consumer_returns")
    refused = VendorAuthError("whiplash", 401, None, "refused", "GET", "/api/v2/consumer_returns")
    whiplash = FakeWhiplash(create_error=failed, lookup_error=refused)
    with pytest.raises(VendorAuthError):
        sync_returns(
            [listed()],
            whiplash=whiplash,
            store=store,
            settings=RmaSettings(),
            source="poll",
        )
    assert store.sync_status_counts()["unmappable"] == 0
