"""Whiplash OAuth2 bearer tokens: fetch, cache per process, share across processes, rotate safely.

Grants: `refresh_token` when a refresh token is known (the connection's extra, or a rotated one
persisted in the state store), otherwise `client_credentials` with a `scope` (connection extra
`scope`, default `app_manage`: a client-credentials token without one may be read-only). Both
POST to `<host>/oauth/token` with the client id and secret in the form body
(`client_secret_post`).

Two levels of sharing, because Whiplash may revoke a refresh token once its successor is used,
so two refreshes with one token must never race:

- In a process: one `_TokenSlot` per connection, guarded by a lock; whoever holds it renews, the
  other threads reuse the result (the fast path: no database read while the token is fresh).
- Across processes (Celery workers, task processes), when the token store is a `SharedTokenStore`
  (the state store, `StateStoreTokenStore`): the slot in the database holds the current access
  token, when to renew it and the current refresh token (Fernet-encrypted). A process that needs
  a token first adopts a fresh one from there; otherwise it takes the refresh lease (one short
  transaction), refreshes over HTTP with no transaction open, stores the new tokens and releases
  the lease (one short transaction, compare-and-swap on the slot's version) and only then hands
  the new access token out: the rotated refresh token is stored before it is used. Processes
  that find the lease taken poll the slot and adopt the new token. A lease whose holder died
  expires after `lease_seconds`.

A refresh whose answer was lost (timeout, dropped connection, 5xx) is retried once, under the
same lease, with the same refresh token (`WhiplashHook._request_token`): a vendor that revokes a
refresh token only once its successor is used accepts it, because nobody ever saw the successor.
A vendor that spends it at once answers `invalid_grant`, and the task fails saying how to
re-authorise.

The stored chain remembers what it descends from (`origin`: a fingerprint of token URL, client
id and the connection's refresh token). Putting a new refresh token in the connection therefore
re-authorises: the stored one is ignored and overwritten by the next refresh.

Connections given as `AIRFLOW_CONN_*` environment variables cannot be written back, which is why
the rotated token lives in the store and is preferred over the connection's value once present.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

#: Renew this long before the token expires (halved for very short-lived tokens).
DEFAULT_RENEW_MARGIN_SECONDS = 60.0
#: Whiplash access tokens last two hours when the answer does not say.
DEFAULT_EXPIRES_IN_SECONDS = 7200.0
#: Scope asked for with the client-credentials grant (the default scope may be read-only).
DEFAULT_SCOPE = "app_manage"
#: How long a refresh lease lasts at most: longer than a refresh with its one retry can take
#: (two 30 s timeouts and the wait between them), short enough that a dead holder is survived.
DEFAULT_LEASE_SECONDS = 120.0
#: How often a process waiting for another one's refresh looks at the shared slot.
DEFAULT_POLL_SECONDS = 0.05


@runtime_checkable
class TokenStore(Protocol):
    """Where a rotated refresh token survives the process (keyed by connection id)."""

    def load(self, name: str) -> str | None: ...

    def save(self, name: str, token: str) -> None: ...


@dataclass(frozen=True)
class SharedSlot:
    """A connection's tokens as stored for every process (never in a repr)."""

    refresh_token: str | None
    access_token: str | None
    renew_at: datetime | None  # wall clock, UTC
    origin: str | None
    version: int

    def __repr__(self) -> str:
        return f"SharedSlot(version={self.version}, renew_at={self.renew_at!r})"


@runtime_checkable
class SharedTokenStore(TokenStore, Protocol):
    """A `TokenStore` shared by processes, with a refresh lease (see the module docstring)."""

    def read_slot(self, name: str) -> SharedSlot | None: ...

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool: ...

    def write_slot(
        self,
        name: str,
        owner: str,
        *,
        expected_version: int,
        refresh_token: str | None,
        access_token: str,
        renew_at: datetime,
        origin: str,
    ) -> bool: ...

    def release_lease(self, name: str, owner: str) -> None: ...


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

    Duck-typed: `store` needs `save_refresh_token` / `load_refresh_token` and the token-slot
    methods (`read_oauth_slot`, `acquire_oauth_lease`, `write_oauth_slot`,
    `release_oauth_lease`); tokens are encrypted with Airflow's Fernet key. A `SharedTokenStore`.
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

    def read_slot(self, name: str) -> SharedSlot | None:
        slot = self._store.read_oauth_slot(name, self._fernet_key)
        if slot is None:
            return None
        return SharedSlot(
            refresh_token=slot.refresh_token,
            access_token=slot.access_token,
            renew_at=slot.access_renew_at,
            origin=slot.origin,
            version=slot.version,
        )

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        return bool(self._store.acquire_oauth_lease(name, owner, timedelta(seconds=seconds)))

    def write_slot(
        self,
        name: str,
        owner: str,
        *,
        expected_version: int,
        refresh_token: str | None,
        access_token: str,
        renew_at: datetime,
        origin: str,
    ) -> bool:
        return bool(
            self._store.write_oauth_slot(
                name,
                owner,
                self._fernet_key,
                expected_version=expected_version,
                refresh_token=refresh_token,
                access_token=access_token,
                access_renew_at=renew_at,
                origin=origin,
            )
        )

    def release_lease(self, name: str, owner: str) -> None:
        self._store.release_oauth_lease(name, owner)


@dataclass(frozen=True)
class OAuthCredentials:
    """What a Whiplash connection says about OAuth (never logged, never in a repr)."""

    conn_id: str
    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str | None
    #: Sent with the client-credentials grant; "" sends none.
    scope: str = DEFAULT_SCOPE

    def __repr__(self) -> str:
        return f"OAuthCredentials(conn_id={self.conn_id!r}, token_url={self.token_url!r})"

    @property
    def origin(self) -> str:
        """Fingerprint of what a stored token chain descends from (no secret can be read back)."""
        material = "\n".join((self.token_url, self.client_id, self.refresh_token or ""))
        return hashlib.sha256(material.encode()).hexdigest()


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
    class stays free of transport concerns and is easy to test. With a `SharedTokenStore` the
    token is shared by every process through the store (see the module docstring).
    """

    def __init__(
        self,
        credentials: OAuthCredentials,
        request_token: TokenRequester,
        *,
        token_store: TokenStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        renew_margin_seconds: float = DEFAULT_RENEW_MARGIN_SECONDS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._request_token = request_token
        self._token_store = token_store
        self._shared = token_store if isinstance(token_store, SharedTokenStore) else None
        self._clock = clock
        self._wall_clock = wall_clock
        self._margin = renew_margin_seconds
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
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
            return self._renew(slot, None)

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
            return self._renew(slot, rejected_token)

    # ------------------------------------------------------------------ renewal

    def _renew(self, slot: _TokenSlot, rejected: str | None) -> str:
        """Caller holds the slot lock."""
        if self._shared is None:
            return self._grant(slot)
        return self._renew_shared(slot, self._shared, rejected)

    def _renew_shared(self, slot: _TokenSlot, store: SharedTokenStore, rejected: str | None) -> str:
        """Adopt the stored token, or refresh under the lease (see the module docstring)."""
        name = self._credentials.conn_id
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # Waiting longer than a lease means its holder died: then the lease is free again.
        deadline = time.monotonic() + 2 * self._lease_seconds + 5
        waited = False
        while True:
            adopted = self._adopt(slot, store.read_slot(name), rejected)
            if adopted is not None:
                if waited:
                    log.debug("Adopted the token another process refreshed for %r", name)
                return adopted
            if store.acquire_lease(name, owner, self._lease_seconds):
                refreshed = self._refresh_under_lease(slot, store, name, owner, rejected)
                if refreshed is not None:
                    return refreshed
                # Another process stored a newer token meanwhile: adopt it on the next look.
            elif time.monotonic() > deadline:
                raise TimeoutError(
                    f"waited {2 * self._lease_seconds + 5:.0f}s for another process to refresh "
                    f"the token of connection {name!r}"
                )
            waited = True
            time.sleep(self._poll_seconds * (0.5 + random.random()))

    def _adopt(
        self, slot: _TokenSlot, shared: SharedSlot | None, rejected: str | None
    ) -> str | None:
        """Use the stored access token if it is ours to use and not due for renewal."""
        if shared is None or not shared.access_token or shared.renew_at is None:
            return None
        if not self._same_origin(shared) or shared.access_token == rejected:
            return None
        remaining = (shared.renew_at - self._now_wall()).total_seconds()
        if remaining <= 0:
            return None
        slot.access_token = shared.access_token
        slot.expires_at = self._clock() + remaining
        slot.latest_refresh_token = shared.refresh_token
        return shared.access_token

    def _same_origin(self, shared: SharedSlot) -> bool:
        # A slot written before revision 0004 (no origin) is trusted: it was rotated from ours.
        return shared.origin is None or shared.origin == self._credentials.origin

    def _refresh_under_lease(
        self,
        slot: _TokenSlot,
        store: SharedTokenStore,
        name: str,
        owner: str,
        rejected: str | None,
    ) -> str | None:
        """We hold the lease: refresh, store, release. None when another process won the race."""
        try:
            shared = store.read_slot(name)  # re-read: it may have been refreshed meanwhile
            adopted = self._adopt(slot, shared, rejected)
            if adopted is not None:
                store.release_lease(name, owner)
                return adopted
            refresh_token = self._credentials.refresh_token
            if shared is not None and shared.refresh_token and self._same_origin(shared):
                refresh_token = shared.refresh_token
            granted = self._request(refresh_token)
            rotated = granted.refresh_token or refresh_token
            lifetime = granted.expires_in - min(self._margin, granted.expires_in / 2)
            renew_at = self._now_wall() + timedelta(seconds=lifetime)
            expires_at = self._clock() + lifetime
        except BaseException:
            _release_quietly(store, name, owner)
            raise
        try:
            written = store.write_slot(
                name,
                owner,
                expected_version=shared.version if shared is not None else 0,
                refresh_token=rotated,
                access_token=granted.access_token,
                renew_at=renew_at,
                origin=self._credentials.origin,
            )
        except BaseException:
            # Not stored, so not used: a vendor that revokes a refresh token only once its
            # successor is used still accepts the old one on the next attempt.
            _release_quietly(store, name, owner)
            raise
        if not written:
            log.warning(
                "Another process stored a token for connection %r while this one refreshed "
                "(its lease had expired); using the stored one",
                name,
            )
            return None
        # Stored (committed) first, handed out second: the rotated token can never be lost.
        slot.grants += 1
        slot.access_token = granted.access_token
        slot.expires_at = expires_at
        slot.latest_refresh_token = rotated
        if granted.refresh_token and granted.refresh_token != refresh_token:
            log.info("Stored the rotated refresh token of connection %r", name)
        return granted.access_token

    def _now_wall(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), UTC)

    def _request(self, refresh_token: str | None) -> GrantedToken:
        credentials = self._credentials
        form = {"client_id": credentials.client_id, "client_secret": credentials.client_secret}
        if refresh_token:
            form |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            form |= {"grant_type": "client_credentials"}
            if credentials.scope:
                form["scope"] = credentials.scope
        granted = self._request_token(form)
        if not isinstance(granted, GrantedToken):
            raise TypeError("request_token must return a GrantedToken")
        return granted

    def _grant(self, slot: _TokenSlot) -> str:
        """Fetch a new token without a shared store; caller holds the slot lock."""
        refresh_token = self._current_refresh_token(slot)
        granted = self._request(refresh_token)
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


def _release_quietly(store: SharedTokenStore, name: str, owner: str) -> None:
    try:
        store.release_lease(name, owner)
    except Exception:  # the store is failing already; the lease expires on its own
        log.warning("Could not release the token lease of connection %r", name, exc_info=True)


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
