"""Read-only hooks for the doctor: the pipeline's own `LoopHook` / `WhiplashHook`, minus writes.

The doctor must be safe to run on a merchant's live accounts, so the hooks it uses refuse any
request that is not a GET, except the OAuth token grant (`ReadOnlyViolation`, raised before
anything is sent). They go through the same `_call` path as the pipeline (same connection
reading, headers, base URL and error mapping), with a short retry policy: a preflight should
answer in seconds, not wait out a long backoff.

`DoctorWhiplashHook` also remembers what the token endpoint answered about the grant (its type,
the scope asked for and the scope granted), which the hook itself does not keep. The form it
sent (it holds the client secret) is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.returns_sync.clients.base import Answer
from include.returns_sync.clients.loop import LoopHook
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.settings import settings

TOKEN_OPERATION = "oauth_token"


class ReadOnlyViolation(RuntimeError):
    """A doctor check tried to send something other than a GET (a bug in the check)."""


def doctor_retry_policy() -> RetryPolicy:
    """Three attempts, waits of a few seconds at most (scaled like the pipeline's in tests)."""
    scale = settings().retry_wait_scale
    return RetryPolicy(
        max_attempts=3,
        base_seconds=0.5 * scale,
        max_seconds=4.0 * scale,
        retry_after_cap_seconds=10.0 * scale,
    )


def _require_read(vendor: str, operation: str, method: str, path: str) -> None:
    if method.upper() == "GET":
        return
    if method.upper() == "POST" and operation == TOKEN_OPERATION:
        return
    raise ReadOnlyViolation(
        f"the doctor is read-only: refused {vendor} {method.upper()} {path} ({operation})"
    )


class DoctorLoopHook(LoopHook):
    """`LoopHook` that only reads."""

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> Answer:
        _require_read(self.vendor, operation, method, path)
        return super()._call(operation, method, path, **kwargs)


@dataclass(frozen=True)
class TokenGrant:
    """What one token request asked for and got (no secrets: no tokens, no client secret)."""

    grant_type: str
    requested_scope: str | None
    granted_scope: str | None
    scope_reported: bool
    rotated_refresh_token: bool


class DoctorWhiplashHook(WhiplashHook):
    """`WhiplashHook` that only reads, and records each token grant's scope.

    Built with the merchant's `customer_id` (sent as `X-Customer-ID`), so each check sees what
    that merchant's runs see.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grants: list[TokenGrant] = []

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> Answer:
        _require_read(self.vendor, operation, method, path)
        answer = super()._call(operation, method, path, **kwargs)
        if operation == TOKEN_OPERATION:
            form = kwargs.get("form") or {}
            body = answer.body if isinstance(answer.body, dict) else {}
            scope = body.get("scope")
            self.grants.append(
                TokenGrant(
                    grant_type=str(form.get("grant_type", "")),
                    requested_scope=str(form["scope"]) if form.get("scope") else None,
                    granted_scope=str(scope).strip() if scope not in (None, "") else None,
                    scope_reported="scope" in body,
                    rotated_refresh_token=bool(body.get("refresh_token"))
                    and form.get("grant_type") == "refresh_token",
                )
            )
        return answer
