"""A sandbox serving several merchants (issue 13): one Loop shop each, one Whiplash customer each
in one shared account, isolated from each other over real HTTP; responses still conform to the
vendors' contracts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.connections import merchant_connections, merchants_file
from include.returns_sync.sandbox.merchants import merchant_ids
from include.returns_sync.sandbox.signing import sign_loop, sign_whiplash
from tests.conftest import REPO_ROOT
from tests.sandbox.conftest import WebhookReceiver
from tests.sandbox.test_whiplash_contract import Contract, _assert_conforms, load_contract

ACME, BRAVA = "acme", "brava"


@pytest.fixture(scope="module")
def contract(contracts_dir: Path) -> Contract:
    return load_contract(contracts_dir)


@pytest.fixture
def two() -> Iterator[Sandbox]:
    """Two merchants, lenient, seeded with 12 returns each."""
    with Sandbox(seed=5, merchants=[ACME, BRAVA], strict=False) as sandbox:
        sandbox.seed_day(12)
        yield sandbox


def _loop(sandbox: Sandbox, merchant: str) -> requests.Session:
    session = requests.Session()
    session.headers["X-Authorization"] = sandbox.merchant_keys(merchant)["loop_api_key"]
    return session


def _whiplash(sandbox: Sandbox, customer: int | None = None) -> requests.Session:
    token = requests.post(
        f"{sandbox.whiplash_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.whiplash_client_id,
            "client_secret": sandbox.whiplash_client_secret,
            "scope": "app_manage",
        },
        timeout=5,
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    if customer is not None:
        session.headers["X-Customer-ID"] = str(customer)
    return session


def _customer(sandbox: Sandbox, merchant: str) -> int:
    return int(sandbox.merchant_keys(merchant)["whiplash_customer_id"])


def _rma_body(sandbox: Sandbox, merchant: str, loop_return_id: str) -> dict[str, Any]:
    """A create body for one of `merchant`'s mappable returns, resolved in its customer."""
    truth = sandbox.truth.returns[loop_return_id]
    customer = _customer(sandbox, merchant)
    record = sandbox.shop(merchant).get(loop_return_id)
    order = next(
        o
        for o in sandbox.whiplash.search("orders", None, None, _page())
        if o["customer_id"] == customer
        and o["originator"]["original_id"] == str(record["provider_order_id"])
    )
    lines = []
    for sku, quantity in truth.expected_units.items():
        item = sandbox.whiplash.item_by_sku(sku, customer)
        assert item is not None
        lines.append(
            {
                "item_id": item.id,
                "quantity": quantity,
                "return_action": "refund",
                "description": "x",
            }
        )
    return {
        "order_id": order["id"],
        "requires_label": False,
        "reference": loop_return_id,
        "originator_attributes": {"original_id": loop_return_id},
        "shipnotice_items_attributes": lines,
    }


def _page() -> Any:
    from include.returns_sync.sandbox.whiplash_search import Page

    return Page(1, 10_000)


# ----------------------------------------------------------------------------- the set-up


def test_merchant_ids_default_to_one_named_default_and_a_number_means_m01_to_mnn() -> None:
    assert merchant_ids(None) == ["default"]
    assert merchant_ids(3) == ["m01", "m02", "m03"]
    assert merchant_ids(["acme", "b_2"]) == ["acme", "b_2"]
    for bad in (0, [], ["Acme"], ["a", "a"], "acme", ["x" * 41]):
        with pytest.raises(ValueError, match="merchants"):
            merchant_ids(bad)  # type: ignore[arg-type]


def test_without_merchants_the_one_merchant_keeps_the_single_shop_credentials() -> None:
    sandbox = Sandbox(seed=1)
    assert sandbox.merchants == ["default"]
    assert sandbox.merchant_keys("default") == {
        "loop_api_key": "sandbox-loop-key",
        "loop_webhook_secret": "sandbox-loop-webhook-secret",
        "whiplash_customer_id": 200,
        "loop_shop_id": 65432,
    }
    assert sandbox.shop() is sandbox.loop and not sandbox.whiplash.multi_customer
    with pytest.raises(KeyError, match="unknown merchant 'acme'"):
        sandbox.merchant_keys("acme")


def test_each_merchant_has_its_own_keys_shop_and_customer() -> None:
    sandbox = Sandbox(seed=1, merchants=2)
    keys = [sandbox.merchant_keys(m) for m in sandbox.merchants]
    for name in ("loop_api_key", "loop_webhook_secret", "whiplash_customer_id", "loop_shop_id"):
        assert len({k[name] for k in keys}) == 2, name
    assert sandbox.whiplash.customer_ids == (201, 202)


def test_truth_is_per_merchant_and_order_names_and_skus_repeat_across_merchants(
    two: Sandbox,
) -> None:
    acme, brava = two.truth.for_merchant(ACME), two.truth.for_merchant(BRAVA)
    assert len(acme.returns) == len(brava.returns) == 12
    assert not set(acme.returns) & set(brava.returns)  # Loop return ids are global
    assert two.truth.merchants() == [ACME, BRAVA]
    summary = two.truth.to_dict()["merchants"]
    assert summary[ACME]["needs_rma"] == acme.rma_ids()
    assert {t.whiplash_customer_id for t in acme.returns.values()} == {_customer(two, ACME)}
    names = {
        merchant: {two.shop(merchant).get(rid)["order_name"] for rid in truth.returns}
        for merchant, truth in ((ACME, acme), (BRAVA, brava))
    }
    assert "#1001" in names[ACME] and "#1001" in names[BRAVA]
    skus = [item["sku"] for item in two.whiplash.search("items", None, None, _page())]
    assert len(skus) == 80 and len(set(skus)) == 40
    only_acme = two.seed_day(2, merchant=ACME)
    assert len(only_acme.returns) == 14 and len(two.truth.for_merchant(BRAVA).returns) == 12


# ----------------------------------------------------------------------------- Loop: shops


def test_a_loop_key_sees_only_its_own_shops_returns(two: Sandbox) -> None:
    acme, brava = _loop(two, ACME), _loop(two, BRAVA)
    since = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = acme.get(
        f"{two.loop_url}/warehouse/return/list", params={"from": since}, timeout=5
    ).json()
    mine = two.truth.for_merchant(ACME).returns
    shown = {rid for rid, t in mine.items() if t.state in ("open", "closed", "expired")}
    assert {r["id"] for r in listed} == shown and shown
    brava_id = next(iter(two.truth.for_merchant(BRAVA).returns))
    details = acme.get(
        f"{two.loop_url}/warehouse/return/details", params={"return_id": brava_id}, timeout=5
    )
    assert details.status_code == 404
    own = brava.get(
        f"{two.loop_url}/warehouse/return/details", params={"return_id": brava_id}, timeout=5
    )
    assert own.status_code == 200 and str(own.json()["id"]) == brava_id
    flag = acme.post(f"{two.loop_url}/warehouse/return/{brava_id}/flag", timeout=5)
    assert flag.status_code == 404 and not two.shop(BRAVA).is_flagged(brava_id)
    assert two.shop(BRAVA).actions_for(brava_id) == []
    stranger = requests.get(
        f"{two.loop_url}/warehouse/return/list", headers={"X-Authorization": "nope"}, timeout=5
    )
    assert stranger.status_code == 401


def test_loop_webhooks_go_to_each_shops_subscribers_signed_with_its_secret(
    two: Sandbox, webhook_receiver: WebhookReceiver
) -> None:
    for merchant in (ACME, BRAVA):
        created = _loop(two, merchant).post(
            f"{two.loop_url}/webhooks",
            json={
                "topic": "label",
                "trigger": "label.updated",
                "url": f"{webhook_receiver.url}/{merchant}",
                "status": "active",
            },
            timeout=5,
        )
        assert created.status_code == 201
        assert created.json()["shop_id"] == two.merchant_keys(merchant)["loop_shop_id"]
    listed = _loop(two, ACME).get(f"{two.loop_url}/webhooks", timeout=5).json()["webhooks"]
    assert [w["url"] for w in listed] == [f"{webhook_receiver.url}/{ACME}"]

    moved = two.advance_labels(merchant=ACME)
    deliveries = webhook_receiver.wait_for(moved)
    time.sleep(0.2)  # nothing else may arrive
    assert moved and len(webhook_receiver.deliveries) == moved
    secret = two.merchant_keys(ACME)["loop_webhook_secret"]
    other = two.merchant_keys(BRAVA)["loop_webhook_secret"]
    for delivery in deliveries:
        assert delivery.path.endswith(f"/{ACME}")
        assert delivery.headers["X-Loop-Signature"] == sign_loop(secret, delivery.body)
        assert delivery.headers["X-Loop-Signature"] != sign_loop(other, delivery.body)
        payload = json.loads(delivery.body)
        assert payload["shop_id"] == str(two.merchant_keys(ACME)["loop_shop_id"])
        assert payload["id"] in two.truth.for_merchant(ACME).returns


def test_loops_rate_limit_is_per_api_key(two: Sandbox) -> None:
    two.loop_rate_limit(ACME).storm(5)
    url = f"{two.loop_url}/warehouse/return/list"
    assert _loop(two, ACME).get(url, timeout=5).status_code == 429
    assert _loop(two, BRAVA).get(url, timeout=5).status_code == 200
    two.set_rate_limits(False)  # resets every key's limiter, the storm included
    assert _loop(two, ACME).get(url, timeout=5).status_code == 200


# ----------------------------------------------------------------------------- Whiplash: customers


def test_x_customer_id_scopes_items_orders_and_lookups(two: Sandbox, contract: Contract) -> None:
    acme, brava = _customer(two, ACME), _customer(two, BRAVA)
    sku = two.whiplash.search("items", None, None, _page())[0]["sku"]
    search = {"search": json.dumps({"sku_eq": sku})}
    everyone = _whiplash(two).get(f"{two.whiplash_url}/api/v2/items", params=search, timeout=5)
    assert sorted(i["customer_id"] for i in everyone.json()) == [acme, brava]  # a 3PL user
    scoped = _whiplash(two, acme)
    mine = scoped.get(f"{two.whiplash_url}/api/v2/items", params=search, timeout=5).json()
    assert [i["customer_id"] for i in mine] == [acme]
    orders = scoped.get(
        f"{two.whiplash_url}/api/v2/orders",
        params={"search": json.dumps({"order_orig_eq": "#1001"})},
        timeout=5,
    ).json()
    assert [o["customer_id"] for o in orders] == [acme]
    count = scoped.get(f"{two.whiplash_url}/api/v2/items/count", timeout=5).json()
    assert count == {"count": 40}
    theirs = next(i for i in everyone.json() if i["customer_id"] == brava)
    hidden = scoped.get(f"{two.whiplash_url}/api/v2/items/{theirs['id']}", timeout=5)
    assert hidden.status_code == 404
    unknown = _whiplash(two, 999).get(f"{two.whiplash_url}/api/v2/items", timeout=5)
    assert unknown.status_code == 403 and "999" in unknown.json()["message"]
    _assert_conforms(contract, [everyone, unknown])


def test_a_consumer_return_belongs_to_the_customer_it_was_created_for(
    two: Sandbox, contract: Contract
) -> None:
    rid = two.truth.for_merchant(ACME).rma_ids()[0]
    acme, brava = _customer(two, ACME), _customer(two, BRAVA)
    url = f"{two.whiplash_url}/api/v2/consumer_returns"
    as_acme, as_brava = _whiplash(two, acme), _whiplash(two, brava)
    exchanges: list[requests.Response] = []
    for session in (as_acme, as_brava):
        session.hooks["response"].append(lambda r, *a, **k: exchanges.append(r))

    created = as_acme.post(url, json=_rma_body(two, ACME, rid), timeout=5)
    assert created.status_code == 201 and created.json()["customer_id"] == acme
    again = as_acme.post(url, json=_rma_body(two, ACME, rid), timeout=5)
    assert again.status_code == 409  # per customer and provider
    # The same originator id is free for another customer (its own order and items).
    brava_rid = two.truth.for_merchant(BRAVA).rma_ids()[0]
    body = {**_rma_body(two, BRAVA, brava_rid), "originator_attributes": {"original_id": rid}}
    assert as_brava.post(url, json=body, timeout=5).status_code == 201
    # Another customer's order or items do not exist for this one.
    crossed = as_brava.post(url, json=_rma_body(two, ACME, rid), timeout=5)
    assert crossed.status_code == 422 and "does not exist" in crossed.json()["message"]

    search = {"search": json.dumps({"originator_original_id_eq": rid})}
    mine = as_acme.get(url, params=search, timeout=5).json()
    assert [r["customer_id"] for r in mine] == [acme]
    assert as_brava.get(f"{url}/{created.json()['id']}", timeout=5).status_code == 404
    both = _whiplash(two).get(url, params=search, timeout=5).json()
    assert sorted(r["customer_id"] for r in both) == [acme, brava]
    assert two.whiplash.creates_count(rid) == 2 and two.whiplash.creates_count(rid, acme) == 1
    _assert_conforms(contract, [r for r in exchanges if r.status_code in (200, 201, 409, 422)])


def test_without_the_header_a_return_belongs_to_its_orders_customer_and_never_mixes(
    two: Sandbox,
) -> None:
    rid = two.truth.for_merchant(BRAVA).rma_ids()[0]
    url = f"{two.whiplash_url}/api/v2/consumer_returns"
    created = _whiplash(two).post(url, json=_rma_body(two, BRAVA, rid), timeout=5)
    assert created.status_code == 201 and created.json()["customer_id"] == _customer(two, BRAVA)
    mixed = _rma_body(two, BRAVA, two.truth.for_merchant(BRAVA).rma_ids()[1])
    other_item = two.whiplash.item_by_sku(two._catalog[0][0], _customer(two, ACME))
    assert other_item is not None
    mixed["shipnotice_items_attributes"].append(
        {"item_id": other_item.id, "quantity": 1, "return_action": "refund", "description": "x"}
    )
    refused = _whiplash(two).post(url, json=mixed, timeout=5)
    assert refused.status_code == 422 and "another customer" in refused.json()["message"]


def test_strict_requires_x_customer_id_on_writes_when_the_account_has_several_customers() -> None:
    with Sandbox(seed=2, merchants=2, strict=True) as sandbox:
        sandbox.seed_day(6)
        rid = sandbox.truth.for_merchant("m01").rma_ids()[0]
        url = f"{sandbox.whiplash_url}/api/v2/consumer_returns"
        body = _rma_body(sandbox, "m01", rid)
        unscoped = _whiplash(sandbox).post(url, json=body, timeout=5)
        assert unscoped.status_code == 422 and "X-Customer-ID" in unscoped.json()["message"]
        assert _whiplash(sandbox).get(url, timeout=5).status_code == 200  # reads stay open
        scoped = _whiplash(sandbox, _customer(sandbox, "m01")).post(url, json=body, timeout=5)
        assert scoped.status_code == 201


def test_consumer_return_webhooks_carry_the_customer_and_reach_only_its_subscribers(
    two: Sandbox, webhook_receiver: WebhookReceiver, contract: Contract
) -> None:
    acme, brava = _customer(two, ACME), _customer(two, BRAVA)
    events = _whiplash(two).get(f"{two.whiplash_url}/api/v2/notification_events", timeout=5)
    created_event = next(e["id"] for e in events.json() if e["name"] == "consumer_return.created")
    subs = f"{two.whiplash_url}/api/v2/notification_subscriptions"

    def subscribe(session: requests.Session, path: str, **extra: Any) -> dict[str, Any]:
        answer = session.post(
            subs,
            json={
                "notification_event_id": created_event,
                "notification_type": "webhook",
                "endpoint": f"{webhook_receiver.url}/{path}",
                **extra,
            },
            timeout=5,
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    assert subscribe(_whiplash(two, acme), ACME)["customer_id"] == acme  # from the header
    assert subscribe(_whiplash(two), BRAVA, customer_id=brava)["customer_id"] == brava  # body
    assert subscribe(_whiplash(two), "all")["customer_id"] is None  # the 3PL's, every customer
    crossed = _whiplash(two, acme).post(
        subs, json={"notification_event_id": created_event, "endpoint": "http://x/y",
                    "customer_id": brava}, timeout=5,
    )  # fmt: skip
    assert crossed.status_code == 403
    listed = _whiplash(two, brava).get(subs, timeout=5).json()
    assert [s["customer_id"] for s in listed] == [brava]

    rid = two.truth.for_merchant(ACME).rma_ids()[0]
    url = f"{two.whiplash_url}/api/v2/consumer_returns"
    assert _whiplash(two, acme).post(url, json=_rma_body(two, ACME, rid), timeout=5).ok
    deliveries = webhook_receiver.wait_for(2)
    time.sleep(0.2)  # brava's endpoint must stay silent
    assert sorted(d.path.rsplit("/", 1)[1] for d in webhook_receiver.deliveries) == [ACME, "all"]
    for delivery in deliveries:
        payload = json.loads(delivery.body)
        assert payload["consumer_return"]["customer_id"] == acme
        assert (
            contract.entity_errors("ApiV2EntitiesConsumerReturn", payload["consumer_return"]) == []
        )
        signature = sign_whiplash(two.whiplash_client_secret, delivery.body)
        assert delivery.headers["X-WHIPLASH-SIGNATURE"] == signature


def test_whiplashs_rate_limit_is_one_per_account_shared_by_its_customers(two: Sandbox) -> None:
    sessions = [_whiplash(two, _customer(two, m)) for m in (ACME, BRAVA)]
    two.set_rate_limits(True, "whiplash")
    url = f"{two.whiplash_url}/api/v2/items/count"
    statuses = [sessions[i % 2].get(url, timeout=5).status_code for i in range(12)]
    assert statuses.count(200) == 10 and statuses.count(429) == 2


# ----------------------------------------------------------------------------- scenarios, admin


def test_receive_packages_follows_each_merchants_shop_and_skips_misfiled_rmas(two: Sandbox) -> None:
    url = f"{two.whiplash_url}/api/v2/consumer_returns"
    acme_rid = two.truth.for_merchant(ACME).rma_ids()[0]
    brava_rids = two.truth.for_merchant(BRAVA).rma_ids()[:2]
    _whiplash(two, _customer(two, ACME)).post(url, json=_rma_body(two, ACME, acme_rid), timeout=5)
    for rid in brava_rids[:1]:
        _whiplash(two, _customer(two, BRAVA)).post(url, json=_rma_body(two, BRAVA, rid), timeout=5)
    # A pipeline that crossed merchants: brava's Loop return filed under acme's customer.
    misfiled = {**_rma_body(two, ACME, acme_rid), "reference": brava_rids[1]}
    misfiled["originator_attributes"] = {"original_id": brava_rids[1]}
    wrong = _whiplash(two, _customer(two, ACME)).post(url, json=misfiled, timeout=5).json()
    assert two.truth.misfiled(two.whiplash.consumer_returns()) == [wrong["id"]]

    received = two.receive_packages(mix={"exact": 1.0})
    assert len(received) == 2 and wrong["id"] not in received
    assert set(two.truth.for_merchant(ACME).verdicts()) == {acme_rid}
    assert set(two.truth.for_merchant(BRAVA).verdicts()) == {brava_rids[0]}


def test_the_admin_api_lists_merchants_and_scopes_scenarios_and_truth(two: Sandbox) -> None:
    admin = f"{two.loop_host_url}/_sandbox"
    keys = requests.get(f"{admin}/merchants", timeout=5).json()
    assert keys == {m: two.merchant_keys(m) for m in (ACME, BRAVA)}
    seeded = requests.post(f"{admin}/seed", json={"n": 3, "merchant": BRAVA}, timeout=5).json()
    assert seeded["seeded"] == 3
    truth = requests.get(f"{admin}/truth", params={"merchant": BRAVA}, timeout=5).json()
    assert set(seeded["return_ids"]) < set(truth["returns"]) and len(truth["returns"]) == 15
    assert list(truth["merchants"]) == [BRAVA]
    bad = requests.post(f"{admin}/seed", json={"n": 1, "merchant": "zed"}, timeout=5)
    assert bad.status_code == 400 and "zed" in bad.json()["error"]
    moved = requests.post(f"{admin}/advance-labels", json={"merchant": ACME}, timeout=5).json()
    assert moved["moved"] > 0
    actions = requests.get(f"{admin}/loop/actions", params={"merchant": BRAVA}, timeout=5)
    assert actions.json() == {"actions": []}


def test_connections_and_the_merchants_file_point_each_merchant_at_its_shop(two: Sandbox) -> None:
    env = merchant_connections(two)
    assert set(env) == {
        "AIRFLOW_CONN_WHIPLASH_DEFAULT",
        "AIRFLOW_CONN_LOOP_ACME",
        "AIRFLOW_CONN_LOOP_BRAVA",
    }
    acme = json.loads(env["AIRFLOW_CONN_LOOP_ACME"])
    assert acme["password"] == two.merchant_keys(ACME)["loop_api_key"]
    assert acme["extra"]["webhook_secret"] == two.merchant_keys(ACME)["loop_webhook_secret"]
    assert merchants_file(two)["merchants"][1] == {
        "id": BRAVA,
        "loop_conn_id": "loop_brava",
        "whiplash_conn_id": "whiplash_default",
        "whiplash_customer_id": _customer(two, BRAVA),
    }


def test_the_command_line_serves_n_merchants_and_writes_their_keys(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.json"
    command = [
        sys.executable, "-m", "include.returns_sync.sandbox", "--merchants", "3",
        "--loop-port", "0", "--whiplash-port", "0", "--seed-day", "2",
        "--urls-file", str(urls_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not urls_file.exists() and time.monotonic() < deadline:
            assert process.poll() is None, "the sandbox exited early"
            time.sleep(0.05)
        urls = json.loads(urls_file.read_text())
        assert list(urls["merchants"]) == ["m01", "m02", "m03"]
        assert urls["loop_api_key"] == urls["merchants"]["m01"]["loop_api_key"]
        m03 = urls["merchants"]["m03"]
        listed = requests.get(
            f"{urls['loop_url']}/warehouse/return/list",
            headers={"X-Authorization": m03["loop_api_key"]},
            timeout=5,
        )
        assert listed.status_code == 200 and len(listed.json()) <= 2
        assert set(merchant_connections(urls)) >= {"AIRFLOW_CONN_LOOP_M03"}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_return_nobody_created_is_in_the_truth_of_the_merchant_whose_customer_it_is(
    two: Sandbox,
) -> None:
    unknown = two.seed_unknown_return(merchant=BRAVA)
    record = two.whiplash.get_consumer_return(unknown)
    assert record["customer_id"] == _customer(two, BRAVA) and record["status"] == 300
    assert record["originator"]["original_id"] is None
    assert two.truth.for_merchant(BRAVA).unknown == {unknown: BRAVA}
    assert two.truth.for_merchant(ACME).unknown == {}
    assert two.truth.to_dict()["merchants"][BRAVA]["unknown_returns"] == {str(unknown): BRAVA}
    assert unknown not in two.receive_packages()  # nobody ships it: it has arrived already
    hidden = _whiplash(two, _customer(two, ACME)).get(
        f"{two.whiplash_url}/api/v2/consumer_returns/{unknown}", timeout=5
    )
    assert hidden.status_code == 404
