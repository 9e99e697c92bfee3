"""LoopHook against the Loop sandbox over real HTTP: lists, actions, faults, auth, throttling."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from include.returns_sync.clients.base import resolve_base_url
from include.returns_sync.clients.errors import (
    AmbiguousWriteError,
    LoopActionRejected,
    VendorAuthError,
    VendorBadResponse,
    VendorError,
    VendorNotFound,
    VendorTransportError,
)
from include.returns_sync.clients.loop import LoopHook
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.faults import FaultConfig
from tests.clients.conftest import (
    FAST_TIMEOUT,
    Canned,
    CannedServer,
    SleepRecorder,
    set_connection,
    zero_wait,
)
from tests.support.clock import FakeBucketTime


def make_hook(max_attempts: int = 4, sleep: SleepRecorder | None = None, **kwargs: Any) -> LoopHook:
    kwargs.setdefault("rate_limit_per_second", 0)
    kwargs.setdefault("timeout", FAST_TIMEOUT)
    return LoopHook(retry_policy=zero_wait(max_attempts, sleep), **kwargs)


def capture_urls(hook: LoopHook) -> list[str]:
    """Every URL the hook sends, recorded by a `requests` response hook on its session."""
    urls: list[str] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        urls.append(str(response.request.url))

    hook.get_conn().hooks["response"].append(record)
    return urls


def last_two_days() -> tuple[datetime, datetime]:
    """The seeded day, generously: seed_day stamps some label updates hours after "now"."""
    now = datetime.now(UTC)
    return now - timedelta(days=2), now + timedelta(days=1)


def open_return_id(sandbox: Sandbox, label: str | None = None) -> str:
    for record in sandbox.loop.all_returns():
        if record["state"] == "open" and (label is None or record["label_status"] == label):
            return str(record["id"])
    raise AssertionError("the seeded day has no open return")


# --------------------------------------------------------------------------- return data


def test_a_multi_page_list_reads_every_return_and_resends_its_own_filters(
    loop_connection: Sandbox,
) -> None:
    loop_connection.seed_day(60)
    expected = {r["id"] for r in loop_connection.loop.all_returns() if r["state"] == "open"}
    hook = make_hook()
    urls = capture_urls(hook)

    start, end = last_two_days()
    returns = list(hook.list_returns(start=start, end=end, page_size=10))

    assert {r.id for r in returns} == expected
    assert len(returns) == len(expected), "no return twice"
    assert len(urls) >= 4 and hook.calls["list_returns"] == len(urls)
    queries = [parse_qs(urlsplit(url).query) for url in urls]
    for query in queries:
        assert query["state"] == ["open"] and query["paginate"] == ["true"]
        assert query["filter"] == ["updated_at"] and query["pageSize"] == ["10"]
        assert "from" in query and "to" in query
    assert "cursor" not in queries[0]
    assert all("cursor" in query for query in queries[1:])


def test_without_a_state_loop_lists_open_closed_and_expired(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(60)
    expected = {
        r["id"]
        for r in loop_connection.loop.all_returns()
        if r["state"] in ("open", "closed", "expired")
    }
    start, end = last_two_days()
    returns = list(make_hook().list_returns(start=start, end=end, state=None))
    assert {r.id for r in returns} == expected


def test_a_window_longer_than_120_days_is_fetched_in_chunks(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(10)
    now = datetime.now(UTC)
    hook = make_hook()
    end = now + timedelta(days=1)
    returns = list(hook.list_returns(start=end - timedelta(days=300), end=end, state=None))
    assert len(returns) == sum(
        1 for r in loop_connection.loop.all_returns() if r["state"] in ("open", "closed", "expired")
    )
    assert hook.calls["list_returns"] == 3


def test_list_arguments_are_checked_before_any_request(loop_connection: Sandbox) -> None:
    hook = make_hook()
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="filter_field"):
        list(hook.list_returns(start=now - timedelta(hours=1), end=now, filter_field="edited_at"))
    with pytest.raises(ValueError, match="state"):
        list(hook.list_returns(start=now - timedelta(hours=1), end=now, state="flagged"))
    with pytest.raises(ValueError, match="page_size"):
        list(hook.list_returns(start=now - timedelta(hours=1), end=now, page_size=751))
    with pytest.raises(ValueError, match="not after start"):
        list(hook.list_returns(start=now, end=now - timedelta(hours=1)))
    assert hook.http_requests == {}


def test_get_return_parses_the_return_with_its_line_items(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    loop_return = make_hook().get_return(int(rid))
    assert loop_return.id == rid
    assert len(loop_return.line_items) == len(loop_connection.loop.get(rid)["line_items"])


def test_an_unknown_return_is_not_found(loop_connection: Sandbox) -> None:
    with pytest.raises(VendorNotFound) as raised:
        make_hook().get_return("99999999")
    assert raised.value.code == "NOT_FOUND"


def test_a_return_id_that_is_not_a_number_is_refused_locally(loop_connection: Sandbox) -> None:
    with pytest.raises(ValueError, match="whole number"):
        make_hook().get_return("12/../../webhooks")


def test_asn_report_lists_rows_of_labelled_returns(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(20)
    rows = make_hook().asn_report(*last_two_days())
    with_labels = [r for r in loop_connection.loop.all_returns() if r["tracking_number"]]
    assert len(rows) == sum(len(r["line_items"]) for r in with_labels)


# --------------------------------------------------------------------------- return actions


def test_notes_are_empty_until_one_is_created(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    hook = make_hook()
    assert hook.get_notes(rid) == []
    hook.create_note(rid, "Expected 2 x SKU-1, received 1 good + 1 damaged")
    notes = hook.get_notes(rid)
    assert [note.content for note in notes] == ["Expected 2 x SKU-1, received 1 good + 1 damaged"]


@pytest.mark.parametrize("content", ["", "   ", "x" * 255])
def test_a_note_outside_1_to_254_characters_is_refused_before_sending(
    loop_connection: Sandbox, content: str
) -> None:
    hook = make_hook()
    with pytest.raises(ValueError, match=f"this one has {len(content)}"):
        hook.create_note("48000001", content)
    assert hook.http_requests == {}


def test_process_and_flag_are_acknowledged(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(10)
    open_ids = [r["id"] for r in loop_connection.loop.all_returns() if r["state"] == "open"]
    hook = make_hook()
    hook.process_return(open_ids[0], {"whiplash_rma": "123"})
    hook.flag_return(open_ids[1])
    assert [a["action"] for a in loop_connection.loop.actions_for(open_ids[0])] == ["process"]
    assert loop_connection.loop.is_flagged(open_ids[1])


def test_an_http_200_with_an_error_body_is_a_rejected_action(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(10)
    rid = open_return_id(loop_connection)
    loop_connection.loop.set_state(rid, "closed")
    with pytest.raises(LoopActionRejected) as raised:
        make_hook().process_return(rid)
    assert raised.value.status == 200
    assert raised.value.code == "UNPROCESSABLE_RETURN"
    assert "closed" in raised.value.message


def test_processing_a_flagged_return_is_rejected_with_loops_code(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(10)
    rid = open_return_id(loop_connection)
    hook = make_hook()
    hook.flag_return(rid)
    with pytest.raises(LoopActionRejected) as raised:
        hook.process_return(rid)
    assert raised.value.code == "UNPROCESSABLE_FLAGGED_RETURN"


@pytest.mark.parametrize("action", ["process", "flag", "note"])
def test_an_action_whose_answer_is_lost_is_never_resent(
    loop_connection: Sandbox, action: str
) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    hook = make_hook()
    loop_connection.set_faults(FaultConfig(after_commit_rate=1.0, seed=1), vendor="loop")
    call = {
        "process": lambda: hook.process_return(rid),
        "flag": lambda: hook.flag_return(rid),
        "note": lambda: hook.create_note(rid, "checked"),
    }[action]
    with pytest.raises(AmbiguousWriteError):
        call()
    assert [a["action"] for a in loop_connection.loop.actions_for(rid)] == [action]
    assert hook.http_requests == {f"{action}_return" if action != "note" else "create_note": 1}


def test_a_5xx_on_an_action_is_ambiguous_and_not_retried(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    loop_connection.set_faults(FaultConfig(rate=1.0, kinds=("500",)), vendor="loop")
    hook = make_hook()
    with pytest.raises(AmbiguousWriteError) as raised:
        hook.process_return(rid)
    assert raised.value.status == 500
    assert hook.http_requests["process_return"] == 1


def test_an_action_rate_limited_by_loop_is_retried_and_applied_once(
    loop_connection: Sandbox,
) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    loop_connection.set_faults(FaultConfig(rate=1.0, kinds=("429",)), vendor="loop")
    recorder = SleepRecorder(after=2, then=lambda: loop_connection.set_faults(FaultConfig()))
    make_hook(sleep=recorder).flag_return(rid)
    assert [a["action"] for a in loop_connection.loop.actions_for(rid)] == ["flag"]
    assert loop_connection.stats()["loop"]["faults"] == {"429": 2}


# --------------------------------------------------------------------------- faults on reads


@pytest.mark.parametrize(
    "kinds", [("429",), ("500", "502", "503"), ("drop",)], ids=["429", "5xx", "drop"]
)
def test_a_read_survives_a_storm_of_transient_failures(
    loop_connection: Sandbox, kinds: tuple[str, ...]
) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    loop_connection.set_faults(FaultConfig(rate=1.0, kinds=kinds, seed=3), vendor="loop")
    recorder = SleepRecorder(after=3, then=lambda: loop_connection.set_faults(FaultConfig()))
    hook = make_hook(max_attempts=5, sleep=recorder)
    assert hook.get_return(rid).id == rid
    assert hook.calls["get_return"] == 1 and hook.http_requests["get_return"] == 4
    assert len(recorder.waits) == 3


def test_loop_429_has_no_retry_after_so_it_is_waited_out_up_to_the_budget_then_fails(
    loop_connection: Sandbox,
) -> None:
    loop_connection.set_faults(FaultConfig(rate=1.0, kinds=("429",)), vendor="loop")
    recorder = SleepRecorder()
    hook = LoopHook(
        retry_policy=RetryPolicy(
            max_attempts=3,
            base_seconds=0.01,
            max_seconds=0.02,
            rate_limit_budget_seconds=0.3,
            rate_limit_max_wait_seconds=0.05,
            sleep=recorder,
        ),
        rate_limit_per_second=0,
        timeout=FAST_TIMEOUT,
    )
    with pytest.raises(VendorError) as raised:
        hook.list_webhooks()
    assert raised.value.status == 429
    assert len(recorder.waits) > 2  # past max_attempts: the storm budget rules
    assert sum(recorder.waits) == pytest.approx(0.3)
    assert all(0 < wait <= 0.05 for wait in recorder.waits)


def test_a_whole_window_of_429s_mid_run_is_waited_out_and_each_action_sent_once(
    loop_connection: Sandbox,
) -> None:
    """Loop's limiter refuses everything for one (scaled) one-minute window: 0.6 s here,
    with the production policy scaled by the same 1/100 (budget 0.75 s)."""
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    limit = loop_connection.loop_rate_limit()
    limit.window_seconds = 0.6
    hook = LoopHook(
        retry_policy=RetryPolicy().scaled(0.01), rate_limit_per_second=0, timeout=FAST_TIMEOUT
    )
    limit.storm()  # the key's minute is used up: a whole window of 429s, no Retry-After
    hook.process_return(rid)  # a write: retried only because a 429 proves it was not applied
    assert [a["action"] for a in loop_connection.loop.actions_for(rid)] == ["process"]
    assert hook.http_requests["process_return"] > 1
    assert loop_connection.stats()["loop"]["faults"]["rate_limited"] >= 1


def test_a_read_timeout_is_retried(loop_connection: Sandbox) -> None:
    loop_connection.seed_day(5)
    rid = open_return_id(loop_connection)
    loop_connection.set_faults(
        FaultConfig(rate=1.0, kinds=("timeout",), timeout_seconds=1.0), vendor="loop"
    )
    recorder = SleepRecorder(after=1, then=lambda: loop_connection.set_faults(FaultConfig()))
    started = time.monotonic()
    hook = make_hook(sleep=recorder, timeout=(0.5, 0.3))
    assert hook.get_return(rid).id == rid
    assert time.monotonic() - started < 3
    assert hook.http_requests["get_return"] == 2


def test_an_html_error_page_ends_as_a_clear_bad_response(loop_connection: Sandbox) -> None:
    loop_connection.set_faults(FaultConfig(rate=1.0, kinds=("html",)), vendor="loop")
    hook = make_hook(max_attempts=2)
    with pytest.raises(VendorBadResponse) as raised:
        hook.list_webhooks()
    text = str(raised.value)
    assert "HTML page" in text and "502" in text and "text/html" in text
    assert "<h1>" not in text
    assert hook.http_requests["list_webhooks"] == 2


def test_a_refused_connection_is_retried_even_for_an_action_then_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=f"http://127.0.0.1:{port}/api/v1",
        password="key",
    )
    hook = make_hook(max_attempts=3)
    with pytest.raises(VendorTransportError) as raised:
        hook.flag_return("48000001")
    assert not isinstance(raised.value, AmbiguousWriteError)
    assert raised.value.request_sent is False
    assert hook.http_requests["flag_return"] == 3


# --------------------------------------------------------------------------- credentials


def test_a_wrong_api_key_is_a_clear_auth_error_that_names_the_connection(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="http",
        host=loop_connection.loop_url,
        password="wrong-key-123",
    )
    hook = make_hook()
    with pytest.raises(VendorAuthError) as raised:
        hook.list_webhooks()
    text = str(raised.value)
    assert "'loop_default'" in text and "API key" in text
    assert "wrong-key-123" not in text
    assert hook.http_requests["list_webhooks"] == 1
    ok, message = make_hook().test_connection()
    assert not ok and "wrong-key-123" not in message


def test_the_key_is_sent_raw_in_x_authorization(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="loop", host=canned.url, password="k-1")
    canned.answer(Canned(200, b'{"webhooks": []}'))
    assert make_hook().list_webhooks() == []
    assert canned.seen[0].headers["X-Authorization"] == "k-1"
    assert "Authorization" not in canned.seen[0].headers


def test_a_connection_without_a_key_fails_with_a_clear_message(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="http", host=loop_connection.loop_url)
    with pytest.raises(ValueError, match="no Loop API key"):
        make_hook().list_webhooks()


def test_a_connection_of_another_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="postgres", host="db", password="x")
    with pytest.raises(ValueError, match="type 'postgres'"):
        make_hook().list_webhooks()


def test_the_uri_form_of_the_connection_works(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    netloc = urlsplit(loop_connection.loop_url).netloc
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOP_DEFAULT", f"http://:{loop_connection.loop_api_key}@{netloc}/api/v1"
    )
    ok, message = make_hook().test_connection()
    assert ok, message
    assert message.endswith("/api/v1")


def test_connection_extras_never_become_request_headers(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=canned.url,
        password="k",
        extra={"webhook_secret": "whsec-1", "rate_limit": 0},
    )
    canned.answer(Canned(200, b'{"webhooks": []}'))
    make_hook().list_webhooks()
    sent = {name.lower(): value for name, value in canned.seen[0].headers.items()}
    assert "webhook_secret" not in sent and "whsec-1" not in sent.values()


def test_a_redirect_is_not_followed_so_the_key_stays_home(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="loop", host=canned.url, password="k")
    canned.answer(Canned(302, b"", headers={"Location": "https://elsewhere.example/steal"}))
    with pytest.raises(VendorError, match="unexpected redirect"):
        make_hook().list_webhooks()
    assert len(canned.seen) == 1


def test_malformed_json_on_a_200_is_a_bad_response(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="loop", host=canned.url, password="k")
    canned.answer(Canned(200, b'{"id": "1", "state": "op'))
    with pytest.raises(VendorBadResponse, match="malformed JSON"):
        make_hook().get_return("1")
    assert len(canned.seen) == 1, "a malformed 200 is not worth retrying"


def test_a_record_missing_what_we_rely_on_is_a_bad_response(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "loop_default", conn_type="loop", host=canned.url, password="k")
    canned.answer(Canned(200, b'{"id": "1"}'))
    with pytest.raises(VendorBadResponse, match="LoopReturn record did not validate"):
        make_hook().get_return("1")


# --------------------------------------------------------------------------- webhooks


def test_webhooks_are_created_active_listed_and_updated(loop_connection: Sandbox) -> None:
    hook = make_hook()
    created = hook.create_webhook("label", "label.updated", "https://example.com/hook")
    assert created["status"] == "active"
    hook.update_webhook(
        created["id"],
        topic="label",
        trigger="label.created",
        url="https://example.com/hook2",
        status="inactive",
    )
    listed = hook.list_webhooks()
    assert [(w["trigger"], w["url"], w["status"]) for w in listed] == [
        ("label.created", "https://example.com/hook2", "inactive")
    ]


def test_a_webhook_with_a_bad_url_or_status_is_refused_locally(loop_connection: Sandbox) -> None:
    hook = make_hook()
    with pytest.raises(ValueError, match="url"):
        hook.create_webhook("label", "label.updated", "ftp://x")
    with pytest.raises(ValueError, match="status"):
        hook.create_webhook("label", "label.updated", "https://x", status="on")


# --------------------------------------------------------------------------- throttling


def test_the_connection_rate_limit_spaces_requests(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch, bucket_time: FakeBucketTime
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=loop_connection.loop_url,
        password=loop_connection.loop_api_key,
        extra={"rate_limit": 20},
    )
    hook = LoopHook(retry_policy=zero_wait(), timeout=FAST_TIMEOUT)
    other = LoopHook(retry_policy=zero_wait(), timeout=FAST_TIMEOUT)
    for index in range(6):
        (hook if index % 2 else other).list_webhooks()
    # both hooks share one 20/s budget: the 5 requests after the first each wait 1/20 s
    assert bucket_time.slept == pytest.approx([1 / 20] * 5)


def test_the_hook_parameter_overrides_the_connection_rate_limit(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch, bucket_time: FakeBucketTime
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=loop_connection.loop_url,
        password=loop_connection.loop_api_key,
        extra={"rate_limit": 1},
    )
    hook = make_hook(rate_limit_per_second=0)
    for _ in range(4):
        hook.list_webhooks()
    assert bucket_time.slept == [], "the extra's 1/s would have made three requests wait"


def test_a_nonsense_rate_limit_extra_is_a_clear_error(
    loop_connection: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host=loop_connection.loop_url,
        password="k",
        extra={"rate_limit": "fast"},
    )
    with pytest.raises(ValueError, match="rate_limit"):
        LoopHook().list_webhooks()


# --------------------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://api.loopreturns.com/api/v1"),
        (
            "https://api.loopreturns.com/api/2026-07/",
            None,
            None,
            "https://api.loopreturns.com/api/2026-07",
        ),
        ("127.0.0.1", "api/v1", 8080, "http://127.0.0.1:8080/api/v1"),
        ("api.loopreturns.com", "api/v1", None, "https://api.loopreturns.com/api/v1"),
        ("https://api.loopreturns.com", None, None, "https://api.loopreturns.com"),
        ("example.com", "http", 81, "http://example.com:81"),
        ("http://127.0.0.1:9/api/v1", None, 9, "http://127.0.0.1:9/api/v1"),
    ],
)
def test_the_base_url_is_built_from_host_schema_and_port(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    assert resolve_base_url(host, schema, port, "https://api.loopreturns.com/api/v1") == expected


def test_a_loop_host_without_a_path_gets_the_default_api_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="loop",
        host="https://api.loopreturns.com",
        password="k",
    )
    hook = LoopHook()
    hook.get_conn()
    assert hook.base_url == "https://api.loopreturns.com/api/v1"


def test_a_host_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        resolve_base_url("ftp://files.example.com", None, None, "")
