"""What Loop and Whiplash hooks share: connection, session, one request path, errors, counters.

Every vendor request goes through `VendorHook._call`: count it, wait for its send time from the
rate limiter of its vendor account (`limiter.py`), add credentials, send with a timeout, turn the
answer into JSON or a `VendorError`,
all under the one `RetryPolicy`. Subclasses only say which endpoints to call and how to read them.

Deliberate differences from `HttpHook`:
- Connection extras are never copied into request headers (`HttpHook` does that; our extras hold
  a refresh token and a webhook secret, which must not travel to the vendor as headers).
- Redirects are not followed: `requests` would forward custom credential headers such as Loop's
  `X-Authorization` to whatever host a redirect names.
- The base URL may carry a path (`https://api.loopreturns.com/api/v1`); `schema` is only taken as
  the URL scheme when it is `http`/`https`, otherwise as that path (the URI form
  `http://:key@host:port/api/v1` puts the path there).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowNotFoundException
from pydantic import BaseModel, ValidationError
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from include.returns_sync.clients.errors import (
    ConnectionNotDefined,
    CredentialsUnavailable,
    VendorAuthError,
    VendorBadResponse,
    VendorError,
    VendorTransportError,
    error_for_status,
    parse_json_body,
    parse_retry_after,
)
from include.returns_sync.clients.limiter import (
    Pace,
    RateLimiter,
    VendorLimit,
    process_limiter,
)
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.settings import settings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

USER_AGENT = "returns-sync/0.1 (+Airflow)"
#: (connect, read) seconds. Connect fails fast; reads allow a slow vendor page.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_IDEMPOTENT_METHODS = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}

Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class Answer:
    """A successful vendor answer: status and decoded JSON (None for an empty body)."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def resolve_base_url(host: str | None, schema: str | None, port: int | None, default: str) -> str:
    """The API base URL from a connection's host/schema/port (see the module docstring)."""
    raw = (host or "").strip() or default
    scheme_hint = (schema or "").strip().strip("/")
    extra_path = ""
    if scheme_hint.lower() in ("http", "https"):
        scheme_hint = scheme_hint.lower()
    else:
        extra_path, scheme_hint = scheme_hint, ""
    if "://" not in raw:
        hostname = raw.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        scheme = scheme_hint or ("http" if hostname in _LOOPBACK else "https")
        raw = f"{scheme}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"host {raw!r} is not an http(s) URL")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if extra_path:
        path = f"{path}/{extra_path}"
    return urlunsplit((parts.scheme, netloc, path, "", "")).rstrip("/")


def api_pool_slots() -> int:
    """How many API tasks may run at once per vendor (the `loop_api` / `whiplash_api` pools).

    Concurrency (`RETURNS_SYNC_API_POOL_SLOTS`, default 2, the size `scripts/_env.sh` gives both
    pools): with the shared limiter the rate is kept per vendor account whatever the number of
    tasks. Only a hook without one (process-local fallback) still divides its default rate by
    it, since it cannot see the other processes.
    """
    return settings().api_pool_slots


class VendorHook(HttpHook):
    """Base of `LoopHook` and `WhiplashHook`; not used on its own.

    One instance per thread (it owns a `requests` session); instances of one connection share
    the access token, and every hook of one vendor account shares one send schedule through
    `limiter`, so creating more is cheap. Runtime passes a `SharedLimiter` over the state store,
    shared by every process of the deployment. Without one the hook falls back to this process's
    `process_limiter()`, and its default rate is then divided by `api_pool_slots()` (the old
    per-process split), so a hook built without the store still keeps the deployment under the
    vendor's limit; a rate given explicitly (argument, `rate_limit` extra) is used as it is.
    """

    vendor: ClassVar[str] = "vendor"
    #: Connection types accepted besides the hook's own `conn_type`.
    accepted_conn_types: ClassVar[frozenset[str]] = frozenset({"http", "https"})
    #: The vendor's published limit per account; the default rate is `HEADROOM` of it.
    vendor_limit: ClassVar[VendorLimit] = VendorLimit(1, 1.0)
    #: What to check when the vendor refuses our credentials.
    credential_hint: ClassVar[str] = "credentials"
    #: The connection's fields, for the message when it is not defined at all.
    connection_fields: ClassVar[str] = "type http"

    def __init__(
        self,
        conn_id: str,
        *,
        retry_policy: RetryPolicy | None = None,
        rate_limit_per_second: float | None = None,
        timeout: Timeout | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout: Timeout | None = timeout
        self._rate_override = rate_limit_per_second
        self._session: requests.Session | None = None
        self._connection: Any = None
        self.limiter: RateLimiter = limiter or process_limiter()
        self._shared = limiter is not None
        self._pace: Pace | None = None
        self._pace_resolved = False
        #: Logical calls by operation (each page of a list counts once): "calls per return".
        self.calls: Counter[str] = Counter()
        #: HTTP requests actually sent by operation, retries and token requests included.
        self.http_requests: Counter[str] = Counter()

    # ------------------------------------------------------------------ connection

    @property
    def conn_id(self) -> str:
        return str(self.http_conn_id)

    @property
    def connection(self) -> Any:
        """The Airflow connection, read once (first use, never in `__init__`)."""
        if self._connection is None:
            try:
                connection = self.get_connection(self.conn_id)
            except AirflowNotFoundException:
                raise ConnectionNotDefined(self.conn_id, self.connection_fields) from None
            conn_type = (connection.conn_type or "").lower()
            allowed = self.accepted_conn_types | {self.conn_type}
            if conn_type and conn_type not in allowed:
                raise ValueError(
                    f"connection {self.conn_id!r} has type {conn_type!r}; "
                    f"expected one of {sorted(allowed)}"
                )
            self._connection = connection
        return self._connection

    @property
    def extras(self) -> dict[str, Any]:
        extra = self.connection.extra_dejson
        return dict(extra) if isinstance(extra, Mapping) else {}

    def _set_base_url(self, connection: Any) -> None:
        self.base_url = self._normalise_base_url(
            resolve_base_url(connection.host, connection.schema, connection.port, self.default_host)
        )
        self._base_url_initialized = True

    def _normalise_base_url(self, url: str) -> str:
        return url

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's `requests` session (built once): base URL, keep-alive, no extras as headers."""
        if self._session is None:
            self._set_base_url(self.connection)
            session = requests.Session()
            session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
            verify = self.extras.get("verify")
            if verify is not None:
                session.verify = verify
            self._configure_session_from_mount_adapters(session)
            self._session = session
        if headers:
            self._session.headers.update(headers)
        return self._session

    def _request_timeout(self) -> Timeout:
        if self.timeout is not None:
            return self.timeout
        configured = self.extras.get("timeout")
        if configured is None:
            return DEFAULT_TIMEOUT
        try:
            return float(configured)
        except (TypeError, ValueError):
            raise ValueError(
                f"connection {self.conn_id!r}: extra 'timeout' must be a number of seconds"
            ) from None

    def rate_per_second(self) -> float:
        """The rate this hook keeps its vendor account to (0: not throttled).

        The hook's `rate_limit_per_second`, else the connection's `rate_limit` extra, else
        `HEADROOM` of the vendor's published limit. With an injected (shared) limiter it is the
        rate of the whole account, every task and worker together; with the process-local
        fallback the default is divided by the API pools' slots (see the class docstring).
        """
        rate = self._rate_override
        if rate is None:
            configured = self.extras.get("rate_limit")
            if configured is not None:
                try:
                    rate = float(configured)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"connection {self.conn_id!r}: extra 'rate_limit' must be requests "
                        f"per second (0 disables throttling), got {configured!r}"
                    ) from None
        if rate is None:
            rate = self.vendor_limit.default_rate_per_second
            if not self._shared:
                rate /= api_pool_slots()
        return max(0.0, rate)

    def account_key(self) -> str:
        """The vendor account this hook's requests count against (no secret in it)."""
        raise NotImplementedError

    def pace(self) -> Pace | None:
        """What the limiter enforces for this hook's account, or None when throttling is off."""
        if not self._pace_resolved:
            rate = self.rate_per_second()
            self._pace = (
                Pace.for_rate(self.account_key(), rate, self.vendor_limit) if rate > 0 else None
            )
            self._pace_resolved = True
        return self._pace

    # ------------------------------------------------------------------ credentials (subclasses)

    def _auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request."""
        return {}

    def _after_unauthorized(self, sent: Mapping[str, str]) -> dict[str, str] | None:
        """The vendor answered 401 to `sent`: fresh auth headers to try once more, or None."""
        return None

    # ------------------------------------------------------------------ the one request path

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        credential_hint: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> Answer:
        """Send one logical request under the retry policy and return its decoded answer.

        `idempotent` defaults from the method (POST is not); a non-idempotent request is never
        re-sent after it may have been applied (see `policy.py`).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        self.calls[operation] += 1
        self.get_conn()
        url = f"{self.base_url}{path}"

        def attempt() -> Answer:
            return self._attempt(
                operation,
                method,
                url,
                path,
                params=params,
                json_body=json_body,
                form=form,
                authenticated=authenticated,
                credential_hint=credential_hint or self.credential_hint,
            )

        chosen = policy or self.retry_policy
        return chosen.call(
            attempt, idempotent=idempotent, describe=f"{self.vendor} {method} {path}"
        )

    def _attempt(
        self,
        operation: str,
        method: str,
        url: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
        authenticated: bool,
        credential_hint: str,
    ) -> Answer:
        headers = _credentials(self._auth_headers) if authenticated else {}
        send = _Sender(self, operation, method, url, path, params, json_body, form)
        response = send(headers)
        if response.status_code == 401 and authenticated:
            renewed = _credentials(lambda: self._after_unauthorized(headers))
            if renewed is not None:
                log.info(
                    "%s %s %s: 401, retrying once with renewed credentials",
                    self.vendor,
                    method,
                    path,
                )
                response = send(renewed)
        return self._interpret(response, method, path, credential_hint)

    def _interpret(
        self, response: requests.Response, method: str, path: str, credential_hint: str
    ) -> Answer:
        status = response.status_code
        content_type = response.headers.get("Content-Type")
        if 200 <= status < 300:
            body = parse_json_body(
                self.vendor, status, content_type, response.content, method, path
            )
            return Answer(status, body, response.headers)
        if 300 <= status < 400:
            raise VendorError(
                self.vendor,
                status,
                None,
                "unexpected redirect (not followed, so credentials stay with the vendor host); "
                "check the connection's host",
                method,
                path,
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            body = parse_json_body(
                self.vendor, status, content_type, response.content, method, path
            )
        except VendorBadResponse:
            if status not in (401, 403, 429):
                raise
            body = None
        raise error_for_status(
            self.vendor,
            status,
            body,
            method,
            path,
            conn_id=self.conn_id,
            credential_hint=credential_hint,
            retry_after=retry_after,
        )

    # ------------------------------------------------------------------ Airflow UI

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: one cheap authenticated read, a message without secrets."""
        probe_policy = RetryPolicy(
            max_attempts=2,
            base_seconds=0.2,
            max_seconds=1.0,
            retry_after_cap_seconds=2.0,
            rate_limit_budget_seconds=0.0,  # the UI's button answers now, not after a minute
        )
        try:
            self._probe(probe_policy)
        except VendorError as error:
            return False, str(error)
        except Exception as error:  # the Test button must answer, whatever went wrong
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to {self.hook_name} at {self.base_url}"

    def _probe(self, policy: RetryPolicy) -> None:
        raise NotImplementedError


def _credentials(get: Callable[[], T]) -> T:
    """Run a credential step; a transient token failure must not look like a failed request."""
    try:
        return get()
    except VendorAuthError:
        raise
    except VendorError as error:
        raise CredentialsUnavailable(error) from error


class _Sender:
    """Sends one HTTP request (after the rate limiter) and maps transport failures to errors."""

    def __init__(
        self,
        hook: VendorHook,
        operation: str,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
    ) -> None:
        self.hook = hook
        self.operation = operation
        self.method = method
        self.url = url
        self.path = path
        self.params = params
        self.json_body = json_body
        self.form = form

    def __call__(self, headers: Mapping[str, str]) -> requests.Response:
        hook = self.hook
        pace = hook.pace()
        if pace is not None:
            hook.limiter.acquire(pace)
        hook.http_requests[self.operation] += 1
        started = time.monotonic()
        try:
            response = hook.get_conn().request(
                self.method,
                self.url,
                params=dict(self.params) if self.params else None,
                json=self.json_body,
                data=dict(self.form) if self.form is not None else None,
                headers=dict(headers),
                timeout=hook._request_timeout(),
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise self._transport_error(error) from None
        log.debug(
            "%s %s %s -> %s in %.3fs",
            hook.vendor,
            self.method,
            self.path,
            response.status_code,
            time.monotonic() - started,
        )
        return response

    def _transport_error(self, error: requests.RequestException) -> VendorTransportError:
        sent, what = _classify_transport(error)
        transient = not isinstance(
            error,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidHeader,
            ),
        )
        return VendorTransportError(
            self.hook.vendor,
            what,
            self.method,
            self.path,
            request_sent=sent,
            transient=transient,
        )


def _classify_transport(error: requests.RequestException) -> tuple[bool, str]:
    """(was the request possibly sent?, a short description without URLs or headers)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return False, "timed out while connecting"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return True, "timed out waiting for the answer"
    if isinstance(error, requests.exceptions.SSLError):
        return False, "TLS handshake failed"
    if isinstance(error, requests.exceptions.ConnectionError):
        reason = _root_reason(error)
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return False, "could not connect"
        return True, "connection dropped before a complete answer"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return True, "connection dropped in the middle of the answer"
    if isinstance(
        error,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return False, f"invalid request ({type(error).__name__})"
    return True, f"transport failure ({type(error).__name__})"


def _root_reason(error: BaseException) -> BaseException | None:
    """Dig through requests/urllib3 wrappers (MaxRetryError.reason) to the original cause."""
    current: Any = error.args[0] if error.args else None
    for _ in range(4):
        reason = getattr(current, "reason", None)
        if reason is None or reason is current:
            break
        current = reason
    return current if isinstance(current, BaseException) else None


def as_list(body: Any, what: str, vendor: str, method: str, path: str) -> list[Any]:
    """The body as a list, or a clear `VendorBadResponse`."""
    if isinstance(body, list):
        return body
    raise VendorBadResponse(vendor, 200, f"expected a JSON array of {what}", method, path)


def as_object(body: Any, what: str, vendor: str, method: str, path: str) -> dict[str, Any]:
    """The body as a JSON object, or a clear `VendorBadResponse`."""
    if isinstance(body, dict):
        return body
    raise VendorBadResponse(vendor, 200, f"expected a JSON object ({what})", method, path)


def parse_record(model: type[M], raw: Any, vendor: str, method: str, path: str) -> M:
    """Validate one vendor record into its model, or a `VendorBadResponse` naming the problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'record'}: {issue['msg']}"
            for issue in error.errors()[:3]
        )
        raise VendorBadResponse(
            vendor, 200, f"a {model.__name__} record did not validate ({problems})", method, path
        ) from None
