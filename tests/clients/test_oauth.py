"""The OAuth token source on its own: caching, renewal, rotation, persistence, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.returns_sync.clients.oauth import (
    GrantedToken,
    InMemoryTokenStore,
    OAuthCredentials,
    OAuthSession,
    StateStoreTokenStore,
    TokenStore,
    parse_token_answer,
)
from include.returns_sync.state import StateStore


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


def test_without_a_refresh_token_the_client_credentials_grant_is_used() -> None:
    endpoint = FakeTokenEndpoint()
    OAuthSession(credentials(), endpoint).bearer_token()
    assert endpoint.forms == [
        {"client_id": "client", "client_secret": "secret", "grant_type": "client_credentials"}
    ]


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
