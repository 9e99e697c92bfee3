"""WhiplashHook against the Whiplash sandbox over real HTTP: RMAs, look-ups, OAuth, faults."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from include.returns_sync.clients import policy
from include.returns_sync.clients.errors import (
    AmbiguousWriteError,
    CredentialsUnavailable,
    VendorAuthError,
    VendorBadResponse,
    VendorConflict,
    VendorValidationError,
)
from include.returns_sync.clients.limiter import ProcessLimiter
from include.returns_sync.clients.oauth import (
    InMemoryTokenStore,
    StateStoreTokenStore,
    reset_token_cache,
)
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.state import StateStore
from tests.clients.conftest import (
    FAST_TIMEOUT,
    Canned,
    CannedServer,
    SleepRecorder,
    set_connection,
    zero_wait,
)
from tests.support.clock import FakeBucketTime


def make_hook(
    max_attempts: int = 4, sleep: SleepRecorder | None = None, **kwargs: Any
) -> WhiplashHook:
    kwargs.setdefault("rate_limit_per_second", 0)
    kwargs.setdefault("timeout", FAST_TIMEOUT)
    return WhiplashHook(retry_policy=zero_wait(max_attempts, sleep), **kwargs)


def use_refresh_token(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="http",
        host=sandbox.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
        extra={"refresh_token": token},
    )


class Catalog:
    """A few items and orders in the Whiplash sandbox, and RMA payloads built on them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.backend = sandbox.whiplash
        self.items = [self.backend.add_item(f"SKU-{n}", f"Item {n}", "10.00") for n in range(3)]
        self.order = self.backend.add_order("5400000001", "#1001", [("SKU-0", 2), ("SKU-1", 1)])

    def payload(self, loop_id: str, *, originator: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "order_id": self.order["id"],
            "requires_label": False,
            "reference": loop_id,
            "shipnotice_items_attributes": [
                {
                    "item_id": self.items[0]["id"],
                    "quantity": 1,
                    "return_action": "refund",
                    "description": "Too small",
                    "originator_attributes": {"original_id": f"li-{loop_id}"},
                }
            ],
        }
        if originator:
            body["originator_attributes"] = {"original_id": loop_id, "group_id": "shop"}
        return body


@pytest.fixture
def catalog(whiplash_connection: Sandbox) -> Catalog:
    return Catalog(whiplash_connection)


# --------------------------------------------------------------------------- RMAs


def test_rmas_are_found_by_loop_id_in_batches_via_originator_or_reference(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    for n in range(11):
        catalog.backend.create_consumer_return(catalog.payload(f"4800{n:04d}"))
    catalog.backend.create_consumer_return(catalog.payload("48009999", originator=False))
    wanted = [f"4800{n:04d}" for n in range(11)] + ["48009999", "48007777", "48008888"]
    hook = make_hook(search_batch_size=5)

    found = hook.find_consumer_returns_by_loop_ids(wanted)

    assert set(found) == set(wanted) - {"48007777", "48008888"}
    by_reference = found["48009999"]
    assert by_reference.reference == "48009999"
    assert by_reference.originator is None or by_reference.originator.original_id is None
    assert all(rma.loop_return_id == loop_id for loop_id, rma in found.items())
    assert hook.calls["find_consumer_returns"] == 6  # 3 batches, each ends on an empty page


def test_a_created_rma_is_returned_typed_and_a_second_create_conflicts(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    rma = hook.create_consumer_return(catalog.payload("48000001"))
    assert rma.loop_return_id == "48000001" and rma.id > 0
    with pytest.raises(VendorConflict) as raised:
        hook.create_consumer_return(catalog.payload("48000001"))
    assert raised.value.status == 409
    assert hook.get_consumer_return(rma.id).reference == "48000001"


def test_a_create_whose_answer_is_lost_is_ambiguous_and_exactly_one_rma_exists(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    hook.oauth.bearer_token()  # the token request is not the write under test
    whiplash_connection.set_faults(FaultConfig(after_commit_rate=1.0, seed=2), vendor="whiplash")
    with pytest.raises(AmbiguousWriteError):
        hook.create_consumer_return(catalog.payload("48000002"))
    whiplash_connection.set_faults(FaultConfig(), vendor="whiplash")
    assert catalog.backend.creates_count("48000002") == 1
    assert hook.http_requests["create_consumer_return"] == 1
    assert "48000002" in hook.find_consumer_returns_by_loop_ids(["48000002"])


def test_a_5xx_on_create_is_ambiguous_and_not_resent(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    hook.oauth.bearer_token()
    whiplash_connection.set_faults(FaultConfig(rate=1.0, kinds=("502",)), vendor="whiplash")
    with pytest.raises(AmbiguousWriteError):
        hook.create_consumer_return(catalog.payload("48000003"))
    assert hook.http_requests["create_consumer_return"] == 1
    assert catalog.backend.creates_count("48000003") == 0


def test_a_rate_limited_create_honours_retry_after_and_is_created_once(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook_sleep = SleepRecorder(
        after=2, then=lambda: whiplash_connection.set_faults(FaultConfig(), vendor="whiplash")
    )
    hook = make_hook(sleep=hook_sleep)
    hook.oauth.bearer_token()
    whiplash_connection.set_faults(FaultConfig(rate=1.0, kinds=("429",)), vendor="whiplash")
    rma = hook.create_consumer_return(catalog.payload("48000004"))
    assert hook_sleep.waits == [1.0, 1.0], "the sandbox answers 429 with Retry-After: 1"
    assert catalog.backend.creates_count("48000004") == 1 and rma.reference == "48000004"


def test_an_invalid_rma_is_a_validation_error_naming_the_field(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    payload = catalog.payload("48000005")
    payload["shipnotice_items_attributes"][0]["item_id"] = 999_999
    with pytest.raises(VendorValidationError, match="item_id"):
        make_hook().create_consumer_return(payload)


def test_a_payload_without_items_is_refused_before_sending(whiplash_connection: Sandbox) -> None:
    hook = make_hook()
    with pytest.raises(ValueError, match="shipnotice_items_attributes"):
        hook.create_consumer_return({"requires_label": False, "shipnotice_items_attributes": []})
    assert hook.http_requests == {}


def test_rmas_are_listed_page_by_page_oldest_change_first(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    created = []
    for n in range(23):
        created.append(catalog.backend.create_consumer_return(catalog.payload(f"4810{n:04d}")))
        whiplash_connection.clock.advance(timedelta(seconds=1))
    hook = make_hook()

    listed = list(hook.list_consumer_returns(per_page=5))

    assert [rma.id for rma in listed] == [rma["id"] for rma in created]
    assert hook.calls["list_consumer_returns"] >= 5
    stamps = [rma.updated_at for rma in listed if rma.updated_at is not None]
    assert len(stamps) == len(listed) and stamps == sorted(stamps)


def test_listing_narrows_by_updated_since_status_and_ids(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    created = []
    for n in range(6):
        created.append(catalog.backend.create_consumer_return(catalog.payload(f"4820{n:04d}")))
        whiplash_connection.clock.advance(timedelta(seconds=10))
    catalog.backend.simulate_processing(created[1]["id"], True)
    hook = make_hook()
    since = hook.get_consumer_return(created[3]["id"]).updated_at
    assert since is not None

    recent = {rma.id for rma in hook.list_consumer_returns(updated_since=since, per_page=2)}
    completed = {rma.id for rma in hook.list_consumer_returns(statuses=[300])}
    chosen = {
        rma.id for rma in hook.list_consumer_returns(ids=[created[0]["id"], created[5]["id"]])
    }

    assert {created[n]["id"] for n in (3, 4, 5)} <= recent
    assert created[0]["id"] not in recent and created[2]["id"] not in recent
    assert completed == {created[1]["id"]}
    assert chosen == {created[0]["id"], created[5]["id"]}
    assert list(hook.list_consumer_returns(ids=[])) == []


# --------------------------------------------------------------------------- paging


def test_a_silently_capped_list_is_walked_to_the_end_for_one_extra_call(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    """Strict Whiplash serves 50 of the 100 we ask for and sends no page-size header."""
    whiplash_connection.set_strict(True)
    whiplash_connection.clock.set(whiplash_connection.clock.now())
    created = []
    for n in range(120):
        created.append(catalog.backend.create_consumer_return(catalog.payload(f"4830{n:04d}")))
        if n % 7 == 0:  # ties and distinct instants both
            whiplash_connection.clock.advance(timedelta(seconds=1))
    hook = make_hook()

    listed = [rma.id for rma in hook.list_consumer_returns(per_page=100)]

    assert listed == [rma["id"] for rma in created]
    assert hook.calls["list_consumer_returns"] == 4  # 50 + 50 + 20 + the empty answer


def test_a_silently_capped_search_finds_every_match(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    whiplash_connection.set_strict(True)
    skus = [f"CAP-{n:03d}" for n in range(80)]
    for sku in skus:
        catalog.backend.add_item(sku)
    hook = make_hook(search_batch_size=100)

    found = hook.find_items_by_sku(skus)

    assert sorted(found) == skus
    assert hook.calls["find_items"] == 3  # 50 + 30 + the empty page


def test_lookups_cost_one_call_per_batch_plus_one(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    assert hook.find_orders_by_name(["#1001"])
    assert hook.calls["find_orders"] == 2


@pytest.mark.parametrize("predicate", ["updated_at_gteq", "id_not_in"])
def test_an_ignored_keyset_predicate_is_a_clear_error_not_a_loop(
    whiplash_connection: Sandbox, catalog: Catalog, predicate: str
) -> None:
    whiplash_connection.clock.set(whiplash_connection.clock.now())
    for n in range(9):
        catalog.backend.create_consumer_return(catalog.payload(f"4840{n:04d}"))
        if predicate == "updated_at_gteq":
            whiplash_connection.clock.advance(timedelta(seconds=1))
    catalog.backend.ignored_predicates = {predicate}
    hook = make_hook()

    with pytest.raises(VendorBadResponse, match=f"ignored the search predicate '{predicate}'"):
        list(hook.list_consumer_returns(per_page=3))
    assert hook.calls["list_consumer_returns"] <= 4


@pytest.mark.parametrize("predicate", ["id_in", "status_in"])
def test_an_ignored_narrowing_predicate_is_a_clear_error_not_the_whole_list(
    whiplash_connection: Sandbox, catalog: Catalog, predicate: str
) -> None:
    created = [
        catalog.backend.create_consumer_return(catalog.payload(f"4860{n:04d}")) for n in range(4)
    ]
    catalog.backend.simulate_processing(created[2]["id"], True)
    catalog.backend.ignored_predicates = {predicate}
    hook = make_hook()
    narrowed = (
        hook.list_consumer_returns(ids=[created[2]["id"]])
        if predicate == "id_in"
        else hook.list_consumer_returns(statuses=[300])
    )

    with pytest.raises(VendorBadResponse, match=f"ignored the search predicate '{predicate}'"):
        list(narrowed)


def test_an_ignored_id_gt_in_a_long_tie_is_a_clear_error_not_a_loop(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    whiplash_connection.clock.set(whiplash_connection.clock.now())
    for n in range(60):  # more records at one instant than one id_not_in may exclude
        catalog.backend.create_consumer_return(catalog.payload(f"4850{n:04d}"))
    hook = make_hook()
    assert len(list(hook.list_consumer_returns(per_page=25))) == 60
    catalog.backend.ignored_predicates = {"id_gt"}

    with pytest.raises(VendorBadResponse, match="ignored the search predicate 'id_gt'"):
        list(hook.list_consumer_returns(per_page=25))


def test_a_server_that_ignores_page_is_a_clear_error_not_a_loop(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="http",
        host=canned.url,
        login="cid",
        password="secret",
    )
    canned.answer(
        Canned(200, b'{"access_token": "t", "token_type": "bearer", "expires_in": 7200}'),
        Canned(200, b'[{"id": 1001, "sku": "SKU-0"}, {"id": 1002, "sku": "SKU-1"}]'),
    )
    hook = make_hook()

    with pytest.raises(VendorBadResponse, match="ignores the 'page' parameter"):
        hook.find_items_by_sku(["SKU-0", "SKU-1"])
    assert hook.calls["find_items"] == 2


# --------------------------------------------------------------------------- items and orders


def test_items_are_found_by_sku_keyed_as_whiplash_returns_them(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook(search_batch_size=2)
    found = hook.find_items_by_sku(["SKU-0", "SKU-1", "SKU-2", "NOPE", "SKU-0"])
    assert {sku: item.id for sku, item in found.items()} == {
        item["sku"]: item["id"] for item in catalog.items
    }
    assert hook.calls["find_items"] == 4  # 2 batches, each ends on an empty page


def test_orders_are_found_by_shop_order_id_and_by_name(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    by_originator = hook.find_orders_by_originator(["5400000001", "5400000999"])
    by_name = hook.find_orders_by_name(["#1001", "#9999"])
    assert list(by_originator) == ["5400000001"] and list(by_name) == ["#1001"]
    assert by_originator["5400000001"].id == by_name["#1001"].id == catalog.order["id"]


# --------------------------------------------------------------------------- notifications


def test_webhook_subscriptions_are_created_and_listed(whiplash_connection: Sandbox) -> None:
    hook = make_hook()
    events = {event["name"]: event["id"] for event in hook.notification_events()}
    assert "consumer_return.completed" in events
    created = hook.create_notification_subscription(
        events["consumer_return.completed"], "https://example.com/whiplash"
    )
    listed = hook.list_notification_subscriptions()
    assert [sub["id"] for sub in listed] == [created["id"]]
    assert listed[0]["endpoint"] == "https://example.com/whiplash"


# --------------------------------------------------------------------------- OAuth


def test_hook_instances_share_one_client_credentials_token(whiplash_connection: Sandbox) -> None:
    hooks = [make_hook() for _ in range(6)]
    errors: list[BaseException] = []

    def use(hook: WhiplashHook) -> None:
        try:
            hook.notification_events()
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=use, args=(hook,)) for hook in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert whiplash_connection.whiplash.tokens.grants == ["client_credentials"]


def test_a_token_is_renewed_before_it_expires(whiplash_connection: Sandbox) -> None:
    now = [0.0]
    hook = make_hook(clock=lambda: now[0])
    hook.notification_events()
    now[0] += 7200 - 59  # inside the 60 s margin
    whiplash_connection.clock.advance(timedelta(seconds=7200 - 59))
    hook.notification_events()
    assert whiplash_connection.whiplash.tokens.grants == ["client_credentials"] * 2
    assert "401" not in whiplash_connection.stats()["whiplash"]["statuses"]


def test_a_token_the_server_expired_early_is_renewed_once_on_401(
    whiplash_connection: Sandbox,
) -> None:
    hook = make_hook()
    hook.notification_events()
    whiplash_connection.clock.advance(timedelta(hours=3))
    assert hook.notification_events()
    assert whiplash_connection.whiplash.tokens.grants == ["client_credentials"] * 2
    assert whiplash_connection.stats()["whiplash"]["statuses"]["401"] == 1
    assert hook.calls["notification_events"] == 4  # twice: one page and the empty one


def test_a_revoked_token_is_renewed_once_and_the_create_still_happens_once(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    hook = make_hook()
    hook.notification_events()
    catalog.backend.revoke_all_tokens()
    rma = hook.create_consumer_return(catalog.payload("48000006"))
    assert rma.reference == "48000006" and catalog.backend.creates_count("48000006") == 1
    assert hook.http_requests["create_consumer_return"] == 2, "the 401 attempt, then the real one"


def test_a_rotated_refresh_token_is_persisted_and_preferred_by_the_next_process(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_refresh_token(whiplash_connection, monkeypatch, "sandbox-refresh-0")
    store = InMemoryTokenStore()
    make_hook(token_store=store).notification_events()
    rotated = store.load("whiplash_default")
    assert rotated and rotated != "sandbox-refresh-0"
    assert rotated == whiplash_connection.whiplash.current_refresh_token

    reset_token_cache()  # a new worker process: nothing cached, the connection is stale
    make_hook(token_store=store).notification_events()
    assert whiplash_connection.whiplash.tokens.grants == ["refresh_token", "refresh_token"]
    assert store.load("whiplash_default") == whiplash_connection.whiplash.current_refresh_token

    reset_token_cache()  # a process without the store would present the spent token
    with pytest.raises(VendorAuthError) as raised:
        make_hook().notification_events()
    assert "re-authorize" in str(raised.value)
    assert "sandbox-refresh-0" not in str(raised.value)


def test_the_state_store_keeps_the_rotated_token_encrypted(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_refresh_token(whiplash_connection, monkeypatch, "sandbox-refresh-0")
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    try:
        key = Fernet.generate_key().decode()
        first = make_hook(token_store=StateStoreTokenStore(store, key))
        first.notification_events()
        access = first.oauth.bearer_token()
        reset_token_cache()  # a new process adopts the stored access token: no second refresh
        second = make_hook(token_store=StateStoreTokenStore(store, key))
        second.notification_events()
        assert second.oauth.bearer_token() == access
        assert whiplash_connection.whiplash.tokens.grants == ["refresh_token"]
        store.engine.dispose()  # checkpoint-free read of the file: close pooled connections
        raw = (tmp_path / "state.db").read_bytes() + _wal(tmp_path / "state.db")
        current = whiplash_connection.whiplash.current_refresh_token
        assert current is not None and current.encode() not in raw
        assert access.encode() not in raw
    finally:
        store.dispose()


def test_a_wrong_secret_is_a_clear_auth_error_and_no_api_call_is_made(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch, catalog: Catalog
) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=whiplash_connection.whiplash_url,
        login="sandbox-client",
        password="not-the-secret",
    )
    hook = make_hook()
    with pytest.raises(VendorAuthError) as raised:
        hook.create_consumer_return(catalog.payload("48000007"))
    text = str(raised.value)
    assert "'whiplash_default'" in text and "client secret" in text and "invalid_client" in text
    assert "not-the-secret" not in text
    assert hook.http_requests == {"oauth_token": 1}
    ok, message = make_hook().test_connection()
    assert not ok and "not-the-secret" not in message


def test_a_token_endpoint_that_keeps_failing_leaves_the_create_unsent(
    whiplash_connection: Sandbox, catalog: Catalog
) -> None:
    whiplash_connection.set_faults(FaultConfig(rate=1.0, kinds=("503",)), vendor="whiplash")
    hook = make_hook(max_attempts=2)
    with pytest.raises(CredentialsUnavailable) as raised:
        hook.create_consumer_return(catalog.payload("48000008"))
    assert raised.value.provably_not_applied
    assert hook.http_requests == {"oauth_token": 2}


def test_a_connection_without_client_id_says_so(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=whiplash_connection.whiplash_url,
        password="sandbox-secret",
    )
    with pytest.raises(ValueError, match="login \\(client id\\)"):
        make_hook().notification_events()


def test_customer_and_shop_ids_travel_as_headers(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=whiplash_connection.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
        extra={"customer_id": 77, "shop_id": "88", "webhook_secret": "whsec"},
    )
    make_hook().notification_events()
    assert whiplash_connection.whiplash.last_customer_id == "77"
    assert whiplash_connection.whiplash.last_shop_id == "88"


def test_the_hooks_customer_id_goes_on_every_api_call_and_never_on_the_token_request(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merchant's customer id (hook argument) wins over the connection's extra, on every API
    call including a retry with a renewed token; the shared token request carries none."""
    keys = getattr(whiplash_connection, "merchant_keys", None)
    customer = int(keys("default")["whiplash_customer_id"] or 4711) if keys else 4711
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=whiplash_connection.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
        extra={"customer_id": 77},
    )
    catalog = Catalog(whiplash_connection)
    hook = make_hook(customer_id=customer)
    sent: list[Any] = []
    hook.get_conn().hooks["response"].append(lambda response, **_: sent.append(response.request))
    hook.find_items_by_sku([item["sku"] for item in catalog.items])
    hook.find_orders_by_name(["#1001"])
    hook.find_consumer_returns_by_loop_ids(["L-1", "L-2"])
    hook.list_notification_subscriptions()
    whiplash_connection.whiplash.revoke_all_tokens()  # the next call meets a 401 first
    hook.notification_events()
    token_requests = [r for r in sent if r.path_url.startswith("/oauth/token")]
    api_calls = [r for r in sent if r.path_url.startswith("/api/v2/")]
    assert len(token_requests) == 2 and len(api_calls) >= 6 and len(sent) == len(api_calls) + 2
    assert {r.headers.get("X-Customer-ID") for r in api_calls} == {str(customer)}
    assert all("X-Customer-ID" not in r.headers for r in token_requests)


def test_test_connection_reports_success_with_the_host(whiplash_connection: Sandbox) -> None:
    ok, message = make_hook().test_connection()
    assert ok and whiplash_connection.whiplash_url in message


# --------------------------------------------------------------------------- faults and throttle


def test_a_read_survives_timeouts_and_an_html_storm(whiplash_connection: Sandbox) -> None:
    hook = make_hook(timeout=(0.5, 0.3))
    hook.oauth.bearer_token()
    whiplash_connection.set_faults(
        FaultConfig(rate=1.0, kinds=("timeout", "html"), timeout_seconds=1.0, seed=5),
        vendor="whiplash",
    )
    recorder = SleepRecorder(
        after=2, then=lambda: whiplash_connection.set_faults(FaultConfig(), vendor="whiplash")
    )
    hook.retry_policy = zero_wait(4, recorder)
    assert hook.notification_events()
    assert hook.http_requests["notification_events"] == 4  # 2 faults, the page, the empty page


def test_an_html_page_instead_of_json_ends_as_a_bad_response(whiplash_connection: Sandbox) -> None:
    hook = make_hook(max_attempts=2)
    hook.oauth.bearer_token()
    whiplash_connection.set_faults(FaultConfig(rate=1.0, kinds=("html",)), vendor="whiplash")
    with pytest.raises(VendorBadResponse, match=r"HTML page .*502.*text/html"):
        hook.list_notification_subscriptions()


def test_malformed_json_from_whiplash_is_a_bad_response(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=canned.url,
        login="c",
        password="s",
    )
    canned.answer(
        Canned(200, b'{"access_token": "t", "token_type": "bearer", "expires_in": 60}'),
        Canned(200, b'[{"id": 1, "sku": "A"'),
    )
    with pytest.raises(VendorBadResponse, match="malformed JSON"):
        make_hook().find_items_by_sku(["A"])
    token_request, search = canned.seen
    assert token_request.path == "/oauth/token" and search.headers["Authorization"] == "Bearer t"


def test_the_default_throttle_keeps_a_burst_under_whiplash_rate_limit(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's limiter counts real seconds: the bucket sleeps for real, on a fake clock
    # that moves only by those sleeps, so its waits are exact.
    fake = FakeBucketTime(real_sleep=True)
    monkeypatch.setattr(policy, "BUCKET_TIME", fake.source())
    whiplash_connection.set_rate_limits(True, vendor="whiplash")
    hook = WhiplashHook(retry_policy=zero_wait(1), timeout=FAST_TIMEOUT, limiter=ProcessLimiter())
    for _ in range(14):
        hook.list_notification_subscriptions()
    # given a limiter, one steady spacing of 1/9.2 s (92 % of the account's 10/s)
    assert len(fake.slept) >= 13
    assert max(fake.slept) == pytest.approx(min(fake.slept))
    assert min(fake.slept) == pytest.approx(1 / 9.2)
    assert "429" not in whiplash_connection.stats()["whiplash"]["statuses"]


def test_without_a_limiter_the_default_rate_is_split_by_the_pools_slots(
    whiplash_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process-local fallback cannot see other processes: it keeps the old split."""
    monkeypatch.setenv("RETURNS_SYNC_API_POOL_SLOTS", "4")
    assert WhiplashHook().rate_per_second() == pytest.approx(9.2 / 4)
    assert WhiplashHook(limiter=ProcessLimiter()).rate_per_second() == pytest.approx(9.2)
    assert WhiplashHook(rate_limit_per_second=3).rate_per_second() == 3


def _wal(database: Path) -> bytes:
    wal = database.with_name(database.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""
