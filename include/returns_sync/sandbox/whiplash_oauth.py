"""The Whiplash simulator's OAuth2 token endpoint (`POST /oauth/token`), Doorkeeper-style.

Whiplash runs Doorkeeper, so this follows Doorkeeper's defaults where the vendor's docs are
silent:

- `client_credentials` answers without a refresh token (RFC 6749 section 4.4.3); `refresh_token`
  answers with a NEW refresh token and revokes the old one together with the access token
  issued beside it (`revoke_access_on_refresh=False` keeps old access tokens alive instead).
  Reusing a spent refresh token is `400 {"error": "invalid_grant"}`.
- Wrong client id / secret is `401 {"error": "invalid_client"}`; a missing parameter is
  `400 {"error": "invalid_request"}`; another grant is `400 {"error": "unsupported_grant_type"}`.
- Access tokens expire `token_ttl_seconds` after issue, measured on the sandbox clock.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from include.returns_sync.sandbox.common import SandboxClock

_INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
_INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)


class OAuthError(Exception):
    """A token-endpoint refusal, rendered as `{"error": code, "error_description": ...}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class TokenRejected(Exception):
    """An API request's bearer token is missing, unknown, revoked or expired (HTTP 401)."""


@dataclass
class _AccessToken:
    value: str
    issued_at: datetime
    expires_at: datetime
    refresh_token: str | None
    scope: str
    revoked: bool = False


class TokenIssuer:
    """Issues, rotates, checks and revokes tokens for one OAuth application."""

    def __init__(
        self,
        clock: SandboxClock,
        client_id: str,
        client_secret: str,
        token_ttl_seconds: int,
        refresh_token: str | None,
        *,
        revoke_access_on_refresh: bool = True,
    ) -> None:
        if token_ttl_seconds < 1:
            raise ValueError(f"token_ttl_seconds must be >= 1, got {token_ttl_seconds}")
        self._clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.revoke_access_on_refresh = revoke_access_on_refresh
        self._lock = threading.Lock()
        self._access: dict[str, _AccessToken] = {}
        # refresh token -> the access token issued with it ("" for the seeded one)
        self._refresh: dict[str, str] = {refresh_token: ""} if refresh_token else {}
        self.grants: list[str] = []

    @property
    def current_refresh_token(self) -> str | None:
        """The refresh token a well-behaved client should hold now (the newest one)."""
        with self._lock:
            return next(reversed(self._refresh), None)

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one `POST /oauth/token`; raises `OAuthError` on any refusal."""
        grant_type = _text(params.get("grant_type"))
        if not grant_type:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type.")
        if grant_type not in ("client_credentials", "refresh_token"):
            raise OAuthError(
                400,
                "unsupported_grant_type",
                f"The authorization grant type {grant_type!r} is not supported by the server.",
            )
        self._authenticate(params)
        with self._lock:
            if grant_type == "client_credentials":
                token = self._issue(scope=_text(params.get("scope")) or "app_manage", refresh=False)
            else:
                token = self._rotate(_text(params.get("refresh_token")), _text(params.get("scope")))
            self.grants.append(grant_type)
        answer: dict[str, Any] = {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": self.token_ttl_seconds,
            "scope": token.scope,
            "created_at": int(token.issued_at.timestamp()),
        }
        if token.refresh_token:
            answer["refresh_token"] = token.refresh_token
        return answer

    def check(self, authorization: str | None) -> None:
        """Accept `Authorization: Bearer <token>` or raise `TokenRejected` saying why."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise TokenRejected("The access token is missing")
        value = authorization[len("bearer ") :].strip()
        with self._lock:
            token = self._access.get(value)
            if token is None:
                raise TokenRejected("The access token is invalid")
            if token.revoked:
                raise TokenRejected("The access token was revoked")
            if self._clock.now() >= token.expires_at:
                raise TokenRejected("The access token expired")

    def revoke_all(self) -> None:
        """Revoke every access token (refresh tokens stay usable, so a client can recover)."""
        with self._lock:
            for token in self._access.values():
                token.revoked = True

    # ------------------------------------------------------------------ internals

    def _authenticate(self, params: dict[str, Any]) -> None:
        client_ok = secrets.compare_digest(_text(params.get("client_id")), self.client_id)
        secret_ok = secrets.compare_digest(_text(params.get("client_secret")), self.client_secret)
        if not (client_ok and secret_ok):
            raise OAuthError(401, "invalid_client", _INVALID_CLIENT)

    def _rotate(self, presented: str, scope: str) -> _AccessToken:
        if not presented:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token.")
        if presented not in self._refresh:
            raise OAuthError(400, "invalid_grant", _INVALID_GRANT)
        previous_access = self._refresh.pop(presented)
        if self.revoke_access_on_refresh and previous_access in self._access:
            self._access[previous_access].revoked = True
        return self._issue(scope=scope or "user_manage", refresh=True)

    def _issue(self, *, scope: str, refresh: bool) -> _AccessToken:
        now = self._clock.now()
        token = _AccessToken(
            value=secrets.token_urlsafe(32),
            issued_at=now,
            expires_at=now + timedelta(seconds=self.token_ttl_seconds),
            refresh_token=secrets.token_urlsafe(32) if refresh else None,
            scope=scope,
        )
        self._access[token.value] = token
        if token.refresh_token:
            self._refresh[token.refresh_token] = token.value
        return token


def _text(value: Any) -> str:
    return "" if value is None else str(value)
