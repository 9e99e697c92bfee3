"""`WhiplashHook`: the Whiplash / Rydership V2 API (consumer returns, items, orders, webhooks).

Connection `whiplash_default` (type `http` or `whiplash`): host = `https://www.getwhiplash.com`
(or the sandbox host), login = OAuth client id, password = client secret. Extras:
`refresh_token` (refresh grant; rotated tokens are persisted through the injected `TokenStore`
and preferred once present; with the state store the token is shared by every process and
refreshed by one at a time, see `oauth.py`) or none (client-credentials grant); `scope` (sent
with the client-credentials grant, default `app_manage`, "" sends none); `customer_id` / `shop_id`
(sent as `X-Customer-ID` / `X-Shop-ID`; the hook's `customer_id` argument, the merchant inside a
shared account, wins over the extra); `rate_limit` (requests/second for the account, all processes
together; default 9.2/s, 92 % of Whiplash's 10/s per account); `timeout`; `webhook_secret` (read
by the webhook endpoint, never sent).

`X-Customer-ID` goes on every API call, never on the OAuth token request: the token belongs to
the account's user and is shared by all of its merchants (docs/whiplash-api.md 2.3 lists the
header among the resource requests' scoping headers; the token endpoint is OAuth2's own).

Look-ups are batched: one `search` per batch of up to 50 keys (`*_in` predicates), so finding the
RMAs of a day of returns costs a handful of calls, not one per return.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from include.returns_sync.clients.base import VendorHook, as_list, as_object, parse_record
from include.returns_sync.clients.errors import (
    VendorAuthError,
    VendorBadResponse,
    VendorValidationError,
    auth_error_message,
)
from include.returns_sync.clients.limiter import (
    WHIPLASH_LIMIT,
    RateLimiter,
    VendorLimit,
    account_key,
)
from include.returns_sync.clients.oauth import (
    DEFAULT_RENEW_MARGIN_SECONDS,
    DEFAULT_SCOPE,
    GrantedToken,
    OAuthCredentials,
    OAuthSession,
    StateStoreTokenStore,
    TokenStore,
    parse_token_answer,
)
from include.returns_sync.clients.pagination import (
    PaginationError,
    batched,
    first_by,
    unique_strings,
    whiplash_pages,
    whiplash_updated_since,
)
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.models import (
    ConsumerReturn,
    ConsumerReturnCreate,
    WhiplashItem,
    WhiplashOrder,
)
from include.returns_sync.provider import (
    WHIPLASH_DEFAULT_HOST,
    connection_form_widgets,
    ui_field_behaviour,
)

__all__ = ["StateStoreTokenStore", "TokenStore", "WhiplashHook"]

log = logging.getLogger(__name__)

API = "/api/v2"
TOKEN_PATH = "/oauth/token"
#: Keys per `search` request: keeps the query string well under URL length limits.
SEARCH_BATCH_SIZE = 50
#: What we ask for; Whiplash documents no maximum and may serve fewer without saying so
#: (its own client asks for 50), so no walk relies on getting it.
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 250

R = TypeVar("R")


class WhiplashHook(VendorHook):
    """Talks to Whiplash with OAuth2 bearer tokens; every call is throttled, retried and counted.

    :param whiplash_conn_id: Airflow connection id (default `whiplash_default`); `conn_id=` is
        the same.
    :param customer_id: the merchant's customer inside the account, sent as `X-Customer-ID` on
        every API call (wins over the connection's `customer_id` extra).
    :param token_store: where a rotated refresh token is persisted (e.g.
        `StateStoreTokenStore(store, fernet_key)`); without one it lives in this process only.
    :param retry_policy: the retry policy (default `RetryPolicy()`; tests pass zero waits).
    :param rate_limit_per_second: overrides the connection's `rate_limit` extra (default 9.2/s,
        92 % of Whiplash's 10/s per account, every process together); 0 disables throttling.
    :param limiter: where send times are reserved (runtime passes `SharedLimiter(store)`);
        default the process-local `process_limiter()`.
    :param timeout: seconds, or (connect, read) seconds, per HTTP request.
    :param clock: monotonic clock for token expiry (tests move it forward).
    :param renew_margin_seconds: renew a bearer token this long before it expires.
    :param search_batch_size: keys per batched `search` request (at most 50 by default).
    """

    conn_name_attr = "whiplash_conn_id"
    default_conn_name = "whiplash_default"
    conn_type = "whiplash"
    hook_name = "Whiplash / Rydership"
    default_host = WHIPLASH_DEFAULT_HOST

    vendor: ClassVar[str] = "whiplash"
    vendor_limit: ClassVar[VendorLimit] = WHIPLASH_LIMIT
    credential_hint: ClassVar[str] = (
        "OAuth client id (login), client secret (password), refresh_token extra and scope "
        "extra (writes need app_manage)"
    )
    connection_fields: ClassVar[str] = (
        f"type http, host = {WHIPLASH_DEFAULT_HOST}, login = the OAuth client id, "
        "password = the client secret"
    )

    def __init__(
        self,
        whiplash_conn_id: str = default_conn_name,
        *,
        conn_id: str | None = None,
        customer_id: int | None = None,
        limiter: RateLimiter | None = None,
        token_store: TokenStore | None = None,
        retry_policy: RetryPolicy | None = None,
        rate_limit_per_second: float | None = None,
        timeout: float | tuple[float, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        renew_margin_seconds: float = DEFAULT_RENEW_MARGIN_SECONDS,
        search_batch_size: int = SEARCH_BATCH_SIZE,
    ) -> None:
        chosen = conn_id or whiplash_conn_id
        super().__init__(
            chosen,
            retry_policy=retry_policy,
            rate_limit_per_second=rate_limit_per_second,
            timeout=timeout,
            limiter=limiter,
        )
        if search_batch_size < 1:
            raise ValueError(f"search_batch_size must be >= 1, got {search_batch_size}")
        if customer_id is not None and (isinstance(customer_id, bool) or customer_id < 1):
            raise ValueError(f"customer_id must be a positive integer, got {customer_id!r}")
        self.whiplash_conn_id = chosen
        self.customer_id = customer_id
        self.token_store = token_store
        self.search_batch_size = search_batch_size
        self._clock = clock
        self._renew_margin = renew_margin_seconds
        self._oauth_session: OAuthSession | None = None

    # ------------------------------------------------------------------ Airflow UI

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields: refresh token (password), customer id, shop id, rate limit, webhook secret."""
        return connection_form_widgets("whiplash")

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Client id / secret relabelled, host prefilled with the production host."""
        return ui_field_behaviour("whiplash")

    def _probe(self, policy: RetryPolicy) -> None:
        self._call(
            "test_connection",
            "GET",
            f"{API}/consumer_returns",
            params={"per_page": 1},
            policy=policy,
        )

    # ------------------------------------------------------------------ credentials

    def _normalise_base_url(self, url: str) -> str:
        # Tolerate a host given with the API prefix; the token endpoint lives at the root.
        return url[: -len(API)] if url.endswith(API) else url

    @property
    def oauth(self) -> OAuthSession:
        """The connection's token source (built on first use; shares the process-wide cache)."""
        if self._oauth_session is None:
            self.get_conn()
            connection = self.connection
            missing = [
                field
                for field, value in (
                    ("login (client id)", connection.login),
                    ("password (client secret)", connection.password),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"connection {self.conn_id!r} has no OAuth {' and no '.join(missing)}"
                )
            refresh_token = self.extras.get("refresh_token")
            scope = self.extras.get("scope", DEFAULT_SCOPE)
            credentials = OAuthCredentials(
                conn_id=self.conn_id,
                token_url=f"{self.base_url}{TOKEN_PATH}",
                client_id=str(connection.login),
                client_secret=str(connection.password),
                refresh_token=str(refresh_token) if refresh_token else None,
                scope=" ".join(str(scope or "").split()),
            )
            self._oauth_session = OAuthSession(
                credentials,
                self._request_token,
                token_store=self.token_store,
                clock=self._clock,
                renew_margin_seconds=self._renew_margin,
            )
        return self._oauth_session

    def _request_token(self, form: Mapping[str, str]) -> GrantedToken:
        """POST the grant to `<host>/oauth/token`.

        A client-credentials grant is retried like a read. A refresh grant is retried once, with
        the same refresh token, after a transport failure or 5xx (its answer may have been lost):
        the caller holds the refresh lease, so no other process uses that token meanwhile. If
        Whiplash spent the token anyway, the retry answers `invalid_grant` and the error says how
        to re-authorise.
        """
        grant = form.get("grant_type", "")
        policy = self.retry_policy
        if grant == "refresh_token":
            policy = dataclasses.replace(policy, max_attempts=min(2, policy.max_attempts))
        try:
            answer = self._call(
                "oauth_token",
                "POST",
                TOKEN_PATH,
                form=form,
                idempotent=True,
                authenticated=False,
                policy=policy,
            )
        except (VendorValidationError, VendorAuthError) as error:
            raise VendorAuthError(
                self.vendor,
                error.status,
                error.code,
                self._token_refusal(grant, error.code),
                "POST",
                TOKEN_PATH,
            ) from None
        granted = parse_token_answer(answer.body)
        if isinstance(granted, str):
            raise VendorBadResponse(self.vendor, answer.status, granted, "POST", TOKEN_PATH)
        return granted

    def _token_refusal(self, grant: str, code: str | None) -> str:
        """What the token endpoint's refusal means, naming the connection and the way out."""
        conn = self.conn_id
        if grant == "refresh_token" and code == "invalid_grant":
            return (
                f"whiplash refused the refresh token of connection {conn!r} (invalid_grant): it "
                "was revoked, expired or already used; re-authorize: run Whiplash's OAuth consent "
                f"again and put the new refresh token in the 'refresh_token' extra of connection "
                f"{conn!r}; the token stored in the state store descends from the old one and is "
                "then ignored (or delete it: StateStore.clear_oauth_token"
                f"({conn!r}), see include/returns_sync/state/README.md)"
            )
        if grant == "client_credentials" and code == "invalid_scope":
            return (
                f"whiplash refused the scope asked for by connection {conn!r} (invalid_scope); "
                "set its 'scope' extra to a scope the OAuth application has (writes need "
                f"{DEFAULT_SCOPE})"
            )
        hint = self.credential_hint
        if grant == "refresh_token":
            hint += (
                " (a refresh token is single-use when Whiplash rotates it; to re-authorize put "
                "a new one in the refresh_token extra)"
            )
        return auth_error_message("whiplash", conn, hint, code or None)

    def _auth_headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.oauth.bearer_token()}"}
        headers.update(self._scope_headers())
        return headers

    def _scope_headers(self) -> dict[str, str]:
        headers = {}
        for extra, header in (("customer_id", "X-Customer-ID"), ("shop_id", "X-Shop-ID")):
            value = self.extras.get(extra)
            if value not in (None, ""):
                headers[header] = str(value).strip()
        if self.customer_id is not None:
            headers["X-Customer-ID"] = str(self.customer_id)
        return headers

    def account_key(self) -> str:
        """Whiplash limits per account: `whiplash:` + a hash of base URL and OAuth client id.

        Merchants sharing an account (one connection, several customer ids) share this key, so
        they share the account's 10 requests per second.
        """
        self.get_conn()
        client_id = self.connection.login or ""
        return account_key(self.vendor, self.base_url, str(client_id))

    def _after_unauthorized(self, sent: Mapping[str, str]) -> dict[str, str] | None:
        rejected = sent.get("Authorization", "").removeprefix("Bearer ") or None
        token = self.oauth.renew_after_rejection(rejected)
        return {**sent, "Authorization": f"Bearer {token}"}

    # ------------------------------------------------------------------ consumer returns (RMAs)

    def find_consumer_returns_by_loop_ids(
        self, loop_return_ids: Sequence[str]
    ) -> dict[str, ConsumerReturn]:
        """The RMA of each Loop return that has one, keyed by Loop return id.

        One search per batch matches either `originator.original_id` or `reference` (`"m":
        "or"`); the key is the originator's id when it is one we asked for, else the reference.
        Should two RMAs claim one Loop return, the oldest (lowest id) wins and a warning is logged.
        """
        wanted_ids = unique_strings(loop_return_ids, "loop_return_ids")
        matches: dict[str, list[ConsumerReturn]] = {}
        path = f"{API}/consumer_returns"
        for batch in batched(wanted_ids, self.search_batch_size):
            wanted = set(batch)
            search = {"originator_original_id_in": batch, "reference_in": batch, "m": "or"}
            for raw in self._search_all("find_consumer_returns", "consumer_returns", search):
                rma = parse_record(ConsumerReturn, raw, self.vendor, "GET", path)
                original = rma.originator.original_id if rma.originator else None
                key = original if original in wanted else rma.reference
                if key in wanted:
                    matches.setdefault(str(key), []).append(rma)
        return self._pick(matches, "consumer return", lambda rma: rma.id)

    def create_consumer_return(
        self, payload: ConsumerReturnCreate | Mapping[str, Any]
    ) -> ConsumerReturn:
        """Create an RMA. Never re-sent after an ambiguous failure.

        `payload` is the typed body (`domain.mapping.build_consumer_return` builds it); a plain
        mapping is read into that model first, so an invalid one (no items, a misspelt field)
        raises a `ValueError` before anything is sent.

        Raises `VendorConflict` on 409 (it exists: look it up and adopt it) and
        `AmbiguousWriteError` when the answer was lost (look it up before trying again).
        """
        if not isinstance(payload, ConsumerReturnCreate):
            payload = ConsumerReturnCreate.model_validate(payload)
        path = f"{API}/consumer_returns"
        answer = self._call(
            "create_consumer_return", "POST", path, json_body=payload.body(), idempotent=False
        )
        body = as_object(answer.body, "the created consumer return", self.vendor, "POST", path)
        return parse_record(ConsumerReturn, body, self.vendor, "POST", path)

    def get_consumer_return(self, consumer_return_id: int | str) -> ConsumerReturn:
        """One RMA with its `return_items` (what the warehouse received)."""
        rid = _numeric_id(consumer_return_id, "consumer return id")
        path = f"{API}/consumer_returns/{rid}"
        answer = self._call("get_consumer_return", "GET", path)
        body = as_object(answer.body, "a consumer return", self.vendor, "GET", path)
        return parse_record(ConsumerReturn, body, self.vendor, "GET", path)

    def list_consumer_returns(
        self,
        *,
        updated_since: datetime | None = None,
        statuses: Sequence[int] | None = None,
        ids: Sequence[int] | None = None,
        per_page: int = DEFAULT_PER_PAGE,
        on_invalid: Callable[[Any, VendorBadResponse], None] | None = None,
    ) -> Iterator[ConsumerReturn]:
        """RMAs updated at or after `updated_since`, oldest change first.

        Sorted by `updated_at asc, id asc`; pages are bare arrays and only an empty answer ends
        the walk (Whiplash may serve fewer than `per_page` rows without saying so). The walk is
        keyset-based (see `pagination.whiplash_updated_since`), so a return updated while we
        list cannot make us skip another, and an answer that ignores our search predicates
        raises `VendorBadResponse` naming the predicate instead of looping. `statuses` / `ids`
        narrow the search (an empty list matches nothing); many `ids` are searched in batches.
        A record outside them means Whiplash ignored `status_in` / `id_in`: `VendorBadResponse`
        naming it, rather than walking (and handing on) the whole list.

        A record that does not validate raises `VendorBadResponse`, unless `on_invalid` is
        given: then it receives the raw record and the error and the walk goes on (the record
        still counts for paging, so one bad record cannot end the walk early).
        """
        _check_per_page(per_page)
        base: dict[str, Any] = {}
        if statuses is not None:
            if not statuses:
                return
            base["status_in"] = [_int(value, "status") for value in statuses]
        id_batches: list[list[int] | None] = [None]
        if ids is not None:
            wanted = [_int(value, "consumer return id") for value in ids]
            if not wanted:
                return
            id_batches = list(batched(list(dict.fromkeys(wanted)), self.search_batch_size))
        since = _as_utc(updated_since) if updated_since is not None else None
        path = f"{API}/consumer_returns"
        for id_batch in id_batches:
            search = dict(base) if id_batch is None else {**base, "id_in": id_batch}

            def fetch(
                predicates: dict[str, Any], search: dict[str, Any] = search
            ) -> list[ConsumerReturn | _Unreadable]:
                query = dict(search)
                for name, value in predicates.items():
                    query[name] = _whiplash_time(value) if isinstance(value, datetime) else value
                params: dict[str, Any] = {
                    "sort": "updated_at asc,id asc",
                    "per_page": per_page,
                    "page": 1,
                }
                if query:
                    params["search"] = _search_json(query)
                answer = self._call("list_consumer_returns", "GET", path, params=params)
                body = answer.body if answer.body is not None else []
                rows = as_list(body, "consumer returns", self.vendor, "GET", path)
                return [_parse_consumer_return(row, path, on_invalid is None) for row in rows]

            walk = whiplash_updated_since(fetch, since, key=lambda rma: (rma.id, rma.updated_at))
            try:
                for record in walk:
                    if isinstance(record, _Unreadable):
                        if on_invalid is not None:
                            on_invalid(record.raw, record.error)
                        continue
                    for name, allowed, value in (
                        ("id_in", id_batch, record.id),
                        ("status_in", base.get("status_in"), record.status),
                    ):
                        if allowed is not None and value not in allowed:
                            raise PaginationError(
                                f"Whiplash ignored the search predicate {name!r}: it listed "
                                f"consumer return {record.id} ({name.removesuffix('_in')} "
                                f"{value}), which the search excludes; stopping instead of "
                                "reading the whole list"
                            )
                    yield record
            except PaginationError as error:
                raise VendorBadResponse(self.vendor, 200, str(error), "GET", path) from error

    # ------------------------------------------------------------------ items and orders

    def find_items_by_sku(self, skus: Iterable[str]) -> dict[str, WhiplashItem]:
        """Whiplash items for these SKUs, keyed by the SKU exactly as Whiplash returns it.

        The caller normalises (case, whitespace). Two items with one SKU: the active one, then
        the lowest id, wins.
        """
        wanted = unique_strings(skus, "skus")
        matches: dict[str, list[WhiplashItem]] = {}
        path = f"{API}/items"
        for batch in batched(wanted, self.search_batch_size):
            for raw in self._search_all("find_items", "items", {"sku_in": batch}):
                item = parse_record(WhiplashItem, raw, self.vendor, "GET", path)
                if item.sku:
                    matches.setdefault(item.sku, []).append(item)
        return self._pick(matches, "item", lambda item: (item.active is False, item.id))

    def find_orders_by_originator(self, ids: Iterable[str]) -> dict[str, WhiplashOrder]:
        """Orders by the shop's order id (`originator.original_id`, e.g. the Shopify order id).

        Split or replacement orders Whiplash made itself (provider `whiplash:*`) lose to the
        original; then the lowest id wins.
        """
        wanted = unique_strings(ids, "ids")
        matches: dict[str, list[WhiplashOrder]] = {}
        path = f"{API}/orders"
        for batch in batched(wanted, self.search_batch_size):
            search = {"originator_original_id_in": batch}
            for raw in self._search_all("find_orders", "orders", search):
                order = parse_record(WhiplashOrder, raw, self.vendor, "GET", path)
                original = order.originator.original_id if order.originator else None
                if original:
                    matches.setdefault(original, []).append(order)
        return self._pick(matches, "order", _order_rank)

    def find_orders_by_name(self, names: Iterable[str]) -> dict[str, WhiplashOrder]:
        """Orders by order name (`order_orig`, e.g. `#1001`), keyed as Whiplash returns it."""
        wanted = unique_strings(names, "names")
        matches: dict[str, list[WhiplashOrder]] = {}
        path = f"{API}/orders"
        for batch in batched(wanted, self.search_batch_size):
            for raw in self._search_all("find_orders", "orders", {"order_orig_in": batch}):
                order = parse_record(WhiplashOrder, raw, self.vendor, "GET", path)
                if order.order_orig:
                    matches.setdefault(order.order_orig, []).append(order)
        return self._pick(matches, "order", _order_rank)

    # ------------------------------------------------------------------ notification webhooks

    def notification_events(self) -> list[dict[str, Any]]:
        """The catalog of events one can subscribe to (`consumer_return.completed`, ...)."""
        return list(self._search_all("notification_events", "notification_events", None))

    def list_notification_subscriptions(self) -> list[dict[str, Any]]:
        """Existing webhook subscriptions of the account."""
        return list(
            self._search_all("list_notification_subscriptions", "notification_subscriptions", None)
        )

    def create_notification_subscription(
        self,
        event_id: int,
        endpoint: str,
        *,
        notification_type: str = "webhook",
        active: bool = True,
        version: int = 2,
        customer_id: int | None = None,
    ) -> dict[str, Any]:
        """Subscribe `endpoint` to one event (payload version 2 matches the V2 API).

        Not idempotent: after `AmbiguousWriteError`, list the subscriptions before trying again.
        """
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        body: dict[str, Any] = {
            "notification_event_id": _int(event_id, "event_id"),
            "notification_type": notification_type,
            "endpoint": endpoint,
            "active": bool(active),
            "version": _int(version, "version"),
        }
        if customer_id is not None:
            body["customer_id"] = _int(customer_id, "customer_id")
        path = f"{API}/notification_subscriptions"
        answer = self._call(
            "create_notification_subscription", "POST", path, json_body=body, idempotent=False
        )
        return as_object(answer.body, "the created subscription", self.vendor, "POST", path)

    # ------------------------------------------------------------------ helpers

    def _search_all(
        self,
        operation: str,
        resource: str,
        search: Mapping[str, Any] | None,
        *,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> Iterator[dict[str, Any]]:
        """Every record of a (searched) list, page by page until an empty page.

        Sorted by id, so records created during the walk land behind it instead of shifting
        the pages; a page that repeats an earlier one raises `VendorBadResponse`.
        """
        path = f"{API}/{resource}"
        params: dict[str, Any] = {"per_page": per_page, "sort": "id asc"}
        if search:
            params["search"] = _search_json(search)

        def fetch(page: int) -> Any:
            answer = self._call(operation, "GET", path, params={**params, "page": page})
            return [] if answer.body is None else answer.body

        try:
            for page in whiplash_pages(fetch):
                for raw in page:
                    yield as_object(raw, f"a {resource} record", self.vendor, "GET", path)
        except PaginationError as error:
            raise VendorBadResponse(self.vendor, 200, str(error), "GET", path) from error

    def _pick(
        self, matches: dict[str, list[R]], what: str, rank: Callable[[R], Any]
    ) -> dict[str, R]:
        result = {}
        for key, records in matches.items():
            if len(records) > 1:
                log.warning(
                    "Whiplash has %d %ss for %r; using one deterministically",
                    len(records),
                    what,
                    key,
                )
            result[key] = first_by(records, rank)
        return result


def _order_rank(order: WhiplashOrder) -> tuple[bool, int]:
    provider = (order.originator.provider or "") if order.originator else ""
    return provider.startswith("whiplash:"), order.id


def _search_json(search: Mapping[str, Any]) -> str:
    return json.dumps(search, separators=(",", ":"), sort_keys=False)


def _as_utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"updated_since must be a datetime, got {type(moment).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whiplash_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} cannot be a boolean")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class _Unreadable:
    """A listed consumer return that did not validate, with the best key its JSON gives."""

    raw: Any
    error: VendorBadResponse
    id: object
    updated_at: datetime | None


def _parse_consumer_return(raw: Any, path: str, strict: bool) -> ConsumerReturn | _Unreadable:
    try:
        return parse_record(ConsumerReturn, raw, "whiplash", "GET", path)
    except VendorBadResponse as error:
        if strict:
            raise
        fields = raw if isinstance(raw, Mapping) else {}
        try:
            updated_at = _as_utc(datetime.fromisoformat(str(fields.get("updated_at"))))
        except (TypeError, ValueError):
            updated_at = None
        return _Unreadable(raw, error, fields.get("id"), updated_at)


def _numeric_id(value: int | str, what: str) -> str:
    return str(_int(value, what))


def _check_per_page(per_page: int) -> None:
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be within 1..{MAX_PER_PAGE}, got {per_page}")
