"""`LoopHook`: the Loop Returns API (return data, return actions, programmatic webhooks).

Connection `loop_default` (type `http` or `loop`): host = API base URL (default
`https://api.loopreturns.com/api/v1`, may carry scheme and path), password = API key, sent raw as
`X-Authorization`. Optional extras: `rate_limit` (requests/second for the API key, all processes
together; default 4.6/s, 92 % of Loop's 300/min per key),
`timeout`, `webhook_secret` (read by the webhook endpoint, never sent).

Loop quirks handled here (docs/loop-api.md): the detailed list answers only the last 24 hours
without `from`/`to` and refuses windows over 120 days; its `nextPageUrl` drops our filters;
actions answer HTTP 200 with an error body instead of `true`; "no notes" is a 422; ids are
strings in some payloads and integers in others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from include.returns_sync.clients.base import Answer, VendorHook, as_list, as_object, parse_record
from include.returns_sync.clients.errors import (
    LoopActionRejected,
    VendorBadResponse,
    VendorValidationError,
    describe_error_body,
)
from include.returns_sync.clients.limiter import LOOP_LIMIT, RateLimiter, VendorLimit, account_key
from include.returns_sync.clients.pagination import (
    PaginationError,
    loop_cursor_pages,
    split_window,
)
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.models import LoopNote, LoopReturn
from include.returns_sync.provider import (
    LOOP_DEFAULT_HOST,
    connection_form_widgets,
    ui_field_behaviour,
)

LIST_FILTERS = frozenset({"created_at", "updated_at"})
LIST_STATES = frozenset({"open", "closed", "cancelled", "expired", "review"})
MAX_PAGE_SIZE = 750
#: Loop rejects longer notes ("must be less than 255 characters").
MAX_NOTE_LENGTH = 254
#: Loop's dispositioning API takes at most 30 items per call.
MAX_DISPOSITIONS_PER_CALL = 30
WEBHOOK_STATUSES = frozenset({"active", "inactive"})


class LoopHook(VendorHook):
    """Talks to Loop Returns with an API key; every call is throttled, retried and counted.

    :param loop_conn_id: Airflow connection id (default `loop_default`); `conn_id=` is the same.
    :param retry_policy: the retry policy (default `RetryPolicy()`; tests pass zero waits).
    :param rate_limit_per_second: overrides the connection's `rate_limit` extra (default 4.6/s,
        92 % of Loop's 300/min per API key, for every process together); 0 disables throttling.
    :param timeout: seconds, or (connect, read) seconds, per HTTP request.
    :param limiter: where send times are reserved (runtime passes `SharedLimiter(store)`, shared
        by every process); default the process-local `process_limiter()`.
    """

    conn_name_attr = "loop_conn_id"
    default_conn_name = "loop_default"
    conn_type = "loop"
    hook_name = "Loop Returns"
    default_host = LOOP_DEFAULT_HOST

    vendor: ClassVar[str] = "loop"
    vendor_limit: ClassVar[VendorLimit] = LOOP_LIMIT
    credential_hint: ClassVar[str] = "API key (password field) and its Returns scope"
    connection_fields: ClassVar[str] = (
        f"type http, host = the API base URL such as {LOOP_DEFAULT_HOST}, password = the API key"
    )

    def __init__(
        self,
        loop_conn_id: str = default_conn_name,
        *,
        conn_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        rate_limit_per_second: float | None = None,
        timeout: float | tuple[float, float] | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        chosen = conn_id or loop_conn_id
        super().__init__(
            chosen,
            retry_policy=retry_policy,
            rate_limit_per_second=rate_limit_per_second,
            timeout=timeout,
            limiter=limiter,
        )
        self.loop_conn_id = chosen

    # ------------------------------------------------------------------ Airflow UI

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the Loop connection form (rate limit, webhook secret)."""
        return connection_form_widgets("loop")

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """API key in the password field, host prefilled with the production base URL."""
        return ui_field_behaviour("loop")

    def _probe(self, policy: RetryPolicy) -> None:
        now = datetime.now(UTC)
        params = {
            "from": _loop_time(now.replace(microsecond=0) - _ONE_HOUR),
            "to": _loop_time(now),
            "filter": "updated_at",
            "paginate": "true",
            "pageSize": 1,
        }
        self._call("test_connection", "GET", "/warehouse/return/list", params=params, policy=policy)

    def _normalise_base_url(self, url: str) -> str:
        # A bare host (`https://api.loopreturns.com`) means the default API version.
        return url if urlsplit(url).path.strip("/") else f"{url}/api/v1"

    # ------------------------------------------------------------------ credentials

    def _auth_headers(self) -> dict[str, str]:
        key = self.connection.password
        if not key:
            raise ValueError(
                f"connection {self.conn_id!r} has no Loop API key: put it in the password field"
            )
        return {"X-Authorization": str(key)}

    def account_key(self) -> str:
        """Loop limits per API key: `loop:` + a hash of the key (never the key itself)."""
        return account_key(self.vendor, self._auth_headers()["X-Authorization"])

    # ------------------------------------------------------------------ return data

    def list_returns(
        self,
        *,
        start: datetime,
        end: datetime,
        filter_field: str = "updated_at",
        state: str | None = "open",
        page_size: int = MAX_PAGE_SIZE,
        on_invalid: Callable[[Any, VendorBadResponse], None] | None = None,
    ) -> Iterator[LoopReturn]:
        """Every return whose `filter_field` falls in [start, end), page by page.

        Always sends explicit `from`/`to` (without them Loop answers only the last 24 hours),
        cuts windows longer than 120 days into chunks, and follows pagination by re-sending its
        own parameters plus the cursor. `state=None` lets Loop choose (open, closed and expired
        only; `cancelled` and `review` must be asked for one state at a time). Naive datetimes
        are taken as UTC. A return seen twice (chunk boundaries) is yielded once.

        A record that does not validate raises `VendorBadResponse`, unless `on_invalid` is
        given: then it receives the raw record and the error, and the walk goes on, so one
        malformed return cannot hide the others.
        """
        start_utc, end_utc = _as_utc(start, "start"), _as_utc(end, "end")
        if filter_field not in LIST_FILTERS:
            raise ValueError(
                f"filter_field must be one of {sorted(LIST_FILTERS)}, got {filter_field!r}"
            )
        if state is not None and state not in LIST_STATES:
            raise ValueError(f"state must be one of {sorted(LIST_STATES)} or None, got {state!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        path = "/warehouse/return/list"
        seen: set[str] = set()
        for chunk_start, chunk_end in split_window(start_utc, end_utc):
            params: dict[str, Any] = {
                "from": _loop_time(chunk_start),
                "to": _loop_time(chunk_end),
                "filter": filter_field,
                "paginate": "true",
                "pageSize": page_size,
            }
            if state is not None:
                params["state"] = state

            def fetch(cursor: str | None, params: dict[str, Any] = params) -> Any:
                page_params = params if cursor is None else {**params, "cursor": cursor}
                return self._call("list_returns", "GET", path, params=page_params).body

            try:
                for records in loop_cursor_pages(fetch):
                    for raw in records:
                        try:
                            loop_return = parse_record(LoopReturn, raw, self.vendor, "GET", path)
                        except VendorBadResponse as invalid:
                            if on_invalid is None:
                                raise
                            on_invalid(raw, invalid)
                            continue
                        if loop_return.id in seen:
                            continue
                        seen.add(str(loop_return.id))
                        yield loop_return
            except PaginationError as error:
                raise VendorBadResponse(self.vendor, 200, str(error), "GET", path) from None

    def get_return(self, return_id: str | int) -> LoopReturn:
        """One return with its line items (Get Return Details)."""
        rid = _return_id(return_id)
        path = "/warehouse/return/details"
        answer = self._call("get_return", "GET", path, params={"return_id": rid})
        body = as_object(answer.body, "a return", self.vendor, "GET", path)
        return parse_record(LoopReturn, body, self.vendor, "GET", path)

    def get_notes(self, return_id: str | int) -> list[LoopNote]:
        """The return's notes; Loop's 422 "no notes" is an empty list, not an error."""
        rid = _return_id(return_id)
        path = f"/warehouse/return/{rid}/notes"
        try:
            answer = self._call("get_notes", "GET", path)
        except VendorValidationError as error:
            if error.status == 422:
                return []
            raise
        if answer.body is None or answer.body == []:
            return []
        notes = as_object(answer.body, "notes", self.vendor, "GET", path).get("notes") or []
        raw_notes = as_list(notes, "notes", self.vendor, "GET", path)
        return [parse_record(LoopNote, raw, self.vendor, "GET", path) for raw in raw_notes]

    def asn_report(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Advanced Shipping Notice rows (one per returned line item) for [start, end).

        Not paginated by Loop; windows over 120 days are cut into chunks like the list.
        """
        start_utc, end_utc = _as_utc(start, "start"), _as_utc(end, "end")
        path = "/warehouse/reporting/asn"
        rows: list[dict[str, Any]] = []
        for chunk_start, chunk_end in split_window(start_utc, end_utc):
            params = {"from": _loop_time(chunk_start), "to": _loop_time(chunk_end)}
            answer = self._call("asn_report", "GET", path, params=params)
            if answer.body is None:
                continue
            for row in as_list(answer.body, "ASN rows", self.vendor, "GET", path):
                rows.append(as_object(row, "an ASN row", self.vendor, "GET", path))
        return rows

    # ------------------------------------------------------------------ return actions

    def process_return(
        self, return_id: str | int, details: Mapping[str, Any] | None = None
    ) -> None:
        """Queue the return for processing (`true` means queued, not done).

        `details` are added by Loop to the Shopify orders processing creates. Never re-sent
        after an ambiguous failure: re-read the return (`get_return`) first.
        """
        rid = _return_id(return_id)
        body = dict(details) if details is not None else None
        self._action("process_return", f"/warehouse/return/{rid}/process", body)

    def flag_return(self, return_id: str | int) -> None:
        """Flag the return for human review (Loop takes no reason: add a note for that)."""
        rid = _return_id(return_id)
        self._action("flag_return", f"/warehouse/return/{rid}/flag", None)

    def create_note(self, return_id: str | int, content: str) -> None:
        """Add a note to the return's timeline; 1..254 characters."""
        rid = _return_id(return_id)
        if not isinstance(content, str):
            raise TypeError(f"note content must be a string, got {type(content).__name__}")
        length = len(content)
        if not content.strip() or length > MAX_NOTE_LENGTH:
            raise ValueError(
                f"a Loop note must be 1..{MAX_NOTE_LENGTH} characters (and not blank); "
                f"this one has {length}"
            )
        self._action("create_note", f"/warehouse/return/{rid}/note", {"content": content})

    def assess_dispositions(self, items: list[dict[str, Any]]) -> None:
        """Record each returned unit's disposition (Loop's optional dispositioning API).

        `items` are `{"line_item_id": int, "disposition_outcome": ...}` objects; Loop takes
        at most 30 per call, so longer lists go in several calls. Loop answers with an echo of
        the items; an `errors` object instead is a rejection.
        """
        path = "/dispositioning/assess"
        for start in range(0, len(items), MAX_DISPOSITIONS_PER_CALL):
            part = items[start : start + MAX_DISPOSITIONS_PER_CALL]
            answer = self._call(
                "assess_dispositions", "POST", path, json_body={"items": part}, idempotent=False
            )
            if not isinstance(answer.body, list):
                code, message = describe_error_body(answer.body)
                raise LoopActionRejected(
                    self.vendor,
                    answer.status,
                    code,
                    message or f"Loop answered {type(answer.body).__name__} instead of the items",
                    "POST",
                    path,
                )

    def _action(self, operation: str, path: str, body: dict[str, Any] | None) -> None:
        answer = self._call(operation, "POST", path, json_body=body, idempotent=False)
        _require_true(answer, self.vendor, path)

    # ------------------------------------------------------------------ programmatic webhooks

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook subscription of the shop (admin-created ones included)."""
        path = "/webhooks"
        answer = self._call("list_webhooks", "GET", path)
        if answer.body is None:
            return []
        hooks = as_object(answer.body, "webhooks", self.vendor, "GET", path).get("webhooks") or []
        return [
            as_object(hook, "a webhook", self.vendor, "GET", path)
            for hook in as_list(hooks, "webhooks", self.vendor, "GET", path)
        ]

    def create_webhook(
        self, topic: str, trigger: str, url: str, status: str = "active"
    ) -> dict[str, Any]:
        """Subscribe `url` to `topic`/`trigger`; status defaults to active (Loop's is inactive).

        Not idempotent: after `AmbiguousWriteError`, `list_webhooks()` before trying again.
        """
        body = _webhook_body(topic, trigger, url, status)
        path = "/webhooks"
        answer = self._call("create_webhook", "POST", path, json_body=body, idempotent=False)
        return as_object(answer.body, "the created webhook", self.vendor, "POST", path)

    def update_webhook(
        self,
        webhook_id: str | int,
        *,
        topic: str,
        trigger: str,
        url: str,
        status: str = "active",
    ) -> None:
        """Replace a subscription's topic, trigger, url and status (PUT: safe to retry)."""
        wid = _numeric_id(webhook_id, "webhook id")
        body = _webhook_body(topic, trigger, url, status)
        self._call("update_webhook", "PUT", f"/webhooks/{wid}", json_body=body)


_ONE_HOUR = timedelta(hours=1)


def _as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _loop_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the form Loop's own examples use."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _numeric_id(value: str | int, what: str) -> str:
    """A vendor id for a URL path: digits only, so nothing can be smuggled into the path."""
    if isinstance(value, bool):
        raise TypeError(f"{what} cannot be a boolean")
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return text


def _return_id(value: str | int) -> str:
    return _numeric_id(value, "Loop return id")


def _webhook_body(topic: str, trigger: str, url: str, status: str) -> dict[str, str]:
    for name, value in (("topic", topic), ("trigger", trigger)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"webhook {name} must be a non-empty string")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError(f"webhook url must be an http(s) URL, got {url!r}")
    if status not in WEBHOOK_STATUSES:
        raise ValueError(
            f"webhook status must be one of {sorted(WEBHOOK_STATUSES)}, got {status!r}"
        )
    return {"topic": topic, "trigger": trigger, "url": url, "status": status}


def _require_true(answer: Answer, vendor: str, path: str) -> None:
    """Loop acknowledges an action with `true` or `"true"`; anything else is a rejection."""
    body = answer.body
    if body is True or (isinstance(body, str) and body.strip().lower() == "true"):
        return
    code, message = describe_error_body(body)
    raise LoopActionRejected(
        vendor,
        answer.status,
        code,
        message or f"Loop answered {type(body).__name__} instead of true",
        "POST",
        path,
    )
