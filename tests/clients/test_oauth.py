"""The OAuth token source on its own: caching, renewal, rotation, persistence, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from include.returns_sync.clients.errors import VendorAuthError, VendorError
from include.returns_sync.clients.oauth import (
    GrantedToken,
    InMemoryTokenStore,
    OAuthCredentials,
    OAuthSession,
    StateStoreTokenStore,
    TokenStore,
    parse_token_answer,
    reset_token_cache,
)
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.state import StateStore
from tests.clients.conftest import FAST_TIMEOUT, set_connection, zero_wait


class FakeTokenEndpoint:
    """Issues numbered tokens and rotates refresh tokens; remembers every form it was sent."""

    def __init__(self, expires_in: float = 7200, rotate: bool = True, delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.delay = delay
        self.forms: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, form: Mapping[str, str]) -> GrantedToken:
        time.sleep(self.delay)
        with self._lock:
            self.forms.append(dict(form))
            number = len(self.forms)
        refresh = f"refresh-{number}" if self.rotate and "refresh_token" in form else None
        return GrantedToken(f"access-{number}", self.expires_in, refresh)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(
    refresh_token: str | None = None, conn_id: str = "whiplash_default"
) -> OAuthCredentials:
    return OAuthCredentials(conn_id, "http://x/oauth/token", "client", "secret", refresh_token)


def test_a_token_is_fetched_once_and_reused_until_the_renewal_margin() -> None:
    endpoint, clock = FakeTokenEndpoint(expires_in=7200), Clock()
    session = OAuthSession(credentials(), endpoint, clock=clock)
    assert session.bearer_token() == "access-1"
    clock.now += 7200 - 61
    assert session.bearer_token() == "access-1"
    clock.now += 2
    assert session.bearer_token() == "access-2"
    assert len(endpoint.forms) == 2


def test_without_a_refresh_token_the_client_credentials_grant_asks_for_app_manage() -> None:
    endpoint = FakeTokenEndpoint()
    OAuthSession(credentials(), endpoint).bearer_token()
    assert endpoint.forms == [
        {
            "client_id": "client",
            "client_secret": "secret",
            "grant_type": "client_credentials",
            "scope": "app_manage",
        }
    ]


def test_a_refresh_grant_keeps_the_granted_scope_and_sends_none() -> None:
    endpoint = FakeTokenEndpoint()
    OAuthSession(credentials("r0"), endpoint).bearer_token()
    assert "scope" not in endpoint.forms[0]


def test_a_rotated_refresh_token_is_persisted_and_used_for_the_next_refresh() -> None:
    endpoint, clock, store = FakeTokenEndpoint(expires_in=100), Clock(), InMemoryTokenStore()
    session = OAuthSession(credentials("from-connection"), endpoint, token_store=store, clock=clock)
    session.bearer_token()
    assert endpoint.forms[0]["refresh_token"] == "from-connection"
    assert store.load("whiplash_default") == "refresh-1"
    clock.now += 100
    session.bearer_token()
    assert endpoint.forms[1]["refresh_token"] == "refresh-1"
    assert store.load("whiplash_default") == "refresh-2"


def test_the_stored_token_is_preferred_over_the_connection_once_present() -> None:
    endpoint = FakeTokenEndpoint()
    store = InMemoryTokenStore({"whiplash_default": "rotated-earlier"})
    OAuthSession(credentials("stale-in-connection"), endpoint, token_store=store).bearer_token()
    assert endpoint.forms[0]["refresh_token"] == "rotated-earlier"


def test_without_a_store_a_rotated_token_still_serves_this_process() -> None:
    endpoint, clock = FakeTokenEndpoint(expires_in=100), Clock()
    session = OAuthSession(credentials("from-connection"), endpoint, clock=clock)
    session.bearer_token()
    clock.now += 100
    session.bearer_token()
    assert [form["refresh_token"] for form in endpoint.forms] == ["from-connection", "refresh-1"]


def test_hook_instances_of_one_connection_share_the_token_and_refresh_once_concurrently() -> None:
    endpoint, store = FakeTokenEndpoint(delay=0.05), InMemoryTokenStore()
    sessions = [OAuthSession(credentials("r0"), endpoint, token_store=store) for _ in range(8)]
    tokens: list[str] = []
    lock = threading.Lock()

    def use(session: OAuthSession) -> None:
        token = session.bearer_token()
        with lock:
            tokens.append(token)

    threads = [threading.Thread(target=use, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == ["access-1"] * 8
    assert len(endpoint.forms) == 1
    assert store.saves == ["whiplash_default"]


def test_after_a_401_only_the_first_thread_renews() -> None:
    endpoint = FakeTokenEndpoint()
    first = OAuthSession(credentials(), endpoint)
    second = OAuthSession(credentials(), endpoint)
    rejected = first.bearer_token()
    assert first.renew_after_rejection(rejected) == "access-2"
    assert second.renew_after_rejection(rejected) == "access-2"
    assert len(endpoint.forms) == 2


def test_different_connections_do_not_share_tokens() -> None:
    endpoint = FakeTokenEndpoint()
    OAuthSession(credentials(conn_id="a"), endpoint).bearer_token()
    OAuthSession(credentials(conn_id="b"), endpoint).bearer_token()
    assert len(endpoint.forms) == 2


def test_a_very_short_lived_token_is_not_renewed_on_every_call() -> None:
    endpoint, clock = FakeTokenEndpoint(expires_in=30), Clock()
    session = OAuthSession(credentials(), endpoint, clock=clock)
    session.bearer_token()
    clock.now += 10
    session.bearer_token()
    assert len(endpoint.forms) == 1


def test_credentials_never_show_their_secrets_in_repr() -> None:
    shown = repr(credentials("refresh-xyz")) + repr(GrantedToken("access-xyz", 1, "rotated-xyz"))
    for secret in ("refresh-xyz", "access-xyz", "rotated-xyz", "'secret'"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "JSON object"),
        ({"token_type": "bearer"}, "without an access_token"),
        ({"access_token": "a", "token_type": "mac"}, "expected a bearer token"),
        ({"access_token": "a", "expires_in": "soon"}, "non-numeric expires_in"),
        ({"access_token": "a", "expires_in": 0}, "already expired"),
    ],
)
def test_a_token_answer_we_cannot_use_says_why(answer: object, problem: str) -> None:
    result = parse_token_answer(answer)
    assert isinstance(result, str) and problem in result


def test_a_token_answer_without_expiry_lasts_two_hours() -> None:
    result = parse_token_answer({"access_token": "a", "token_type": "Bearer"})
    assert isinstance(result, GrantedToken) and result.expires_in == 7200


def test_the_state_store_adapter_round_trips_an_encrypted_token(tmp_path: Path) -> None:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    try:
        key = Fernet.generate_key().decode()
        adapter = StateStoreTokenStore(store, key)
        assert isinstance(adapter, TokenStore)
        assert adapter.load("whiplash_default") is None
        adapter.save("whiplash_default", "refresh-abc")
        assert adapter.load("whiplash_default") == "refresh-abc"
        adapter.save("whiplash_default", "refresh-def")
        assert StateStoreTokenStore(store, key).load("whiplash_default") == "refresh-def"
    finally:
        store.dispose()


def test_the_state_store_adapter_needs_a_fernet_key() -> None:
    with pytest.raises(ValueError, match="Fernet key"):
        StateStoreTokenStore(object(), "")


# --------------------------------------------------------------------------- scope, on the sandbox


def _hook_for(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> WhiplashHook:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=sandbox.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
        extra=extra,
    )
    return WhiplashHook(retry_policy=zero_wait(), rate_limit_per_second=0, timeout=FAST_TIMEOUT)


def _subscribe(hook: WhiplashHook) -> dict[str, Any]:
    event = hook.notification_events()[0]
    return hook.create_notification_subscription(int(event["id"]), "https://example.test/hook")


def test_the_hook_asks_for_app_manage_so_a_strict_sandbox_lets_it_write(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.set_strict(True)
    hook = _hook_for(sandbox, monkeypatch)
    assert _subscribe(hook)["endpoint"] == "https://example.test/hook"
    assert sandbox.whiplash.tokens.grants == ["client_credentials"]


@pytest.mark.parametrize(("scope", "granted"), [("app_read", "app_read"), ("", "")])
def test_the_scope_extra_overrides_the_default_and_a_read_only_token_cannot_write(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, scope: str, granted: str
) -> None:
    sandbox.set_strict(True)
    seen: list[dict[str, str]] = []
    hook = _hook_for(sandbox, monkeypatch, scope=scope)
    real = hook._request_token

    def spy(form: Mapping[str, str]) -> GrantedToken:
        seen.append(dict(form))
        return real(form)

    monkeypatch.setattr(hook, "_request_token", spy)
    with pytest.raises(VendorAuthError) as raised:
        _subscribe(hook)  # the read works, the write is refused
    assert seen[0].get("scope", "") == granted
    assert raised.value.status == 403
    assert "'whiplash_default'" in str(raised.value) and "app_manage" in str(raised.value)
    assert sandbox.stats()["whiplash"]["statuses"].get("403") == 1


def test_strict_sandbox_client_credentials_without_scope_are_read_only(sandbox: Sandbox) -> None:
    sandbox.set_strict(True)
    base = sandbox.whiplash_url
    client = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}

    def token(**form: str) -> str:
        answer = requests.post(f"{base}/oauth/token", data={**client, **form}, timeout=5)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def subscribe(access: str) -> requests.Response:
        body = {"notification_event_id": 1, "notification_type": "webhook", "endpoint": "https://x"}
        headers = {"Authorization": f"Bearer {access}"}
        return requests.post(
            f"{base}/api/v2/notification_subscriptions", json=body, headers=headers, timeout=5
        )

    read_only = token(grant_type="client_credentials")
    headers = {"Authorization": f"Bearer {read_only}"}
    assert requests.get(f"{base}/api/v2/items", headers=headers, timeout=5).status_code == 200
    refused = subscribe(read_only)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert subscribe(token(grant_type="client_credentials", scope="app_manage")).status_code == 201
    sandbox.set_strict(False)  # lenient: the default scope may write, as before
    assert subscribe(token(grant_type="client_credentials")).status_code == 201


# --------------------------------------------------------------------------- strict rotation


def _refresh(base: str, refresh_token: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    return requests.post(f"{base}/oauth/token", data=form, timeout=5)


def test_strict_sandbox_revokes_a_refresh_token_once_its_successor_is_used(
    sandbox: Sandbox,
) -> None:
    sandbox.set_strict(True)
    base = sandbox.whiplash_url
    first = _refresh(base, "sandbox-refresh-0").json()
    again = _refresh(base, "sandbox-refresh-0")  # successor unused: a lost answer may retry
    assert again.status_code == 200
    sibling = again.json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert requests.get(f"{base}/api/v2/items", headers=headers, timeout=5).ok  # successor used
    spent = _refresh(base, "sandbox-refresh-0")
    assert (spent.status_code, spent.json()["error"]) == (400, "invalid_grant")
    assert _refresh(base, sibling["refresh_token"]).json()["error"] == "invalid_grant"
    headers = {"Authorization": f"Bearer {sibling['access_token']}"}
    assert requests.get(f"{base}/api/v2/items", headers=headers, timeout=5).status_code == 401
    # presenting the successor refresh token is a use too
    nxt = _refresh(base, first["refresh_token"]).json()
    assert _refresh(base, nxt["refresh_token"]).status_code == 200
    assert _refresh(base, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert sandbox.stats()["whiplash"]["oauth"]["invalid_grant"] == 3
    assert sandbox.whiplash.current_refresh_token not in (None, first["refresh_token"])


def test_a_spent_refresh_token_fails_the_task_saying_how_to_reauthorize(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.set_strict(True)
    base = sandbox.whiplash_url
    successor = _refresh(base, "sandbox-refresh-0").json()
    assert _refresh(base, successor["refresh_token"]).ok  # sandbox-refresh-0 is now revoked
    hook = _hook_for(sandbox, monkeypatch, refresh_token="sandbox-refresh-0")
    with pytest.raises(VendorAuthError) as raised:
        hook.notification_events()
    text = str(raised.value)
    assert "invalid_grant" in text and "connection 'whiplash_default'" in text
    assert "'refresh_token' extra" in text and "re-authorize" in text
    assert "sandbox-refresh-0" not in text


# --------------------------------------------------------------------------- shared slot


def _state_store(tmp_path: Path) -> StateStore:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


def test_a_lost_refresh_answer_is_retried_once_with_the_same_token(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sandbox.set_strict(True)
    sandbox.whiplash.tokens.lose_next_answers(1)  # granted and rotated, the answer dropped
    store = _state_store(tmp_path)
    try:
        key = Fernet.generate_key().decode()
        hook = _hook_for(sandbox, monkeypatch, refresh_token="sandbox-refresh-0")
        hook.token_store = StateStoreTokenStore(store, key)
        presented: list[str] = []
        real = hook._call

        def spy(operation: str, *args: Any, **kwargs: Any) -> Any:
            if operation == "oauth_token":
                presented.append(kwargs["form"]["refresh_token"])
            return real(operation, *args, **kwargs)

        monkeypatch.setattr(hook, "_call", spy)
        assert hook.notification_events()
        assert presented == ["sandbox-refresh-0"]  # one logical call ...
        assert hook.http_requests["oauth_token"] == 2  # ... sent twice, with the same token
        assert sandbox.whiplash.tokens.grants == ["refresh_token", "refresh_token"]
        assert sandbox.stats()["whiplash"]["oauth"]["invalid_grant"] == 0
        stored = store.read_oauth_slot("whiplash_default", key)
        assert stored is not None
        assert stored.refresh_token == sandbox.whiplash.current_refresh_token
    finally:
        store.dispose()


def test_a_refresh_answer_lost_twice_is_not_retried_a_third_time(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.set_strict(True)
    sandbox.whiplash.tokens.lose_next_answers(2)
    hook = _hook_for(sandbox, monkeypatch, refresh_token="sandbox-refresh-0")
    with pytest.raises(VendorError):
        hook.notification_events()
    assert hook.http_requests["oauth_token"] == 2


def test_a_new_refresh_token_in_the_connection_wins_over_the_stored_chain(
    tmp_path: Path,
) -> None:
    store = _state_store(tmp_path)
    try:
        key = Fernet.generate_key().decode()
        endpoint = FakeTokenEndpoint(expires_in=100)
        shared = StateStoreTokenStore(store, key)
        OAuthSession(credentials("pasted-1"), endpoint, token_store=shared).bearer_token()
        reset_token_cache()
        clock = Clock()
        session = OAuthSession(credentials("pasted-1"), endpoint, token_store=shared, clock=clock)
        assert session.bearer_token() == "access-1"  # adopted from the store, no grant
        reset_token_cache()
        OAuthSession(credentials("pasted-2"), endpoint, token_store=shared).bearer_token()
        assert [form["refresh_token"] for form in endpoint.forms] == ["pasted-1", "pasted-2"]
        slot = store.read_oauth_slot("whiplash_default", key)
        assert slot is not None and slot.refresh_token == "refresh-2"
    finally:
        store.dispose()


def test_a_failed_refresh_releases_the_lease(tmp_path: Path) -> None:
    store = _state_store(tmp_path)
    try:
        key = Fernet.generate_key().decode()

        def refuse(form: Mapping[str, str]) -> GrantedToken:
            raise RuntimeError("token endpoint down")

        shared = StateStoreTokenStore(store, key)
        with pytest.raises(RuntimeError):
            OAuthSession(credentials("r0"), refuse, token_store=shared).bearer_token()
        slot = store.read_oauth_slot("whiplash_default", key)
        assert slot is not None and slot.version == 0
        assert store.acquire_oauth_lease("whiplash_default", "someone-else", timedelta(seconds=5))
    finally:
        store.dispose()
