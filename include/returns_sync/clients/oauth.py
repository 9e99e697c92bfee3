"""Whiplash OAuth2 bearer tokens: fetch, cache per process, renew before expiry, rotate safely.

Grants: `refresh_token` when a refresh token is known (the connection's extra, or a rotated one
persisted in a `TokenStore`), otherwise `client_credentials`. Both POST to `<host>/oauth/token`
with the client id and secret in the form body (`client_secret_post`).

Why a process-wide cache: parallel hook instances in one worker (mapped tasks, threads) must share
one access token, and a refresh must happen once. With rotating refresh tokens a second,
concurrent refresh would present a token the first one just invalidated. So each connection has
one `_TokenSlot` guarded by a lock; whoever holds the lock renews, the others reuse the result.

Why a `TokenStore`: connections given as `AIRFLOW_CONN_*` environment variables cannot be written
back, so a rotated refresh token is saved to the store (the state database, Fernet-encrypted) and
preferred over the connection's value from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

#: Renew this long before the token expires (halved for very short-lived tokens).
DEFAULT_RENEW_MARGIN_SECONDS = 60.0
#: Whiplash access tokens last two hours when the answer does not say.
DEFAULT_EXPIRES_IN_SECONDS = 7200.0


@runtime_checkable
class TokenStore(Protocol):
    """Where a rotated refresh token survives the process (keyed by connection id)."""

    def load(self, name: str) -> str | None: ...

    def save(self, name: str, token: str) -> None: ...


class InMemoryTokenStore:
    """A `TokenStore` in a dict: for tests and single-process demos, not for production."""

    def __init__(self, initial: Mapping[str, str] | None = None) -> None:
        self._tokens: dict[str, str] = dict(initial or {})
        self._lock = threading.Lock()
        self.saves: list[str] = []

    def load(self, name: str) -> str | None:
        with self._lock:
            return self._tokens.get(name)

    def save(self, name: str, token: str) -> None:
        with self._lock:
            self._tokens[name] = token
            self.saves.append(name)


class StateStoreTokenStore:
    """Adapts the state store (`include.returns_sync.state`) to the `TokenStore` protocol.

    Duck-typed: `store` needs `save_refresh_token(name, token, fernet_key)` and
    `load_refresh_token(name, fernet_key)`; the token is encrypted with Airflow's Fernet key.
    """

    def __init__(self, store: Any, fernet_key: str) -> None:
        if not fernet_key:
            raise ValueError("StateStoreTokenStore needs a Fernet key to encrypt refresh tokens")
        self._store = store
        self._fernet_key = fernet_key

    def load(self, name: str) -> str | None:
        token = self._store.load_refresh_token(name, self._fernet_key)
        return str(token) if token else None

    def save(self, name: str, token: str) -> None:
        self._store.save_refresh_token(name, token, self._fernet_key)


@dataclass(frozen=True)
class OAuthCredentials:
    """What a Whiplash connection says about OAuth (never logged, never in a repr)."""

    conn_id: str
    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str | None

    def __repr__(self) -> str:
        return f"OAuthCredentials(conn_id={self.conn_id!r}, token_url={self.token_url!r})"


@dataclass(frozen=True)
class GrantedToken:
    """A token endpoint's answer, validated."""

    access_token: str
    expires_in: float
    refresh_token: str | None

    def __repr__(self) -> str:
        return f"GrantedToken(expires_in={self.expires_in})"


class _TokenSlot:
    """One connection's token state in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.access_token: str | None = None
        self.expires_at = 0.0
        self.latest_refresh_token: str | None = None
        self.grants = 0


_SLOTS: dict[tuple[str, str, str], _TokenSlot] = {}
_SLOTS_LOCK = threading.Lock()


def _slot_for(credentials: OAuthCredentials) -> _TokenSlot:
    # Keyed by connection id, plus host and client so that a changed connection starts afresh.
    key = (credentials.conn_id, credentials.token_url, credentials.client_id)
    with _SLOTS_LOCK:
        slot = _SLOTS.get(key)
        if slot is None:
            slot = _SLOTS[key] = _TokenSlot()
        return slot


def reset_token_cache() -> None:
    """Forget every cached token (tests; or after credentials were changed)."""
    with _SLOTS_LOCK:
        _SLOTS.clear()


#: Sends one form POST to the token endpoint and returns the decoded JSON answer.
TokenRequester = Callable[[Mapping[str, str]], Any]


class OAuthSession:
    """Hands out a valid bearer token for one connection, renewing it when needed.

    `request_token` does the HTTP (through the hook's retry policy and rate limiter) so this
    class stays free of transport concerns and is easy to test.
    """

    def __init__(
        self,
        credentials: OAuthCredentials,
        request_token: TokenRequester,
        *,
        token_store: TokenStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        renew_margin_seconds: float = DEFAULT_RENEW_MARGIN_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._request_token = request_token
        self._token_store = token_store
        self._clock = clock
        self._margin = renew_margin_seconds
        self._slot = _slot_for(credentials)

    @property
    def grants(self) -> int:
        """How many tokens this process fetched for the connection (benchmarks, tests)."""
        return self._slot.grants

    def bearer_token(self) -> str:
        """A token valid for at least the renewal margin; fetched once per expiry per process."""
        slot = self._slot
        with slot.lock:
            if slot.access_token and self._clock() < slot.expires_at:
                return slot.access_token
            return self._grant(slot)

    def renew_after_rejection(self, rejected_token: str | None) -> str:
        """The vendor answered 401 to `rejected_token`: renew, unless another thread already did."""
        slot = self._slot
        with slot.lock:
            if (
                slot.access_token
                and slot.access_token != rejected_token
                and self._clock() < slot.expires_at
            ):
                return slot.access_token
            return self._grant(slot)

    def _grant(self, slot: _TokenSlot) -> str:
        """Fetch a new token; caller holds the slot lock."""
        refresh_token = self._current_refresh_token(slot)
        credentials = self._credentials
        form = {"client_id": credentials.client_id, "client_secret": credentials.client_secret}
        if refresh_token:
            form |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            form |= {"grant_type": "client_credentials"}
        granted = self._request_token(form)
        if not isinstance(granted, GrantedToken):
            raise TypeError("request_token must return a GrantedToken")
        slot.grants += 1
        slot.access_token = granted.access_token
        margin = min(self._margin, granted.expires_in / 2)
        slot.expires_at = self._clock() + granted.expires_in - margin
        if granted.refresh_token and granted.refresh_token != refresh_token:
            self._persist_rotation(slot, granted.refresh_token)
        return granted.access_token

    def _current_refresh_token(self, slot: _TokenSlot) -> str | None:
        """Store first (another process may have rotated), then this process, then the connection."""
        if self._token_store is not None:
            stored = self._token_store.load(self._credentials.conn_id)
            if stored:
                return stored
        return slot.latest_refresh_token or self._credentials.refresh_token

    def _persist_rotation(self, slot: _TokenSlot, new_token: str) -> None:
        slot.latest_refresh_token = new_token
        if self._token_store is None:
            if self._credentials.refresh_token:
                log.warning(
                    "Whiplash rotated the refresh token of connection %r but no TokenStore is "
                    "configured: the new token lives in this process only",
                    self._credentials.conn_id,
                )
            return
        self._token_store.save(self._credentials.conn_id, new_token)
        log.info("Persisted the rotated refresh token of connection %r", self._credentials.conn_id)


def parse_token_answer(answer: Any) -> GrantedToken | str:
    """A `GrantedToken` from the token endpoint's JSON, or a reason why it is not one."""
    if not isinstance(answer, Mapping):
        return "the token endpoint did not answer with a JSON object"
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        return "the token endpoint answered without an access_token"
    token_type = answer.get("token_type")
    if token_type is not None and str(token_type).lower() != "bearer":
        return f"the token endpoint issued a {token_type!r} token, expected a bearer token"
    expires_in = answer.get("expires_in", DEFAULT_EXPIRES_IN_SECONDS)
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return "the token endpoint answered with a non-numeric expires_in"
    if seconds <= 0:
        return "the token endpoint answered with an already expired token"
    refresh_token = answer.get("refresh_token")
    return GrantedToken(
        access_token=access_token,
        expires_in=seconds,
        refresh_token=str(refresh_token) if refresh_token else None,
    )
