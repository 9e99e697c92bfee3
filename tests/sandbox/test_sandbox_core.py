"""The sandbox core: clock, faults and rate limits as a client sees them, stats, webhook
signing and delivery, serving, the orchestrator's scenarios and its admin API and CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.delivery import WebhookDispatcher, deliver_webhook
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.serving import serve_in_thread
from include.returns_sync.sandbox.signing import sign_loop, sign_whiplash
from tests.conftest import REPO_ROOT
from tests.sandbox.conftest import NOW, LoopApi


def _open_return(loop_api: LoopApi) -> str:
    created = loop_api.backend.add_return(
        order_name="#1", provider_order_id=1, items=[("SKU-1", 1)], created_at=NOW
    )
    return str(created["id"])


# ----------------------------------------------------------------------------- clock, config


def test_the_clock_is_real_time_until_frozen_then_moves_only_when_advanced() -> None:
    clock = SandboxClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    clock.set(datetime(2026, 1, 1, 9, 30))  # naive -> UTC
    assert clock.now() == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    clock.advance(timedelta(hours=2))
    assert clock.now() == datetime(2026, 1, 1, 11, 30, tzinfo=UTC)


def test_fault_config_rejects_unknown_kinds_and_rates_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="teapot"):
        FaultConfig(rate=0.1, kinds=("teapot",))
    with pytest.raises(ValueError, match="rate"):
        FaultConfig(rate=1.5)
    with pytest.raises(ValueError, match="colour"):
        FaultConfig.from_dict({"rate": 0.1, "colour": "red"})


# ----------------------------------------------------------------------------- faults over HTTP


def test_an_injected_429_from_loop_carries_no_retry_after(loop_api: LoopApi) -> None:
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("429",))
    response = loop_api.get("/warehouse/return/list")
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_an_injected_429_from_whiplash_says_retry_after_one_second(sandbox: Sandbox) -> None:
    sandbox.set_faults(FaultConfig(rate=1.0, kinds=("429",)), vendor="whiplash")
    response = requests.get(f"{sandbox.whiplash_url}/api/v2/items", timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_injected_server_errors_are_json_and_change_nothing(loop_api: LoopApi, status: str) -> None:
    rid = _open_return(loop_api)
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=(status,))
    response = loop_api.post(f"/warehouse/return/{rid}/process")
    assert response.status_code == int(status)
    assert response.headers["content-type"] == "application/json"
    assert loop_api.backend.actions_for(rid) == []


def test_an_html_fault_is_a_502_error_page(loop_api: LoopApi) -> None:
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("html",))
    response = loop_api.get("/warehouse/return/list")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_a_dropped_connection_is_a_connection_error_for_the_client(loop_api: LoopApi) -> None:
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("drop",))
    with pytest.raises(requests.ConnectionError):
        loop_api.get("/warehouse/return/list")


def test_a_timeout_fault_outlasts_the_clients_read_timeout(loop_api: LoopApi) -> None:
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("timeout",), timeout_seconds=0.6)
    with pytest.raises(requests.ReadTimeout):
        loop_api.session.get(f"{loop_api.url}/warehouse/return/list", timeout=0.3)


def test_a_slow_fault_delays_but_still_answers(loop_api: LoopApi) -> None:
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("slow",), slow_seconds=0.2)
    started = time.monotonic()
    response = loop_api.get("/warehouse/return/list")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_an_after_commit_fault_applies_the_change_but_loses_the_answer(loop_api: LoopApi) -> None:
    rid = _open_return(loop_api)
    loop_api.gate.faults = FaultConfig(after_commit_rate=1.0, seed=3)
    outcomes: list[int | str] = []
    for text in ("first", "second", "third"):
        try:
            response = loop_api.post(f"/warehouse/return/{rid}/note", json={"content": text})
            outcomes.append(response.status_code)
        except requests.ConnectionError:
            outcomes.append("dropped")
    assert 200 not in outcomes
    assert [n["content"] for n in loop_api.backend.notes_for(rid)] == ["first", "second", "third"]
    assert loop_api.get(f"/warehouse/return/{rid}/notes").status_code == 200  # GETs unaffected


def test_faults_hit_about_the_configured_share_of_requests_reproducibly(loop_api: LoopApi) -> None:
    def run() -> list[int]:
        loop_api.gate.faults = FaultConfig(rate=0.3, kinds=("500", "503"), seed=11)
        return [loop_api.get("/warehouse/return/list").status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert 8 <= sum(code != 200 for code in first) <= 30


def test_stats_count_calls_per_route_template_and_faults_per_kind(loop_api: LoopApi) -> None:
    rid = _open_return(loop_api)
    loop_api.post(f"/warehouse/return/{rid}/flag")
    loop_api.post(f"/warehouse/return/{rid}/note", json={"content": "why"})
    loop_api.gate.faults = FaultConfig(rate=1.0, kinds=("503",))
    loop_api.get("/warehouse/return/list")
    snapshot = loop_api.gate.stats.snapshot()
    assert snapshot["requests"]["POST /api/v1/warehouse/return/{return_id}/{action}"] == 2
    assert snapshot["requests"]["GET /api/v1/warehouse/return/list"] == 1
    assert snapshot["faults"] == {"503": 1}
    assert snapshot["total"] == 3
    loop_api.gate.stats.reset()
    assert loop_api.gate.stats.snapshot()["total"] == 0


# ----------------------------------------------------------------------------- rate limits


def test_rate_limit_answers_429_over_the_limit_only_while_enabled(loop_api: LoopApi) -> None:
    loop_api.gate.rate_limit = RateLimit(3, 60.0, retry_after=None, enabled=True)
    codes = [loop_api.get("/warehouse/return/list").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    loop_api.gate.rate_limit.enabled = False
    assert loop_api.get("/warehouse/return/list").status_code == 200


def test_vendor_rate_limit_presets_match_the_published_limits() -> None:
    loop, whiplash = RateLimit.loop(enabled=True), RateLimit.whiplash(enabled=True)
    assert sum(loop.admit() for _ in range(301)) == 300
    assert sum(whiplash.admit() for _ in range(11)) == 10
    assert (loop.retry_after, whiplash.retry_after) == (None, "1")
    assert all(RateLimit.loop().admit() for _ in range(400))  # disabled by default


def test_admin_routes_bypass_faults_and_rate_limits(sandbox: Sandbox) -> None:
    sandbox.set_faults(FaultConfig(rate=1.0, kinds=("500",)))
    sandbox.set_rate_limits(True)
    for _ in range(3):
        assert requests.get(f"{sandbox.loop_host_url}/_sandbox/stats", timeout=5).ok
    assert requests.get(f"{sandbox.loop_url}/warehouse/return/list", timeout=5).status_code == 500


# ----------------------------------------------------------------------------- webhooks, serving


def test_signatures_match_known_hmac_sha256_vectors() -> None:
    body = b"The quick brown fox jumps over the lazy dog"
    expected_hex = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert sign_whiplash("key", body) == expected_hex
    assert sign_loop("key", body) == "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="


def test_delivering_to_an_unreachable_receiver_is_recorded_not_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = deliver_webhook(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout=0.5)
    assert delivery.status is None and delivery.error and not delivery.ok


def test_the_dispatcher_delivers_in_the_background_and_reports_idle() -> None:
    dispatcher = WebhookDispatcher(timeout=0.5)
    dispatcher.submit("http://127.0.0.1:9/unreachable", b"{}", {}, topic="label/label.updated")
    assert dispatcher.wait_idle(timeout=5)
    [delivery] = dispatcher.deliveries()
    assert delivery.topic == "label/label.updated" and delivery.status is None
    dispatcher.close()


def test_serving_on_a_port_in_use_fails_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            serve_in_thread(lambda *_: None, port=port)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- orchestrator


def test_both_simulators_are_served_with_the_configured_credentials(sandbox: Sandbox) -> None:
    loop = requests.get(
        f"{sandbox.loop_url}/warehouse/return/list",
        headers={"X-Authorization": "sandbox-loop-key"},
        timeout=5,
    )
    token = requests.post(
        f"{sandbox.whiplash_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
        timeout=5,
    )
    assert loop.json() == []
    assert token.status_code == 200 and token.json()["access_token"]
    assert sandbox.loop_url.endswith("/api/v1") and "/api" not in sandbox.whiplash_url


def test_seed_day_is_deterministic_for_a_seed() -> None:
    first, second, other = Sandbox(seed=7), Sandbox(seed=7), Sandbox(seed=8)
    day = date(2026, 3, 9)
    for sandbox in (first, second, other):
        sandbox.seed_day(60, day)
    assert first.truth.to_dict() == second.truth.to_dict()
    assert first.loop.all_returns() == second.loop.all_returns()
    assert first.truth.to_dict() != other.truth.to_dict()


def test_a_seeded_day_has_the_realistic_mix_the_pipeline_must_handle() -> None:
    sandbox = Sandbox(seed=42)
    truth = sandbox.seed_day(200, date(2026, 3, 9))
    returns = sandbox.loop.all_returns()
    assert len(returns) == 200
    day_start = datetime(2026, 3, 9, tzinfo=UTC).isoformat()[:10]
    assert all(r["created_at"].startswith(day_start) for r in returns)
    labels = Counter(r["label_status"] for r in returns)
    assert labels.most_common(1)[0][0] == "pre_transit"
    assert {"in_transit", "delivered", "new", None} <= set(labels)
    assert {r["state"] for r in returns} > {"open"}
    units = [Counter(item["sku"] for item in r["line_items"]) for r in returns]
    assert any(max(c.values(), default=0) >= 2 for c in units)  # several units of one SKU
    assert all(1 <= sum(c.values()) <= 5 for c in units if c)
    assert set(truth.unmappable().values()) == {"UNKNOWN_SKU", "UNKNOWN_ORDER", "NO_ITEMS"}
    assert 0.5 < len(truth.rma_ids()) / 200 < 0.8


def test_seeded_truth_matches_what_whiplash_knows() -> None:
    sandbox = Sandbox(seed=42)
    truth = sandbox.seed_day(200, date(2026, 3, 9))
    count = sandbox.whiplash.count
    known_orders = {
        record["provider_order_id"]
        for record in sandbox.loop.all_returns()
        if count("orders", json.dumps({"originator_original_id_eq": record["provider_order_id"]}))
    }
    for record in sandbox.loop.all_returns():
        expected = truth.returns[record["id"]]
        skus = {item["sku"] for item in record["line_items"]}
        assert expected.eligible == (
            record["state"] == "open"
            and record["label_status"]
            in ("pre_transit", "in_transit", "out_for_delivery", "delivered")
        )
        if expected.unmappable == "NO_ITEMS":
            assert not skus
        elif expected.unmappable == "UNKNOWN_SKU":
            assert any(sandbox.whiplash.item_by_sku(sku) is None for sku in skus)
        elif expected.unmappable == "UNKNOWN_ORDER":
            assert record["provider_order_id"] not in known_orders
        else:
            assert skus and all(sandbox.whiplash.item_by_sku(sku) for sku in skus)
            assert record["provider_order_id"] in known_orders


def test_advance_labels_moves_each_label_one_step_toward_delivered() -> None:
    sandbox = Sandbox(seed=1)
    sandbox.seed_day(40, date(2026, 3, 9))
    before = {
        r["id"]: r["label_status"] for r in sandbox.loop.all_returns() if r["state"] == "open"
    }
    moved = sandbox.advance_labels()
    after = {r["id"]: r["label_status"] for r in sandbox.loop.all_returns() if r["state"] == "open"}
    steps = {
        "pre_transit": "in_transit",
        "in_transit": "delivered",
        "out_for_delivery": "delivered",
    }
    assert moved == sum(status in steps for status in before.values()) > 0
    for rid, status in before.items():
        assert after[rid] == steps.get(status or "", status)
    sandbox.advance_labels()
    assert "pre_transit" not in {
        r["label_status"] for r in sandbox.loop.all_returns() if r["state"] == "open"
    }


def _create_rmas(sandbox: Sandbox, return_ids: list[str]) -> list[int]:
    """Create Whiplash consumer returns the way our pipeline would (one per Loop return)."""
    created = []
    for rid in return_ids:
        units = sandbox.truth.returns[rid].expected_units
        lines = [
            {
                "item_id": sandbox.whiplash.item_by_sku(sku).id,
                "quantity": quantity,
                "return_action": "restock",
                "description": "Too small",
            }
            for sku, quantity in units.items()
        ]
        body = {
            "requires_label": False,
            "reference": rid,
            "originator_attributes": {"original_id": rid},
            "shipnotice_items_attributes": lines,
        }
        created.append(sandbox.whiplash.create_consumer_return(body)["id"])
    return created


def test_receiving_packages_applies_the_planned_discrepancy_and_records_the_verdict() -> None:
    sandbox = Sandbox(seed=5)
    truth = sandbox.seed_day(30, date(2026, 3, 9))
    rids = truth.rma_ids()[:6]
    rma_ids = _create_rmas(sandbox, rids)
    received = sandbox.receive_packages({"missing": 1.0})
    assert received == dict.fromkeys(rma_ids, "missing")
    for rid, rma_id in zip(rids, rma_ids, strict=True):
        record = sandbox.whiplash.get_consumer_return(rma_id)
        good = sum(line["quantity_good"] for line in record["return_items"])
        assert record["status"] == 300
        assert good == sum(truth.returns[rid].expected_units.values()) - 1
        assert truth.returns[rid].expected_verdict == "flag"
        assert truth.returns[rid].expected_reasons == ["MISSING_ITEMS"]
    assert sandbox.receive_packages() == {}  # nothing is received twice


def test_an_exact_receipt_of_an_open_return_is_expected_to_process() -> None:
    sandbox = Sandbox(seed=5)
    truth = sandbox.seed_day(30, date(2026, 3, 9))
    [rma_id] = _create_rmas(sandbox, truth.rma_ids()[:1])
    assert sandbox.receive_packages({"exact": 1.0}) == {rma_id: "exact"}
    assert truth.verdicts() == {truth.rma_ids()[0]: "process"}


def test_receive_packages_rejects_an_unknown_discrepancy() -> None:
    with pytest.raises(ValueError, match="wrong_sku"):
        Sandbox(seed=0).receive_packages({"lost": 1.0})


# ----------------------------------------------------------------------------- admin API, CLI


def test_the_admin_api_drives_a_running_sandbox(sandbox: Sandbox) -> None:
    admin = f"{sandbox.loop_host_url}/_sandbox"
    seeded = requests.post(f"{admin}/seed", json={"n": 5, "day": "2026-03-09"}, timeout=5).json()
    assert seeded["seeded"] == 5
    truth = requests.get(f"{admin}/truth", timeout=5).json()
    assert set(truth["returns"]) == set(seeded["return_ids"])
    assert isinstance(requests.post(f"{admin}/advance-labels", timeout=5).json()["moved"], int)
    assert requests.post(f"{admin}/receive", json={}, timeout=5).json() == {"received": {}}
    bad = requests.post(f"{admin}/faults", json={"rate": 1.0, "kinds": ["boom"]}, timeout=5)
    assert bad.status_code == 400 and "boom" in bad.json()["error"]
    faults = {"rate": 1.0, "kinds": ["503"], "vendor": "loop"}
    assert requests.post(f"{admin}/faults", json=faults, timeout=5).ok
    assert requests.get(f"{sandbox.loop_url}/webhooks", timeout=5).status_code == 503
    assert (
        requests.post(f"{admin}/rate-limits", json={"enabled": "yes"}, timeout=5).status_code == 400
    )
    stats = requests.get(f"{admin}/stats", timeout=5).json()
    assert stats["loop"]["faults"] == {"503": 1}


def test_the_command_line_serves_the_sandbox_until_terminated(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.json"
    command = [
        sys.executable, "-m", "include.returns_sync.sandbox", "--seed", "3", "--loop-port", "0",
        "--whiplash-port", "0", "--seed-day", "4", "--urls-file", str(urls_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not urls_file.exists() and time.monotonic() < deadline:
            assert process.poll() is None, "the sandbox exited early"
            time.sleep(0.05)
        urls = json.loads(urls_file.read_text())
        truth = requests.get(f"{urls['admin_url']}/truth", timeout=5).json()
        assert len(truth["returns"]) == 4
        assert urls["loop_url"].endswith("/api/v1")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_loops_strict_fixed_window_refuses_until_the_minute_ends() -> None:
    clock = FakeMonotonic()
    limit = RateLimit(3, 60.0, retry_after=None, enabled=True, fixed_window=True, clock=clock)
    assert [limit.admit() for _ in range(4)] == [True, True, True, False]
    clock.now += 59.9  # a sliding window would not free a slot either; at 60 s both do
    assert not limit.admit()
    clock.now += 0.1
    assert limit.admit()


def test_the_sliding_window_frees_a_slot_as_the_oldest_request_ages_out() -> None:
    clock = FakeMonotonic()
    limit = RateLimit(2, 60.0, retry_after=None, enabled=True, clock=clock)
    assert limit.admit()
    clock.now += 30
    assert limit.admit() and not limit.admit()
    clock.now += 30  # the first request is a minute old: one slot again
    assert limit.admit() and not limit.admit()


def test_a_storm_refuses_everything_for_one_scaled_window_even_when_limits_are_off() -> None:
    clock = FakeMonotonic()
    limit = RateLimit.loop(enabled=False, window_seconds=0.6)
    limit._clock = clock
    limit.storm()
    assert not limit.admit()
    clock.now += 0.59
    assert not limit.admit()
    clock.now += 0.02
    assert limit.admit()


def test_an_armed_storm_starts_after_the_given_number_of_requests() -> None:
    clock = FakeMonotonic()
    limit = RateLimit(300, 1.0, retry_after=None, clock=clock)
    limit.arm_storm(after_requests=2, seconds=1.0)
    assert [limit.admit() for _ in range(4)] == [True, True, False, False]
    clock.now += 1.0
    assert limit.admit()


def test_the_admin_api_puts_a_whole_window_storm_on_loop(sandbox: Sandbox) -> None:
    admin = f"{sandbox.loop_host_url}/_sandbox/loop/rate-limit-storm"
    reply = requests.post(admin, json={"window_seconds": 0.5}, timeout=5)
    assert reply.json() == {"window_seconds": 0.5, "after_requests": 0}
    headers = {"X-Authorization": sandbox.loop_api_key}
    refused = requests.get(f"{sandbox.loop_url}/webhooks", headers=headers, timeout=5)
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    time.sleep(0.55)
    assert requests.get(f"{sandbox.loop_url}/webhooks", headers=headers, timeout=5).ok
