"""The Loop simulator over real HTTP: the behaviour and quirks a Loop client must survive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from include.returns_sync.sandbox.loop import LoopBackend, iso
from tests.sandbox.conftest import NOW, LoopApi, WebhookReceiver

UNAUTHORIZED = {
    "error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}
}
NOTE_INVALID = "Content is required and must be less than 255 characters."


def add(backend: LoopBackend, hours_ago: float = 1, **overrides: object) -> str:
    """Create a return `hours_ago` before NOW; returns its id."""
    values: dict[str, object] = {
        "order_name": "#1001",
        "provider_order_id": 5_400_000_001,
        "items": [("SKU-1", 1)],
        "created_at": NOW - timedelta(hours=hours_ago),
    }
    values.update(overrides)
    return str(backend.add_return(**values)["id"])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_requests_without_the_right_api_key_get_loops_401_body(
    loop_api: LoopApi, key: str | None
) -> None:
    headers = {"X-Authorization": key} if key else {}
    loop_api.session.headers.pop("X-Authorization")
    response = loop_api.get("/warehouse/return/list", headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_the_dated_version_path_serves_the_same_api(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    url = loop_api.url.replace("/api/v1", "/api/2026-07")
    response = loop_api.session.get(f"{url}/warehouse/return/details", params={"return_id": rid})
    assert response.status_code == 200
    assert response.json()["id"] == rid


# ----------------------------------------------------------------------------- detailed list


def test_list_without_a_window_returns_only_the_last_24_hours(loop_api: LoopApi) -> None:
    recent = add(loop_api.backend, hours_ago=23)
    add(loop_api.backend, hours_ago=25)
    returns = loop_api.get("/warehouse/return/list").json()
    assert [r["id"] for r in returns] == [recent]


def test_list_filters_on_updated_at_when_asked(loop_api: LoopApi) -> None:
    old = add(loop_api.backend, hours_ago=48)
    loop_api.backend.set_label_status(old, "in_transit")  # a label change updates updated_at
    by_created = loop_api.get("/warehouse/return/list").json()
    by_updated = loop_api.get("/warehouse/return/list", params={"filter": "updated_at"}).json()
    assert by_created == []
    assert [r["id"] for r in by_updated] == [old]


def test_list_refuses_a_window_longer_than_120_days(loop_api: LoopApi) -> None:
    params = {"from": iso(NOW - timedelta(days=121)), "to": iso(NOW)}
    response = loop_api.get("/warehouse/return/list", params=params)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"message", "errors"} and "120 days" in body["message"]


def test_list_accepts_exactly_120_days_and_loops_space_separated_dates(loop_api: LoopApi) -> None:
    start = NOW - timedelta(days=120)
    params = {"from": start.strftime("%Y-%m-%d %H:%M:%S"), "to": iso(NOW)}
    assert loop_api.get("/warehouse/return/list", params=params).status_code == 200


def test_list_rejects_an_unparseable_date_naming_the_field(loop_api: LoopApi) -> None:
    response = loop_api.get("/warehouse/return/list", params={"from": "yesterday"})
    assert response.status_code == 422
    assert "from" in response.json()["errors"]


def test_list_defaults_to_open_closed_and_expired_states(loop_api: LoopApi) -> None:
    ids = {state: add(loop_api.backend, state=state) for state in ("open", "closed", "expired")}
    cancelled = add(loop_api.backend, state="cancelled")
    review = add(loop_api.backend, state="review")
    default = {r["id"] for r in loop_api.get("/warehouse/return/list").json()}
    assert default == set(ids.values())
    only_review = loop_api.get("/warehouse/return/list", params={"state": "review"}).json()
    only_cancelled = loop_api.get("/warehouse/return/list", params={"state": "cancelled"}).json()
    assert [r["id"] for r in only_review] == [review]
    assert [r["id"] for r in only_cancelled] == [cancelled]


def test_list_rejects_an_unknown_state(loop_api: LoopApi) -> None:
    response = loop_api.get("/warehouse/return/list", params={"state": "needs review"})
    assert response.status_code == 422
    assert "state" in response.json()["errors"]


def test_list_is_a_bare_array_unless_paginate_is_true(loop_api: LoopApi) -> None:
    add(loop_api.backend)
    assert isinstance(loop_api.get("/warehouse/return/list").json(), list)
    paged = loop_api.get("/warehouse/return/list", params={"paginate": "true"}).json()
    assert set(paged) == {"returns", "nextPageUrl", "previousPageUrl"}
    assert paged["nextPageUrl"] is None and paged["previousPageUrl"] is None


def _walk(loop_api: LoopApi, params: dict[str, str]) -> list[list[str]]:
    """A correct client: re-send its own params, take only `cursor` from nextPageUrl."""
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = loop_api.get("/warehouse/return/list", params=query).json()
        pages.append([r["id"] for r in body["returns"]])
        if body["nextPageUrl"] is None:
            return pages
        cursor = parse_qs(urlsplit(body["nextPageUrl"]).query)["cursor"][0]
        assert len(pages) < 20, "pagination does not terminate"


def test_a_client_resending_its_params_walks_every_page_once_in_order(loop_api: LoopApi) -> None:
    ids = [add(loop_api.backend, hours_ago=30 - i) for i in range(7)]
    add(loop_api.backend, hours_ago=2, state="cancelled")  # excluded by the state filter
    params = {"from": iso(NOW - timedelta(days=2)), "to": iso(NOW), "state": "open"}
    pages = _walk(loop_api, {**params, "paginate": "true", "pageSize": "3"})
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]


def test_next_page_url_is_a_full_v1_url_without_from_state_or_paginate(loop_api: LoopApi) -> None:
    for i in range(4):
        add(loop_api.backend, hours_ago=30 - i)
    dated = loop_api.url.replace("/api/v1", "/api/2026-07")
    params = {
        "from": iso(NOW - timedelta(days=2)),
        "to": iso(NOW),
        "state": "open",
        "filter": "created_at",
        "paginate": "true",
        "pageSize": "2",
    }
    body = loop_api.session.get(f"{dated}/warehouse/return/list", params=params).json()
    next_url = urlsplit(body["nextPageUrl"])
    assert next_url.scheme == "http" and next_url.netloc == urlsplit(loop_api.url).netloc
    assert next_url.path == "/api/v1/warehouse/return/list"
    assert set(parse_qs(next_url.query)) == {"to", "filter", "pageSize", "cursor"}
    second = loop_api.get("/warehouse/return/list", params={**params, "cursor": _cursor(body)})
    assert second.json()["previousPageUrl"] is not None


def _cursor(page: dict[str, object]) -> str:
    return parse_qs(urlsplit(str(page["nextPageUrl"])).query)["cursor"][0]


def test_following_next_page_url_verbatim_loses_the_clients_window_and_envelope(
    loop_api: LoopApi,
) -> None:
    for i in range(3):
        add(loop_api.backend, hours_ago=40 - i)  # older than 24 h, inside the client's window
    params = {"from": iso(NOW - timedelta(days=3)), "paginate": "true", "pageSize": "1"}
    first = loop_api.get("/warehouse/return/list", params=params).json()
    verbatim = loop_api.session.get(first["nextPageUrl"], timeout=5).json()
    assert isinstance(verbatim, list)  # no `paginate` -> bare array, not the envelope
    assert verbatim == []  # no `from` -> only the 24 h before `to`


def test_previous_page_url_leads_back_to_the_previous_page(loop_api: LoopApi) -> None:
    ids = [add(loop_api.backend, hours_ago=10 - i) for i in range(5)]
    params = {"paginate": "true", "pageSize": "2"}
    first = loop_api.get("/warehouse/return/list", params=params).json()
    second = loop_api.get("/warehouse/return/list", params={**params, "cursor": _cursor(first)})
    back_cursor = parse_qs(urlsplit(second.json()["previousPageUrl"]).query)["cursor"][0]
    back = loop_api.get("/warehouse/return/list", params={**params, "cursor": back_cursor}).json()
    assert [r["id"] for r in back["returns"]] == ids[0:2]


def test_pages_stay_consistent_when_returns_arrive_between_requests(loop_api: LoopApi) -> None:
    ids = [add(loop_api.backend, hours_ago=10 - i) for i in range(4)]
    params = {"paginate": "true", "pageSize": "2"}
    first = loop_api.get("/warehouse/return/list", params=params).json()
    newer = add(loop_api.backend, hours_ago=0.5)
    older = add(loop_api.backend, hours_ago=20)  # sorts before the cursor: not re-served
    second = loop_api.get("/warehouse/return/list", params={**params, "cursor": _cursor(first)})
    third = loop_api.get(
        "/warehouse/return/list", params={**params, "cursor": _cursor(second.json())}
    ).json()
    seen = [r["id"] for r in first["returns"] + second.json()["returns"] + third["returns"]]
    assert seen == [*ids, newer]
    assert older not in seen


def test_page_size_above_750_is_capped(loop_api: LoopApi) -> None:
    for i in range(2):
        add(loop_api.backend, hours_ago=2 - i)
    body = loop_api.get("/warehouse/return/list", params={"paginate": "true", "pageSize": "1000"})
    assert len(body.json()["returns"]) == 2
    small = loop_api.get("/warehouse/return/list", params={"paginate": "true", "pageSize": "1"})
    assert parse_qs(urlsplit(small.json()["nextPageUrl"]).query)["pageSize"] == ["1"]


# ----------------------------------------------------------------------------- details, ASN


def test_return_payloads_have_one_line_item_per_unit_and_vendor_id_types(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend, items=[("SKU-1", 2), ("SKU-2", 1)], provider_order_id=4242)
    listed = loop_api.get("/warehouse/return/list").json()[0]
    details = loop_api.get("/warehouse/return/details", params={"return_id": rid}).json()
    assert [item["sku"] for item in details["line_items"]] == ["SKU-1", "SKU-1", "SKU-2"]
    assert len({item["line_item_id"] for item in details["line_items"]}) == 3
    assert all(isinstance(item["line_item_id"], int) for item in details["line_items"])
    assert listed["id"] == details["id"] == rid
    assert listed["provider_order_id"] == "4242"  # string in the list ...
    assert details["provider_order_id"] == 4242  # ... integer in details
    assert details["label_status"] == "pre_transit" and details["tracking_number"]


def test_details_can_look_up_by_shopify_order_id_or_order_name(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend, order_name="#2222", provider_order_id=777)
    by_order = loop_api.get("/warehouse/return/details", params={"order_id": "777"}).json()
    by_name = loop_api.get("/warehouse/return/details", params={"order_name": "2222"}).json()
    assert by_order["id"] == by_name["id"] == rid


def test_details_of_an_unknown_return_is_404_not_found(loop_api: LoopApi) -> None:
    response = loop_api.get("/warehouse/return/details", params={"return_id": "1"})
    assert response.status_code == 404
    assert response.json() == {"errors": {"code": "NOT_FOUND"}}


def test_asn_has_one_row_per_unit_with_a_label_and_no_return_id(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend, items=[("SKU-1", 2)], order_name="#3001")
    add(loop_api.backend, label_status=None)  # no label, no package, no ASN row
    rows = loop_api.get("/warehouse/reporting/asn").json()
    assert [row["sku"] for row in rows] == ["SKU-1", "SKU-1"]
    assert len({row["id"] for row in rows}) == 2
    assert {row["order_name"] for row in rows} == {"#3001"}
    assert all("return_id" not in row and str(row["id"]) != rid for row in rows)
    line_ids = {str(i["line_item_id"]) for i in loop_api.backend.get(rid)["line_items"]}
    assert {row["return_line_item_id"] for row in rows} == line_ids


# ----------------------------------------------------------------------------- actions


def test_process_is_queued_and_the_return_closes_after_the_delay(loop_api: LoopApi) -> None:
    loop_api.backend.process_delay = 60
    rid = add(loop_api.backend)
    response = loop_api.post(f"/warehouse/return/{rid}/process")
    assert response.status_code == 200 and response.json() == "true"
    assert loop_api.backend.get(rid)["state"] == "open"  # queued, not done
    loop_api.clock.advance(timedelta(seconds=61))
    details = loop_api.get("/warehouse/return/details", params={"return_id": rid}).json()
    assert details["state"] == "closed"
    assert details["updated_at"] > iso(NOW)


def test_strict_processing_closes_the_return_later_and_sends_return_closed(
    loop_api: LoopApi, webhook_receiver: WebhookReceiver
) -> None:
    backend = loop_api.backend
    backend.strict, backend.process_delay = True, 60
    backend.subscribe_in_admin("return", "return.closed", webhook_receiver.url)
    rid = add(backend)
    assert loop_api.post(f"/warehouse/return/{rid}/process").json() == "true"
    assert (
        loop_api.get("/warehouse/return/details", params={"return_id": rid}).json()["state"]
        == "open"
    )  # queued: Loop documents no "processing" state, the return still reads open
    loop_api.clock.advance(timedelta(seconds=61))
    assert backend.get(rid)["state"] == "closed"
    [delivery] = webhook_receiver.wait_for(1)
    payload = json.loads(delivery.body)
    assert (payload["topic"], payload["trigger"], payload["id"], payload["state"]) == (
        "return",
        "return.closed",
        int(rid),
        "closed",
    )


def test_strict_processing_of_a_chosen_return_fails_and_sends_return_processing_failed(
    loop_api: LoopApi, webhook_receiver: WebhookReceiver
) -> None:
    backend = loop_api.backend
    backend.strict = True
    backend.subscribe_in_admin(
        "return.processing", "return.processing.failed", webhook_receiver.url
    )
    rid = add(backend)
    backend.fail_processing(rid)
    assert loop_api.post(f"/warehouse/return/{rid}/process").json() == "true"  # queued
    assert backend.get(rid)["state"] == "open"  # processing failed: still open
    assert backend.processing_failed == [rid]
    [delivery] = webhook_receiver.wait_for(1)
    payload = json.loads(delivery.body)
    assert payload == {
        "topic": "return.processing",
        "trigger": "return.processing.failed",
        "return_id": int(rid),
        "return_state": "open",
        "message": "The return could not be processed.",
        "source": "api",
    }
    # a later Process is queued again and, no longer chosen to fail, closes the return
    assert loop_api.post(f"/warehouse/return/{rid}/process").json() == "true"
    assert backend.get(rid)["state"] == "closed"


def test_lenient_processing_never_fails_and_sends_no_return_webhooks(
    loop_api: LoopApi, webhook_receiver: WebhookReceiver
) -> None:
    backend = loop_api.backend
    backend.subscribe_in_admin("return", "return.closed", webhook_receiver.url)
    rid = add(backend)
    backend.fail_processing(rid)  # a strict-only knob
    loop_api.post(f"/warehouse/return/{rid}/process")
    assert backend.get(rid)["state"] == "closed"
    assert webhook_receiver.wait_for(1, timeout=0.3) == []


def test_processing_a_closed_return_is_http_200_with_an_errors_body(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    loop_api.post(f"/warehouse/return/{rid}/process")
    again = loop_api.post(f"/warehouse/return/{rid}/process")
    assert again.status_code == 200
    assert again.json() == {
        "errors": {
            "message": "Return is closed and therefore cannot be processed.",
            "code": "UNPROCESSABLE_RETURN",
        }
    }


@pytest.mark.parametrize(
    ("state", "body"),
    [
        ("cancelled", {"message": "Return is cancelled and therefore cannot be processed."}),
        ("review", {"message": "Return is review and therefore cannot be processed."}),
    ],
)
def test_processing_a_cancelled_or_review_return_answers_a_message_body(
    loop_api: LoopApi, state: str, body: dict[str, str]
) -> None:
    rid = add(loop_api.backend, state=state)
    response = loop_api.post(f"/warehouse/return/{rid}/process")
    assert (response.status_code, response.json()) == (200, body)


def test_a_flagged_return_stays_open_and_cannot_be_processed(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    assert loop_api.post(f"/warehouse/return/{rid}/flag").json() == "true"
    assert loop_api.backend.get(rid)["state"] == "open"
    response = loop_api.post(f"/warehouse/return/{rid}/process")
    assert response.status_code == 200
    assert response.json() == {
        "errors": {
            "message": "Return is open and therefore cannot be processed.",
            "code": "UNPROCESSABLE_FLAGGED_RETURN",
        }
    }


def test_flag_can_be_configured_to_move_the_return_to_review(loop_api: LoopApi) -> None:
    loop_api.backend.flag_moves_to_review = True
    rid = add(loop_api.backend)
    loop_api.post(f"/warehouse/return/{rid}/flag")
    assert loop_api.backend.get(rid)["state"] == "review"


def test_cancel_and_close_move_the_state_and_refuse_afterwards(loop_api: LoopApi) -> None:
    cancelled, closed = add(loop_api.backend), add(loop_api.backend)
    assert loop_api.post(f"/warehouse/return/{cancelled}/cancel").json() == "true"
    assert loop_api.post(f"/warehouse/return/{closed}/close").json() == "true"
    assert loop_api.backend.get(cancelled)["state"] == "cancelled"
    assert loop_api.backend.get(closed)["state"] == "closed"
    assert loop_api.post(f"/warehouse/return/{closed}/cancel").json()["errors"]["code"] == (
        "UNPROCESSABLE_RETURN"
    )
    expired = add(loop_api.backend, state="expired")
    assert loop_api.post(f"/warehouse/return/{expired}/cancel").json() == {
        "content": "Return is expired and cannot be processed."
    }


def test_actions_on_an_unknown_return_are_404(loop_api: LoopApi) -> None:
    response = loop_api.post("/warehouse/return/999/process")
    assert (response.status_code, response.json()) == (404, {"errors": {"code": "NOT_FOUND"}})


def test_every_action_call_is_logged_with_its_outcome(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    loop_api.post(f"/warehouse/return/{rid}/process")
    loop_api.post(f"/warehouse/return/{rid}/process")
    actions = loop_api.backend.actions_for(rid)
    assert [(a["action"], a["ok"]) for a in actions] == [("process", True), ("process", False)]
    assert "UNPROCESSABLE_RETURN" in actions[1]["result"]


# ----------------------------------------------------------------------------- notes


def test_get_notes_is_422_while_a_return_has_none(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    response = loop_api.get(f"/warehouse/return/{rid}/notes")
    assert (response.status_code, response.json()) == (422, "false")


def test_a_note_is_stored_and_listed(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    created = loop_api.post(f"/warehouse/return/{rid}/note", json={"content": "Expected 2 x SKU-1"})
    assert (created.status_code, created.json()) == (200, "true")
    notes = loop_api.get(f"/warehouse/return/{rid}/notes").json()["notes"]
    assert [n["content"] for n in notes] == ["Expected 2 x SKU-1"]
    assert isinstance(notes[0]["id"], int) and notes[0]["created_at"].endswith("Z")
    assert loop_api.backend.notes_for(rid) == notes


@pytest.mark.parametrize("body", [{"content": "x" * 255}, {"content": ""}, {}, None])
def test_a_note_must_have_content_shorter_than_255_characters(
    loop_api: LoopApi, body: dict[str, str] | None
) -> None:
    rid = add(loop_api.backend)
    response = loop_api.post(f"/warehouse/return/{rid}/note", json=body)
    assert response.status_code == 422
    assert response.json()["message"] == NOTE_INVALID
    assert response.json()["errors"]["message"] == NOTE_INVALID
    assert loop_api.backend.notes_for(rid) == []


def test_a_254_character_note_is_accepted(loop_api: LoopApi) -> None:
    rid = add(loop_api.backend)
    assert loop_api.post(f"/warehouse/return/{rid}/note", json={"content": "x" * 254}).ok


# ----------------------------------------------------------------------------- webhooks


def test_webhook_subscriptions_can_be_created_listed_updated_and_deleted(loop_api: LoopApi) -> None:
    hook = {"topic": "label", "trigger": "label.updated", "url": "https://example.com/hook"}
    created = loop_api.post("/webhooks", json=hook)
    assert created.status_code == 201
    webhook = created.json()
    assert webhook["status"] == "inactive" and isinstance(webhook["id"], int)
    assert loop_api.get("/webhooks").json() == {"webhooks": [webhook]}
    updated = loop_api.session.put(
        f"{loop_api.url}/webhooks/{webhook['id']}", json={**hook, "status": "active"}, timeout=5
    )
    assert updated.status_code == 204
    assert loop_api.get("/webhooks").json()["webhooks"][0]["status"] == "active"
    deleted = loop_api.session.delete(f"{loop_api.url}/webhooks/{webhook['id']}", timeout=5)
    assert deleted.status_code == 204
    again = loop_api.session.delete(f"{loop_api.url}/webhooks/{webhook['id']}", timeout=5)
    assert (again.status_code, again.json()) == (404, {"errors": {"code": "NOT_FOUND"}})


def test_creating_a_webhook_with_an_unknown_topic_is_422(loop_api: LoopApi) -> None:
    hook = {"topic": "labels", "trigger": "label.updated", "url": "https://example.com/hook"}
    response = loop_api.post("/webhooks", json=hook)
    assert response.status_code == 422
    assert response.json()["message"].startswith("Must be one of the following values:")


def test_a_label_change_is_delivered_signed_to_active_label_subscriptions(
    loop_api: LoopApi, webhook_receiver: WebhookReceiver
) -> None:
    rid = add(loop_api.backend)
    for status, trigger in (("active", "label.updated"), ("inactive", "label.updated")):
        hook = {"topic": "label", "trigger": trigger, "url": webhook_receiver.url, "status": status}
        loop_api.post("/webhooks", json=hook)
    loop_api.backend.set_label_status(rid, "in_transit")
    [delivery] = webhook_receiver.wait_for(1)
    expected = base64.b64encode(
        hmac.new(loop_api.backend.webhook_secret.encode(), delivery.body, hashlib.sha256).digest()
    ).decode()
    assert delivery.headers["X-Loop-Signature"] == expected
    payload = json.loads(delivery.body)
    assert payload["topic"] == "label" and payload["trigger"] == "label.updated"
    assert payload["id"] == rid and payload["label_status"] == "in_transit"
    assert loop_api.backend.webhooks.wait_idle()
    assert len(webhook_receiver.deliveries) == 1  # the inactive subscription got nothing


def test_a_new_label_fires_label_created_not_label_updated(
    loop_api: LoopApi, webhook_receiver: WebhookReceiver
) -> None:
    for trigger in ("label.created", "label.updated"):
        hook = {
            "topic": "label",
            "trigger": trigger,
            "url": webhook_receiver.url,
            "status": "active",
        }
        loop_api.post("/webhooks", json=hook)
    rid = add(loop_api.backend, label_status=None)
    loop_api.backend.set_label_status(rid, "pre_transit")
    assert loop_api.backend.webhooks.wait_idle()
    triggers = [json.loads(d.body)["trigger"] for d in webhook_receiver.wait_for(1)]
    assert triggers == ["label.created"]
