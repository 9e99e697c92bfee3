"""The sandbox's opt-in bad payloads (`sandbox/corruption.py`) touch one record, only on the API."""

from __future__ import annotations

from typing import Any

import requests

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.corruption import (
    HTML_ERROR_PAGE,
    Corruptions,
    chain,
    on_items,
    replace,
    without,
)


def test_a_corruption_applies_to_its_record_only_and_never_to_the_stored_state() -> None:
    corruptions = Corruptions()
    view: dict[str, Any] = {"id": "1", "state": "open", "line_items": [{"sku": "A"}]}
    corruptions.corrupt("1", chain(without("state"), on_items(lambda line: [line, line])))
    assert corruptions.in_list("1", view) == {"id": "1", "line_items": [{"sku": "A"}] * 2}
    assert corruptions.in_list("2", view) is view
    assert view == {"id": "1", "state": "open", "line_items": [{"sku": "A"}]}  # a deep copy
    corruptions.clear("1")
    assert corruptions.alone("1", view) is view


def test_an_html_page_replaces_a_single_record_answer_but_not_a_list_element() -> None:
    corruptions = Corruptions()
    corruptions.corrupt(7, HTML_ERROR_PAGE)
    assert corruptions.alone("7", {"id": 7}) is HTML_ERROR_PAGE
    assert corruptions.in_list(7, {"id": 7}) == {"id": 7}


def test_the_loop_details_endpoint_serves_the_html_page_with_status_200() -> None:
    with Sandbox(seed=1) as sandbox:
        truth = sandbox.seed_day(n=3)
        victim = next(iter(truth.returns))
        sandbox.loop.corrupt(victim, HTML_ERROR_PAGE)
        answer = requests.get(
            f"{sandbox.loop_url}/warehouse/return/details",
            params={"return_id": victim},
            headers={"X-Authorization": sandbox.loop_api_key},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.text.startswith("<!DOCTYPE html>")
        assert sandbox.loop.get(victim)["id"] == victim  # inspection sees the real record


def test_whiplash_serves_the_corrupted_consumer_return_but_keeps_the_real_one() -> None:
    with Sandbox(seed=1) as sandbox:
        item = sandbox.whiplash.add_item("SKU-X")
        created = sandbox.whiplash.create_consumer_return(
            {
                "requires_label": False,
                "reference": "r1",
                "shipnotice_items_attributes": [
                    {
                        "item_id": item["id"],
                        "quantity": 1,
                        "return_action": "refund",
                        "description": "Too small",
                    }
                ],
            }
        )
        sandbox.whiplash.corrupt(created["id"], replace(status="done"))
        token = requests.post(
            f"{sandbox.whiplash_url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.whiplash_client_id,
                "client_secret": sandbox.whiplash_client_secret,
            },
            timeout=10,
        ).json()["access_token"]
        listed = requests.get(
            f"{sandbox.whiplash_url}/api/v2/consumer_returns",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert [row["status"] for row in listed] == ["done"]
        assert sandbox.whiplash.consumer_returns()[0]["status"] == created["status"]
