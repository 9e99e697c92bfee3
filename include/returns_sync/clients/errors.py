"""What can go wrong when we talk to Loop or Whiplash, as exceptions a caller can act on.

Plain Python (no Airflow, no `requests`): the domain layer imports these types to tell failures
apart, and the task layer (`tasks/failures.py`) turns the ones no retry can fix
(`VendorAuthError`, `ConnectionNotDefined`) into Airflow's fail-without-retries.

Every failure of a vendor call surfaces as a `VendorError` subclass naming the vendor, the HTTP
status, the vendor's error code (when it sent one), a readable message, and the method and path
of the request. Messages never contain credentials, tokens or response bodies that are not JSON
(an HTML error page can echo request headers); only the vendor's own error message is quoted.

The retry policy (`policy.py`) reads two facts from an error: `transient` (waiting and trying
again may help) and `provably_not_applied` (the vendor certainly did not act on the request, so
even a non-idempotent create may be re-sent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

#: Longest vendor message we quote; vendor texts are short, anything longer is not a message.
_MAX_MESSAGE = 300


class VendorError(Exception):
    """A vendor call failed. Base class of everything the clients raise about a vendor."""

    #: Whether trying the same request again later may succeed.
    transient: bool = False

    def __init__(
        self,
        vendor: str,
        status: int | None,
        code: str | None,
        message: str,
        method: str,
        path: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.vendor = vendor
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP status"
        code = f" [{self.code}]" if self.code else ""
        return f"{self.vendor} {self.method} {self.path} failed ({status}){code}: {self.message}"

    @property
    def provably_not_applied(self) -> bool:
        """True only when the vendor certainly did not act on the request."""
        return False


class VendorAuthError(VendorError):
    """401/403: the key, secret or token was refused (or lacks the scope for this endpoint).

    The task layer fails the task at once on it, without its retries, because trying again
    cannot help until someone fixes the connection; the alert fires now.
    """


class VendorNotFound(VendorError):
    """404: the resource does not exist (or is not visible to these credentials)."""


class VendorConflict(VendorError):
    """409: the resource already exists; for a create, look it up and adopt it."""


class VendorValidationError(VendorError):
    """400/422: the vendor rejected what we sent; retrying the same request cannot help."""


class VendorRateLimited(VendorError):
    """429: over the vendor's rate limit; the request was not processed."""

    transient = True

    @property
    def provably_not_applied(self) -> bool:
        return True


class VendorServerError(VendorError):
    """5xx: the vendor failed. For a write, whether it was applied is unknown (except 503 +
    Retry-After, which a server or gateway only sends when it refused the request)."""

    transient = True

    @property
    def provably_not_applied(self) -> bool:
        return self.status == 503 and self.retry_after is not None


class VendorTransportError(VendorError):
    """No HTTP answer: a timeout, a refused or dropped connection.

    `request_sent` is False only when the failure happened while connecting, i.e. before a
    single byte of the request left this process.
    """

    def __init__(
        self,
        vendor: str,
        message: str,
        method: str,
        path: str,
        *,
        request_sent: bool,
        transient: bool = True,
    ) -> None:
        self.request_sent = request_sent
        self.transient = transient
        super().__init__(vendor, None, None, message, method, path)

    @property
    def provably_not_applied(self) -> bool:
        return not self.request_sent


class VendorBadResponse(VendorError):
    """The vendor answered, but not with the JSON we expected (malformed, HTML page, wrong shape).

    A 5xx HTML page from a gateway is transient; a 2xx that is not JSON is not.
    """

    def __init__(
        self,
        vendor: str,
        status: int | None,
        message: str,
        method: str,
        path: str,
        *,
        content_type: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.transient = status is not None and status >= 500
        super().__init__(vendor, status, None, message, method, path)


class AmbiguousWriteError(VendorError):
    """A non-idempotent request failed in a way that leaves its effect unknown.

    The request was sent, then the answer was lost (read timeout, dropped connection) or was a
    5xx. The vendor may or may not have applied it, so it is NOT re-sent: look the resource up
    (for an RMA: by the Loop return id; for a Loop action: re-read the return) before trying again.
    """

    def __init__(self, cause: VendorError) -> None:
        self.cause = cause
        super().__init__(
            cause.vendor,
            cause.status,
            cause.code,
            "the request may or may not have been applied "
            f"({cause.message}); look the resource up before trying again",
            cause.method,
            cause.path,
        )


class CredentialsUnavailable(VendorError):
    """No access token could be obtained (the token endpoint kept failing after its retries).

    The request that needed the token was never sent, so it is safe to try it again later; it is
    not retried here because the token request already was.
    """

    def __init__(self, cause: VendorError) -> None:
        self.cause = cause
        super().__init__(
            cause.vendor,
            cause.status,
            cause.code,
            f"could not obtain an access token ({cause.message})",
            cause.method,
            cause.path,
        )

    @property
    def provably_not_applied(self) -> bool:
        return True


class LoopActionRejected(VendorError):
    """A Loop return action answered HTTP 200 with an error body instead of `true`.

    `code` carries Loop's code (e.g. UNPROCESSABLE_RETURN, UNPROCESSABLE_FLAGGED_RETURN) when
    Loop sent one.
    """


class ConnectionNotDefined(Exception):
    """The Airflow connection a hook needs does not exist. The task layer fails the task on it
    without retries; the message names the connection and the two ways to define it."""

    def __init__(self, conn_id: str, fields: str) -> None:
        self.conn_id = conn_id
        super().__init__(
            f"connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or "
            f"create it in Admin > Connections ({fields})"
        )


def auth_error_message(vendor: str, conn_id: str, what: str, vendor_message: str | None) -> str:
    """The readable part of an auth failure: which connection, and what to check."""
    said = f" ({vendor_message})" if vendor_message else ""
    return (
        f"{vendor} refused the credentials of connection {conn_id!r}{said}; "
        f"check the {what} and its permissions"
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def describe_error_body(body: Any) -> tuple[str | None, str | None]:
    """Pull (code, message) out of a vendor error body; there is no single envelope.

    Shapes seen: Loop `{"errors": {"message", "code"}}`, `{"message": ...}`, `{"content": ...}`,
    `{"error": {"code", "http_code", "message"}}` (code and http_code swapped in 401s), Whiplash
    `{"message": ...}`, `{"error": "..."}`, `{"errors": {"field": ["msg"]}}`, OAuth
    `{"error": "invalid_grant", "error_description": ...}`.
    """
    if isinstance(body, str):
        return None, _clip(body)
    if not isinstance(body, Mapping):
        return None, None
    code: str | None = None
    message: str | None = None
    for key in ("errors", "error"):
        nested = body.get(key)
        if isinstance(nested, Mapping):
            code = code or _pick_code(nested)
            message = message or _text(nested.get("message")) or _field_messages(nested)
        elif isinstance(nested, list) and nested:
            message = message or "; ".join(str(item) for item in nested[:5])
        elif isinstance(nested, str) and nested:
            if key == "error" and "error_description" in body:
                code = code or nested
            else:
                message = message or nested
    message = (
        _text(body.get("message"))
        or _text(body.get("error_description"))
        or _text(body.get("content"))
        or message
    )
    if code is None:
        code = _pick_code(body)
    return code, _clip(message) if message else None


def _pick_code(mapping: Mapping[str, Any]) -> str | None:
    """Prefer a symbolic code (NOT_FOUND) over a numeric one ("401")."""
    candidates = [mapping.get("code"), mapping.get("http_code")]
    texts = [str(value) for value in candidates if value not in (None, "")]
    symbolic = [text for text in texts if not text.isdigit()]
    if symbolic:
        return symbolic[0]
    return None


def _field_messages(mapping: Mapping[str, Any]) -> str | None:
    """Rails-style `{"field": ["is invalid"]}` into `field: is invalid`."""
    parts = []
    for field, problems in mapping.items():
        if field in ("code", "http_code"):
            continue
        if isinstance(problems, list):
            parts.append(f"{field}: {', '.join(str(problem) for problem in problems)}")
        elif isinstance(problems, str):
            parts.append(f"{field}: {problems}")
    return "; ".join(parts) or None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def error_for_status(
    vendor: str,
    status: int,
    body: Any,
    method: str,
    path: str,
    *,
    conn_id: str,
    credential_hint: str,
    retry_after: float | None = None,
) -> VendorError:
    """The `VendorError` subclass for an HTTP error status and its (already parsed) JSON body."""
    code, message = describe_error_body(body)
    if status in (401, 403):
        text = auth_error_message(vendor, conn_id, credential_hint, message)
        return VendorAuthError(vendor, status, code, text, method, path)
    text = message or _default_message(status)
    kinds: dict[int, type[VendorError]] = {
        400: VendorValidationError,
        404: VendorNotFound,
        409: VendorConflict,
        422: VendorValidationError,
        429: VendorRateLimited,
    }
    if status in kinds:
        return kinds[status](vendor, status, code, text, method, path, retry_after=retry_after)
    if status >= 500:
        return VendorServerError(vendor, status, code, text, method, path, retry_after=retry_after)
    return VendorError(vendor, status, code, text, method, path, retry_after=retry_after)


def _default_message(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


def parse_json_body(
    vendor: str,
    status: int,
    content_type: str | None,
    raw: bytes,
    method: str,
    path: str,
) -> Any:
    """Decode a JSON answer or raise `VendorBadResponse` saying what came instead (never the body)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not raw.strip():
        return None
    looks_html = kind in ("text/html", "application/xhtml+xml") or raw.lstrip()[:1] == b"<"
    if looks_html:
        raise VendorBadResponse(
            vendor,
            status,
            f"expected JSON but got an HTML page (HTTP {status}, content type "
            f"{content_type or 'missing'}); is the host right, or is a proxy answering?",
            method,
            path,
            content_type=content_type,
        )
    try:
        return json.loads(raw)
    except ValueError:
        raise VendorBadResponse(
            vendor,
            status,
            f"malformed JSON in the response (HTTP {status}, content type "
            f"{content_type or 'missing'}, {len(raw)} bytes)",
            method,
            path,
            content_type=content_type,
        ) from None
