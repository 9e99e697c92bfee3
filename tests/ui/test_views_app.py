"""The Returns views over HTTP: logged out gets nothing, access follows the auth manager per
merchant DAG, vendor data are escaped, the pages are read-only and self-contained."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.ui.standin import HOSTILE_NOTE, HOSTILE_ORDER, HOSTILE_SKU, StandInData

PAGES = [
    "/",
    "/?q=41000123",
    "/returns/default/41000123",
    "/queues",
    "/trend",
    "/runs/whiplash_receipts_to_loop/scheduled__2026-12-05T12:00:00+00:00",
    "/runs/some_other_dag/manual__1",
]


def login(client: TestClient, token: str) -> TestClient:
    client.cookies.set("_token", token)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_logged_out_gets_401_and_no_data(client: TestClient, data: StandInData, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert "41000123" not in response.text and "SKU-1" not in response.text
    assert data.calls == []  # not even read


def test_a_forged_token_is_refused(client: TestClient, data: StandInData) -> None:
    client.cookies.set("_token", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.forged")
    assert client.get("/queues").status_code in (401, 403)
    assert data.calls == []


def test_the_bearer_header_works_for_scripts(client: TestClient, token: Callable[..., str]) -> None:
    response = client.get("/queues", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200


def test_search_with_one_hit_goes_to_the_timeline(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    response = login(client, token()).get("/", params={"q": " 1Z999AA10123456784 "})
    assert response.status_code == 303
    assert response.headers["location"] == "/returns/default/41000123"
    assert ("search", ("1Z999AA10123456784",)) in data.calls


def test_search_without_hits_says_so(client: TestClient, token: Callable[..., str]) -> None:
    response = login(client, token()).get("/", params={"q": "nope"})
    assert response.status_code == 200
    assert 'id="no-hits"' in response.text


def test_timeline_escapes_hostile_vendor_values(
    client: TestClient, token: Callable[..., str]
) -> None:
    page = login(client, token()).get("/returns/default/41000123")
    assert page.status_code == 200
    html = page.text
    for hostile in (HOSTILE_SKU, HOSTILE_NOTE, HOSTILE_ORDER):
        assert hostile not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;SKU-1" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in html
    assert "<script>window" not in html
    # every step links to its Airflow DAG run, outside the plugin frame
    assert (
        'target="_top" href="/dags/loop_returns_to_whiplash/runs/'
        "asset_triggered__2026-12-04T12%3A03%3A00%2B00%3A00" in html
    )
    assert "MISSING_ITEMS" in html


def test_pages_forbid_inline_and_foreign_scripts(
    client: TestClient, token: Callable[..., str]
) -> None:
    page = login(client, token()).get("/trend")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # the chart library is ours, served by the app (no CDN): no absolute URL on the page
    assert '/static/vendor/chart.umd.min.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    lib = client.get("/static/vendor/chart.umd.min.js")
    assert lib.status_code == 200 and "Chart.js v4" in lib.text[:200]


def test_trend_embeds_its_data_as_escaped_json(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    page = login(client, token()).get("/trend")
    assert page.status_code == 200
    assert ("trend", (None, 30)) in data.calls
    assert '<script type="application/json" id="trend-data">{' in page.text
    assert 'id="total-processed">' in page.text


def test_a_user_without_a_merchants_dags_sees_none_of_its_returns(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    """acme-only users may read merchant acme's DAGs only (test auth manager)."""
    login(client, token("acme-only-ann", "viewer"))
    # search: the default merchant's hit is dropped, even with one query matching both
    hidden = client.get("/", params={"q": "41000123"})
    assert hidden.status_code == 200 and 'id="no-hits"' in hidden.text
    assert client.get("/", params={"q": "shared"}).headers["location"] == "/returns/acme/52000001"
    # timeline of the hidden merchant: 404, never read
    data.calls.clear()
    assert client.get("/returns/default/41000123").status_code == 404
    assert data.calls == []
    # queues and trend: only acme, "All merchants" is not offered, asking for default is ignored
    page = client.get("/queues", params={"merchant": "default"})
    assert ("queues", ("acme",)) in data.calls
    assert "All merchants" not in page.text and "41000123" not in page.text
    client.get("/trend")
    assert ("trend", ("acme", 30)) in data.calls
    # the default merchant's run tab: Forbidden, as Airflow's own run pages
    tab = client.get("/runs/whiplash_receipts_to_loop/scheduled__1")
    assert tab.status_code == 403 and "41000123" not in tab.text


def test_an_admin_sees_every_merchant(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    page = login(client, token("ada", "admin")).get("/queues")
    assert ("queues", (None,)) in data.calls
    assert "All merchants" in page.text and "41000123" in page.text and "52000001" in page.text
    client.get("/queues", params={"merchant": "acme"})
    assert ("queues", ("acme",)) in data.calls


def test_a_user_without_any_role_sees_no_returns(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    page = login(client, token("nobody", None)).get("/", params={"q": "41000123"})
    assert page.status_code == 200 and 'id="no-access"' in page.text
    assert 'id="hits"' not in page.text and data.calls == []


def test_run_tab_summarises_our_run_with_links_to_timelines(
    client: TestClient, token: Callable[..., str]
) -> None:
    page = login(client, token()).get(
        "/runs/whiplash_receipts_to_loop/scheduled__2026-12-05T12:00:00+00:00"
    )
    assert page.status_code == 200
    assert 'href="/returns/default/41000123"' in page.text
    assert "MISSING_ITEMS: 1" in page.text


def test_run_tab_says_plainly_when_the_run_is_not_ours(
    client: TestClient, token: Callable[..., str], data: StandInData
) -> None:
    page = login(client, token()).get("/runs/example_etl/manual__2026-12-06")
    assert page.status_code == 200
    assert "example_etl is not one of the returns-sync DAGs" in page.text
    assert data.calls == []


def test_run_tab_of_our_run_without_records(client: TestClient, token: Callable[..., str]) -> None:
    page = login(client, token()).get("/runs/loop_asn_backfill__acme/empty")
    assert page.status_code == 200 and 'id="no-summary"' in page.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_views_are_read_only(
    client: TestClient, token: Callable[..., str], method: str
) -> None:
    login(client, token("ada", "admin"))
    for path in ("/", "/queues", "/returns/default/41000123"):
        assert client.request(method, path).status_code == 405


def test_the_production_data_source_reads_a_real_store(
    auth_manager: object, token: Callable[..., str], tmp_path: Path
) -> None:
    """`StoreViewData` over a migrated SQLite state store (the real queries), empty: every page
    answers, nothing is found, the queues are empty."""
    from include.returns_sync.state import StateStore
    from include.returns_sync.views.app import StoreViewData, create_app
    from include.returns_sync.views.auth import Authorizer

    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    try:
        app = create_app(StoreViewData(lambda: store), Authorizer(merchant_ids=lambda: ["default"]))
        with TestClient(app, follow_redirects=False) as http:
            http.cookies.set("_token", token())
            assert 'id="no-hits"' in http.get("/", params={"q": "41000123"}).text
            assert http.get("/returns/default/41000123").status_code == 404
            queues = http.get("/queues")
            assert queues.status_code == 200 and queues.text.count('class="count">0<') == 6
            assert http.get("/trend").status_code == 200
            tab = http.get("/runs/loop_returns_to_whiplash/manual__2026-12-06T10:00:00+00:00")
            assert tab.status_code == 200 and 'id="no-summary"' in tab.text
    finally:
        store.dispose()
