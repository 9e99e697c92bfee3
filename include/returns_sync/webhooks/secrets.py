"""Webhook signing secrets, read from the vendors' Airflow connections.

| vendor | connection | secret |
| --- | --- | --- |
| Loop | the merchant's `loop_conn_id` (`loop_default`) | extra `webhook_secret` (Loop Admin > Developer Tools); required |
| Whiplash | each account's `whiplash_conn_id` (`whiplash_default`) | extra `webhook_secret` (if set) **and** the password (the OAuth client secret) |

With several merchants (PRODUCT.md section 3.1) each Loop shop signs with its own secret, so the
keys are looked up per connection id: the endpoint asks for the connection of the merchant the
URL names (Loop) or of each configured Whiplash account in turn (Whiplash).

`webhook_secret` may be one string or a list of strings (during a rotation, or when Loop shows
a different secret per subscription); a signature made with any of them is accepted. Whiplash's
docs disagree on its key (whiplash-api.md section 8.1): the V2 docs and Whiplash's own app gem
sign with the OAuth client secret, the newer help-center article with the account's API key.
So a Whiplash signature is accepted when made with any configured `webhook_secret` or with the
client secret, all compared in constant time; configuring the API key as `webhook_secret`
never makes client-secret-signed deliveries fail. Whiplash signs an empty body with the client
id (the login), so that is kept too.

Secrets are cached per process for `ttl` seconds, so a request does not read the connection
each time; a signature that does not match triggers one early re-read (at most every
`min_refresh` seconds), so a rotated secret is picked up without waiting for the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from include.returns_sync.runtime import LOOP_CONN_ID, WHIPLASH_CONN_ID
from include.returns_sync.webhooks.payloads import LOOP, WHIPLASH

SECRET_EXTRA = "webhook_secret"


class SecretsUnavailable(RuntimeError):
    """No usable signing secret: the endpoint cannot authenticate anything (answers 503)."""


@dataclass(frozen=True)
class SigningKeys:
    """What verifies one vendor's signatures."""

    secrets: tuple[str, ...]
    client_id: str | None = None

    def __repr__(self) -> str:  # never print secrets, even by accident
        return f"SigningKeys(<{len(self.secrets)} secret(s)>, client_id={self.client_id!r})"


class SecretSource(Protocol):
    def keys(
        self, source: str, *, conn_id: str | None = None, refresh: bool = False
    ) -> SigningKeys: ...


def _default_lookup(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _secret_list(extra: Any, conn_id: str) -> tuple[str, ...]:
    value = extra.get(SECRET_EXTRA) if isinstance(extra, dict) else None
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise SecretsUnavailable(
            f"connection {conn_id!r}: extra {SECRET_EXTRA!r} must be a string or a list of "
            "non-empty strings"
        )
    return tuple(values)


class ConnectionSecrets:
    """`SecretSource` over the Airflow connections, cached (see the module docstring)."""

    def __init__(
        self,
        *,
        loop_conn_id: str = LOOP_CONN_ID,
        whiplash_conn_id: str = WHIPLASH_CONN_ID,
        ttl: float = 30.0,
        min_refresh: float = 5.0,
        lookup: Callable[[str], Any] = _default_lookup,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn_ids = {LOOP: loop_conn_id, WHIPLASH: whiplash_conn_id}
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._lookup = lookup
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[SigningKeys, float]] = {}
        self._lock = threading.Lock()

    def keys(
        self, source: str, *, conn_id: str | None = None, refresh: bool = False
    ) -> SigningKeys:
        """The signing keys in connection `conn_id` (default: the vendor's default connection);
        `refresh` re-reads early (after a mismatch)."""
        if source not in self._conn_ids:
            raise ValueError(f"unknown webhook source {source!r}")
        target = conn_id or self._conn_ids[source]
        now = self._clock()
        with self._lock:
            cached = self._cache.get((source, target))
        if cached is not None:
            keys, loaded_at = cached
            age = now - loaded_at
            if age < self._ttl and not (refresh and age >= self._min_refresh):
                return keys
        keys = self._load(source, target)
        with self._lock:
            self._cache[(source, target)] = (keys, now)
        return keys

    def _load(self, source: str, conn_id: str) -> SigningKeys:
        try:
            connection = self._lookup(conn_id)
        except Exception as exc:  # not found, or the secrets backend failed
            raise SecretsUnavailable(
                f"connection {conn_id!r} could not be read ({type(exc).__name__})"
            ) from None
        secrets = _secret_list(connection.extra_dejson, conn_id)
        if source == WHIPLASH:
            if connection.password and str(connection.password) not in secrets:
                secrets = (*secrets, str(connection.password))
            if not secrets:
                raise SecretsUnavailable(
                    f"connection {conn_id!r} has neither a {SECRET_EXTRA!r} extra nor a client "
                    "secret (password) to verify Whiplash webhooks with"
                )
            return SigningKeys(secrets, client_id=connection.login or None)
        if not secrets:
            raise SecretsUnavailable(
                f"connection {conn_id!r} has no {SECRET_EXTRA!r} extra: copy the webhook secret "
                "from Loop Admin > Developer Tools into it"
            )
        return SigningKeys(secrets)


class StaticSecrets:
    """A fixed `SecretSource` (tests, and deployments that inject secrets another way).

    Keys are given per vendor (`"loop"`: any connection) or per vendor and connection
    (`("loop", "loop_acme")`), the latter winning.
    """

    def __init__(self, keys: dict[str | tuple[str, str], SigningKeys]) -> None:
        self._keys = dict(keys)

    def keys(
        self, source: str, *, conn_id: str | None = None, refresh: bool = False
    ) -> SigningKeys:
        if conn_id is not None and (source, conn_id) in self._keys:
            return self._keys[(source, conn_id)]
        if source not in self._keys:
            raise SecretsUnavailable(
                f"no signing secret configured for {source!r}"
                + (f" in connection {conn_id!r}" if conn_id else "")
            )
        return self._keys[source]
