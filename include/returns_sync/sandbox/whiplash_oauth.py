"""The Whiplash simulator's OAuth2 token endpoint (`POST /oauth/token`), Doorkeeper-style.

Whiplash runs Doorkeeper, so this follows Doorkeeper's defaults where the vendor's docs are
silent:

- `client_credentials` answers without a refresh token (RFC 6749 section 4.4.3); `refresh_token`
  answers with a NEW refresh token and revokes the access token issued beside the old one
  (`revoke_access_on_refresh=False` keeps old access tokens alive instead).
- Wrong client id / secret is `401 {"error": "invalid_client"}`; a missing parameter is
  `400 {"error": "invalid_request"}`; another grant is `400 {"error": "unsupported_grant_type"}`.
- Access tokens expire `token_ttl_seconds` after issue, measured on the sandbox clock.

Lenient and strict (`strict` is read on every request, so `WhiplashBackend.strict` can change
while the server runs; see `strict.py`):

| | lenient | strict |
| --- | --- | --- |
| client credentials without `scope` | `app_manage` (may write) | no scope: read-only, a write is `403` |
| spent refresh token | revoked at once when presented (Doorkeeper without `previous_refresh_token`) | revoked once its successor is used (Doorkeeper's `previous_refresh_token` mode) |

Strict revocation, the harsher consistent reading of "revoked once its successor is used": a
refresh token R that was rotated into R' stays valid until R' is *used*, meaning either R' is
presented to `/oauth/token` or an access token granted beside R' authenticates an API request.
At that moment R is revoked, and so is every other successor of R (a sibling granted when R was
presented twice) with its access token: only the branch in use survives. So a refresh whose
answer was lost can be retried with the same token (its successor was never used), while two
processes refreshing with the same token at once both get an answer and one of them meets
`invalid_grant` (or a 401) as soon as the other uses its token. Reusing a revoked refresh token
is `400 {"error": "invalid_grant"}` in both modes; `stats()` counts those answers.

Scopes (strict): `app_manage` and `user_manage` may write, `app_read`, `user_read` and no scope
may only read. A refresh grant without `scope` keeps the scope of the token it refreshes (RFC
6749 section 6); the seeded refresh token carries `user_manage`. A write with a read-only
token is `403 {"error": "insufficient_scope", ...}` with Doorkeeper's `WWW-Authenticate`.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from include.returns_sync.sandbox.clock import SandboxClock

_INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
_INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)
_INSUFFICIENT_SCOPE = "The request requires higher privileges than provided by the access token."
#: Scopes that may write (Doorkeeper `doorkeeper_authorize! :app_manage, :user_manage`).
WRITE_SCOPES = frozenset({"app_manage", "user_manage"})
#: The scope of the seeded refresh token (the manual authorization-code bootstrap).
SEED_SCOPE = "user_manage"


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


class InsufficientScope(Exception):
    """A write with a token whose scope only reads (HTTP 403, strict mode)."""

    def __init__(self, scope: str) -> None:
        super().__init__(_INSUFFICIENT_SCOPE)
        self.scope = scope

    def body(self) -> dict[str, str]:
        return {
            "error": "insufficient_scope",
            "error_description": _INSUFFICIENT_SCOPE,
            "message": f"Forbidden: the token's scope {self.scope or '(none)'!r} cannot write; "
            "request app_manage",
        }


@dataclass
class _AccessToken:
    value: str
    issued_at: datetime
    expires_at: datetime
    refresh_token: str | None
    scope: str
    revoked: bool = False


@dataclass
class _RefreshToken:
    value: str
    scope: str
    access: str  # the access token issued beside it ("" for the seeded one)
    parent: str | None  # the refresh token it was rotated from
    children: list[str] = field(default_factory=list)
    revoked: bool = False
    used: bool = False  # presented, or its access token authenticated a request


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
        strict: Callable[[], bool] = lambda: False,
    ) -> None:
        if token_ttl_seconds < 1:
            raise ValueError(f"token_ttl_seconds must be >= 1, got {token_ttl_seconds}")
        self._clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.revoke_access_on_refresh = revoke_access_on_refresh
        self._strict = strict
        self._lock = threading.Lock()
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        if refresh_token:
            self._refresh[refresh_token] = _RefreshToken(refresh_token, SEED_SCOPE, "", None)
        self.grants: list[str] = []
        self._errors: Counter[str] = Counter()
        self._lost_answers = 0

    @property
    def current_refresh_token(self) -> str | None:
        """The refresh token a well-behaved client should hold now (the newest live one)."""
        with self._lock:
            return next(
                (value for value, token in reversed(self._refresh.items()) if not token.revoked),
                None,
            )

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one `POST /oauth/token`; raises `OAuthError` on any refusal."""
        try:
            return self._grant(params)
        except OAuthError as exc:
            with self._lock:
                self._errors[exc.error] += 1
            raise

    def _grant(self, params: dict[str, Any]) -> dict[str, Any]:
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
        strict = self._strict()
        scope = " ".join(_text(params.get("scope")).split())
        with self._lock:
            if grant_type == "client_credentials":
                default = "" if strict else "app_manage"
                token = self._issue(scope=scope or default, refresh=False, parent=None)
            else:
                token = self._rotate(_text(params.get("refresh_token")), scope, strict)
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

    def check(self, authorization: str | None, *, write: bool = False) -> None:
        """Accept `Authorization: Bearer <token>` or raise `TokenRejected` saying why.

        Strict: a write needs a write scope (`InsufficientScope`), and the first use of a token
        revokes the refresh token it was rotated from.
        """
        if not authorization or not authorization.lower().startswith("bearer "):
            raise TokenRejected("The access token is missing")
        value = authorization[len("bearer ") :].strip()
        strict = self._strict()
        with self._lock:
            token = self._access.get(value)
            if token is None:
                raise TokenRejected("The access token is invalid")
            if token.revoked:
                raise TokenRejected("The access token was revoked")
            if self._clock.now() >= token.expires_at:
                raise TokenRejected("The access token expired")
            if strict and token.refresh_token:
                self._successor_used(token.refresh_token)
            if strict and write and not set(token.scope.split()) & WRITE_SCOPES:
                raise InsufficientScope(token.scope)

    def revoke_all(self) -> None:
        """Revoke every access token (refresh tokens stay usable, so a client can recover)."""
        with self._lock:
            for token in self._access.values():
                token.revoked = True

    def lose_next_answers(self, count: int = 1) -> None:
        """The next `count` successful grants are applied, then their answers are lost."""
        with self._lock:
            self._lost_answers = count

    def take_lost_answer(self) -> bool:
        """True (once per `lose_next_answers`) when the answer just granted must be lost."""
        with self._lock:
            if self._lost_answers <= 0:
                return False
            self._lost_answers -= 1
            return True

    def stats(self) -> dict[str, Any]:
        """`{"grants": {grant_type: n}, "errors": {error: n}, "invalid_grant": n}`."""
        with self._lock:
            return {
                "grants": dict(Counter(self.grants)),
                "errors": dict(self._errors),
                "invalid_grant": self._errors["invalid_grant"],
            }

    def reset_stats(self) -> None:
        with self._lock:
            self.grants.clear()
            self._errors.clear()

    # ------------------------------------------------------------------ internals

    def _authenticate(self, params: dict[str, Any]) -> None:
        client_ok = secrets.compare_digest(_text(params.get("client_id")), self.client_id)
        secret_ok = secrets.compare_digest(_text(params.get("client_secret")), self.client_secret)
        if not (client_ok and secret_ok):
            raise OAuthError(401, "invalid_client", _INVALID_CLIENT)

    def _rotate(self, presented: str, scope: str, strict: bool) -> _AccessToken:
        if not presented:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token.")
        previous = self._refresh.get(presented)
        if previous is None or previous.revoked:
            raise OAuthError(400, "invalid_grant", _INVALID_GRANT)
        if strict:
            # Presenting R' is a use of R': its parent (and R's other successors) are revoked;
            # R itself stays valid until one of its own successors is used.
            self._successor_used(presented)
        else:
            previous.revoked = True
        if self.revoke_access_on_refresh and previous.access in self._access:
            self._access[previous.access].revoked = True
        return self._issue(scope=scope or previous.scope, refresh=True, parent=presented)

    def _successor_used(self, refresh_value: str) -> None:
        """Strict: the refresh token `refresh_value` (or its access token) was just used."""
        token = self._refresh.get(refresh_value)
        if token is None or token.used:
            return
        token.used = True
        parent = self._refresh.get(token.parent) if token.parent else None
        if parent is None:
            return
        parent.revoked = True
        for sibling_value in parent.children:
            if sibling_value == refresh_value:
                continue
            sibling = self._refresh[sibling_value]
            sibling.revoked = True
            if sibling.access in self._access:
                self._access[sibling.access].revoked = True

    def _issue(self, *, scope: str, refresh: bool, parent: str | None) -> _AccessToken:
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
            self._refresh[token.refresh_token] = _RefreshToken(
                token.refresh_token, scope, token.value, parent
            )
            if parent is not None:
                self._refresh[parent].children.append(token.refresh_token)
        return token


def _text(value: Any) -> str:
    return "" if value is None else str(value)
