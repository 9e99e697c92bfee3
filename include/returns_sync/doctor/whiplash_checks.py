"""Preflight checks against Whiplash: the grant and its scope, page size, search predicates.

Requests: one token grant (the pipeline's own, through the connection's grant type), then GETs
only: the first page of consumer returns, orders and items at `per_page=250`, the orders count,
and one filtered search per predicate the pipeline relies on. A search that returns a row
outside its filter means Whiplash ignored the predicate: look-ups before creating an RMA would
miss or mismatch existing ones, so it blocks going live.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from include.returns_sync.clients.errors import VendorAuthError, VendorError
from include.returns_sync.clients.whiplash import API, MAX_PER_PAGE
from include.returns_sync.doctor.checks import CheckResult, Status, check, describe_error
from include.returns_sync.doctor.probes import DoctorWhiplashHook, TokenGrant

#: Whiplash's V1 default page size; a cap can only be seen on an account with more rows.
SMALL_PAGE = 50
WRITE_SCOPES = frozenset({"app_manage", "user_manage"})
PER_PAGE_HEADER = "Per-Page"

GRANT = (
    "The OAuth grant of whiplash_default (refresh token, or client credentials) answers with a "
    "bearer token."
)
SCOPE = (
    "The token may write (scope app_manage or user_manage): the pipeline creates RMAs. A "
    "client-credentials token granted without a scope may be read-only."
)
ROTATION = (
    "A refresh token may be revoked once its successor is used: every rotation is persisted "
    "(state store, Fernet-encrypted) before the next grant."
)
READ = "The token may list consumer returns."
PER_PAGE = (
    f"A list honours per_page up to {MAX_PER_PAGE}; Whiplash documents no maximum and no "
    "page-size header, so a cap may be silent."
)
#: (resource, predicate) of every search the pipeline relies on, in report order.
FILTERS = (
    ("consumer_returns", "id_in"),
    ("consumer_returns", "reference_in"),
    ("consumer_returns", "originator_original_id_in"),
    ("consumer_returns", "updated_at_gt"),
    ("consumer_returns", "id_gt"),
    ("orders", "originator_original_id_in"),
    ("items", "sku_in"),
)


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    headers: Mapping[str, str]

    @property
    def full(self) -> bool:
        """As many rows as asked for: more may exist beyond this page."""
        return len(self.rows) >= MAX_PER_PAGE


@dataclass(frozen=True)
class FilterProbe:
    """One search predicate tried on real values from a first page."""

    resource: str
    predicate: str
    value: Any
    #: Whether a returned row satisfies the predicate.
    inside: Callable[[dict[str, Any]], bool]
    #: Ids from the first page that must come back (checked only when that page was complete).
    expected_ids: frozenset[Any]
    relied_on_for: str
    #: Set when the predicate is tried on orders for lack of consumer returns: the row stays
    #: about this resource, and a passing proxy is only a hint (inconclusive), a failing one
    #: still blocks.
    proxy_for: str | None = None
    #: Why the real resource could not be used.
    proxy_reason: str = ""

    @property
    def name(self) -> str:
        return filter_name(self.proxy_for or self.resource, self.predicate)


def filter_name(resource: str, predicate: str) -> str:
    """`whiplash.filter.id_gt` (consumer returns), `whiplash.filter.items.sku_in` (others)."""
    if resource == "consumer_returns":
        return f"whiplash.filter.{predicate}"
    return f"whiplash.filter.{resource}.{predicate}"


def inspect_whiplash(
    hook: DoctorWhiplashHook,
    *,
    refresh_blocker: tuple[Status, str] | None = None,
) -> list[CheckResult]:
    """Every Whiplash row, in report order.

    `refresh_blocker` is set by the caller when the connection uses the refresh-token grant but
    a rotated token could not be persisted: the doctor then does not grant at all (a rotation
    it cannot store would strand the pipeline with a spent token).
    """
    grant_row = check("whiplash.grant", GRANT)
    if refresh_blocker is not None and _uses_refresh_grant(hook):
        status, reason = refresh_blocker
        return [
            grant_row(
                f"not attempted: {reason}",
                "a refresh grant rotates the token; the rotated token must be stored where "
                "every task finds it",
                status,
            ),
            *_not_run("the grant was not attempted"),
        ]
    try:
        hook.oauth.bearer_token()
    except (VendorError, ValueError) as error:
        return [
            grant_row(
                describe_error(error),
                "every Whiplash call fails; fix whiplash_default's client id, secret and "
                "refresh token (or ask Whiplash for client-credentials access)",
                Status.BLOCKING,
            ),
            *_not_run("no token was granted"),
        ]
    grant = hook.grants[-1] if hook.grants else None
    grant_type = grant.grant_type if grant else "cached"
    rows = [
        grant_row(f"{grant_type} grant answered with a bearer token", "none", Status.OK),
        scope_row(grant),
        rotation_row(grant, has_store=hook.token_store is not None),
    ]
    try:
        returns = _page(hook, "consumer_returns")
    except VendorAuthError as error:
        rows.append(
            check("whiplash.read", READ)(
                f"HTTP {error.status} on GET consumer_returns",
                "every flow stops at its first Whiplash read: check the token's scope and the "
                "customer_id / shop_id extras",
                Status.BLOCKING,
            )
        )
        return [*rows, *_not_run("consumer returns could not be listed", reads=False)]
    except VendorError as error:
        rows.append(
            check("whiplash.read", READ)(
                describe_error(error),
                "every flow stops at its first Whiplash read",
                Status.BLOCKING,
            )
        )
        return [*rows, *_not_run("consumer returns could not be listed", reads=False)]
    rows.append(
        check("whiplash.read", READ)(
            f"listed {len(returns.rows)} consumer return(s) on the first page", "none", Status.OK
        )
    )
    orders, orders_row = _orders_and_per_page(hook)
    rows.append(orders_row)
    items = _safe_page(hook, "items")
    for probe_or_reason in _filter_probes(returns, orders, items):
        rows.append(_run_filter(hook, probe_or_reason))
    rows.append(_unhandled_events())
    return rows


# --------------------------------------------------------------------------- grant and scope


def _uses_refresh_grant(hook: DoctorWhiplashHook) -> bool:
    if hook.extras.get("refresh_token"):
        return True
    store = hook.token_store
    return bool(store is not None and store.load(hook.conn_id))


def scope_row(grant: TokenGrant | None) -> CheckResult:
    """The scope the token answer reports; a read-only token blocks (RMAs are writes)."""
    row = check("whiplash.scope", SCOPE)
    if grant is None:
        return row("no token answer seen", "run the doctor again", Status.INCONCLUSIVE)
    asked = (
        f"asked for scope {grant.requested_scope}"
        if grant.requested_scope
        else "asked for no scope (Whiplash's default applies)"
    )
    facts = {
        "grant_type": grant.grant_type,
        "requested_scope": grant.requested_scope,
        "granted_scope": grant.granted_scope,
    }
    if grant.granted_scope is None:
        return row(
            f"{asked}; the token answer reports no scope: unknown",
            "decided by the first RMA creation (a 401/403 there fails the run loudly); the "
            "doctor does not write to find out",
            Status.INCONCLUSIVE,
            facts,
        )
    scopes = set(grant.granted_scope.split())
    if scopes & WRITE_SCOPES:
        return row(f"{asked}; granted {grant.granted_scope}", "none", Status.OK, facts)
    if any(scope.endswith("read") for scope in scopes):
        return row(
            f"{asked}; granted {grant.granted_scope} (read-only)",
            "RMA creation would fail with 401/403: set the connection extra scope to "
            "app_manage (client credentials) or re-authorize with user_manage",
            Status.BLOCKING,
            facts,
        )
    return row(
        f"{asked}; granted {grant.granted_scope} (not a scope we know)",
        "RMA creation may be refused; ask Whiplash whether this scope may create consumer returns",
        Status.WARN,
        facts,
    )


def rotation_row(grant: TokenGrant | None, *, has_store: bool) -> CheckResult:
    row = check("whiplash.refresh_rotation", ROTATION)
    if grant is None or grant.grant_type != "refresh_token":
        return row(
            "client-credentials grant: no refresh token to rotate",
            "none",
            Status.SKIPPED,
        )
    if not grant.rotated_refresh_token:
        return row("the refresh grant kept the same refresh token", "none", Status.OK)
    if has_store:
        return row(
            "the refresh grant rotated the token; the new one was saved to the state store",
            "none: every task reads the newest token from the state store",
            Status.OK,
        )
    return row(  # pragma: no cover - the caller does not grant without a store
        "the refresh grant rotated the token and it could not be persisted",
        "put a fresh refresh token in whiplash_default",
        Status.BLOCKING,
    )


# --------------------------------------------------------------------------- pages


def _page(hook: DoctorWhiplashHook, resource: str, search: Mapping[str, Any] | None = None) -> Page:
    params: dict[str, Any] = {"per_page": MAX_PER_PAGE, "page": 1, "sort": "id asc"}
    if search:
        params["search"] = json.dumps(search, separators=(",", ":"))
    answer = hook._call(f"doctor_{resource}", "GET", f"{API}/{resource}", params=params)
    body = answer.body if isinstance(answer.body, list) else []
    return Page([row for row in body if isinstance(row, dict)], answer.headers)


def _safe_page(hook: DoctorWhiplashHook, resource: str) -> Page | str:
    try:
        return _page(hook, resource)
    except VendorError as error:
        return f"{resource} could not be listed: {describe_error(error)}"


def _orders_and_per_page(hook: DoctorWhiplashHook) -> tuple[Page | str, CheckResult]:
    row = check("whiplash.per_page", PER_PAGE)
    try:
        page = _page(hook, "orders")
    except VendorError as error:
        reason = f"orders could not be listed: {describe_error(error)}"
        return reason, row(reason, "decided once orders can be listed", Status.INCONCLUSIVE)
    total: int | None
    try:
        counted = hook._call("doctor_orders_count", "GET", f"{API}/orders/count").body
        total = int(counted["count"]) if isinstance(counted, dict) else None
    except (VendorError, KeyError, TypeError, ValueError):
        total = None
    return page, per_page_row(page, total)


def per_page_row(page: Page, total: int | None) -> CheckResult:
    row = check("whiplash.per_page", PER_PAGE)
    got = len(page.rows)
    announced = page.headers.get(PER_PAGE_HEADER)
    header = f"{PER_PAGE_HEADER} header {announced}" if announced else "no page-size header"
    facts = {"asked": MAX_PER_PAGE, "rows": got, "total": total, "per_page_header": announced}
    known_total = total if total is not None else (got if got < SMALL_PAGE else None)
    if known_total is not None and known_total <= SMALL_PAGE:
        return row(
            f"the account has {known_total} orders: a cap at {SMALL_PAGE} or above cannot show "
            f"({header})",
            "decided once the account has more than 50 orders",
            Status.INCONCLUSIVE,
            facts,
        )
    expected = MAX_PER_PAGE if total is None else min(total, MAX_PER_PAGE)
    if got >= expected:
        return row(
            f"per_page={MAX_PER_PAGE} served {got} rows ({header})", "none", Status.OK, facts
        )
    facts["cap"] = got
    return row(
        f"per_page={MAX_PER_PAGE} served {got} of {total if total is not None else 'more'} "
        f"orders: capped at {got}, {header}",
        "handled: the pipeline pages until an empty page (it never takes a short page for "
        "the last, nor relies on a page-size header)",
        Status.WARN,
        facts,
    )


# --------------------------------------------------------------------------- search predicates

_RELIED_ON = {
    "id_in": "re-reading known RMAs in batches (receipts)",
    "reference_in": "finding an existing RMA before creating one (exactly one RMA per return)",
    "originator_original_id_in": "finding an existing RMA (and the Whiplash order) before "
    "creating one",
    "updated_at_gt": "the receipts poll's keyset walk (RMAs changed since the watermark)",
    "id_gt": "the receipts poll's keyset walk within one updated_at instant",
    "sku_in": "mapping Loop SKUs to Whiplash items in batches",
}


def _filter_probes(
    returns: Page, orders: Page | str, items: Page | str
) -> list[FilterProbe | tuple[str, str, str]]:
    """A probe per predicate, or (name, predicate, reason) when the data cannot decide it."""
    probes: list[FilterProbe | tuple[str, str, str]] = []
    resource = "consumer_returns"
    probes.append(_id_in(resource, returns))
    probes.append(_value_in(resource, "reference_in", returns, lambda r: r.get("reference")))
    probes.append(
        _value_in(resource, "originator_original_id_in", returns, _originator_original_id)
    )
    probes.append(_updated_at_gt(resource, returns))
    probes.append(_id_gt(resource, returns))
    if isinstance(orders, Page):
        # A new account may have no RMAs yet: try the generic predicates on orders instead, so
        # that an ignored one still shows on day one.
        proxies = {"id_in": _id_in, "updated_at_gt": _updated_at_gt, "id_gt": _id_gt}
        for index, probe in enumerate(probes):
            if isinstance(probe, tuple) and probe[1] in proxies:
                proxy = proxies[probe[1]]("orders", orders)
                if isinstance(proxy, FilterProbe):
                    probes[index] = replace(proxy, proxy_for=resource, proxy_reason=probe[2])
        probes.append(
            _value_in("orders", "originator_original_id_in", orders, _originator_original_id)
        )
    else:
        probes.append(("orders", "originator_original_id_in", orders))
    if isinstance(items, Page):
        probes.append(_value_in("items", "sku_in", items, lambda r: r.get("sku")))
    else:
        probes.append(("items", "sku_in", items))
    return probes


def _id_in(resource: str, page: Page) -> FilterProbe | tuple[str, str, str]:
    ids = sorted({row["id"] for row in page.rows if isinstance(row.get("id"), int)})
    if len(ids) < 2:
        return resource, "id_in", f"needs at least 2 {resource}, the account has {len(ids)}"
    chosen = [ids[0], *ids[2:3]]
    wanted = frozenset(chosen)
    return FilterProbe(
        resource,
        "id_in",
        chosen,
        lambda row: row.get("id") in wanted,
        wanted,
        _RELIED_ON["id_in"],
    )


def _value_in(
    resource: str,
    predicate: str,
    page: Page,
    value_of: Callable[[dict[str, Any]], Any],
) -> FilterProbe | tuple[str, str, str]:
    values = [_text(value_of(row)) for row in page.rows]
    candidates = [v for v in values if v]
    for value in candidates:
        if any(other != value for other in values):  # some row lies outside the filter
            expected = frozenset(
                row.get("id") for row, v in zip(page.rows, values, strict=True) if v == value
            )
            return FilterProbe(
                resource,
                predicate,
                [value],
                partial(_has_value, value_of, value),
                expected,
                _RELIED_ON[predicate],
            )
    attribute = predicate.removesuffix("_in")
    return (
        resource,
        predicate,
        f"needs 2 {resource} with different {attribute} values; found "
        f"{len(set(candidates))} distinct among {len(page.rows)}",
    )


def _has_value(value_of: Callable[[dict[str, Any]], Any], value: str, row: dict[str, Any]) -> bool:
    return _text(value_of(row)) == value


def _updated_at_gt(resource: str, page: Page) -> FilterProbe | tuple[str, str, str]:
    stamped = [(row, _time(row.get("updated_at"))) for row in page.rows]
    times = [moment for _, moment in stamped if moment is not None]
    if not times:
        return resource, "updated_at_gt", f"needs at least 1 of {resource}, the account has none"
    pivot = min(times)
    expected = frozenset(row.get("id") for row, moment in stamped if moment and moment > pivot)
    return FilterProbe(
        resource,
        "updated_at_gt",
        pivot.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        lambda row: (_time(row.get("updated_at")) or pivot) > pivot,
        expected,
        _RELIED_ON["updated_at_gt"],
    )


def _id_gt(resource: str, page: Page) -> FilterProbe | tuple[str, str, str]:
    ids = sorted(row["id"] for row in page.rows if isinstance(row.get("id"), int))
    if not ids:
        return resource, "id_gt", f"needs at least 1 of {resource}, the account has none"
    pivot = ids[0]
    return FilterProbe(
        resource,
        "id_gt",
        pivot,
        lambda row: isinstance(row.get("id"), int) and row["id"] > pivot,
        frozenset(ids[1:]),
        _RELIED_ON["id_gt"],
    )


def _run_filter(hook: DoctorWhiplashHook, probe: FilterProbe | tuple[str, str, str]) -> CheckResult:
    if isinstance(probe, tuple):
        resource, predicate, reason = probe
        return check(filter_name(resource, predicate), _filter_assumption(resource, predicate))(
            reason, "decided once the account has such records", Status.INCONCLUSIVE
        )
    row = check(probe.name, _filter_assumption(probe.proxy_for or probe.resource, probe.predicate))
    search = {probe.predicate: probe.value}
    facts: dict[str, Any] = {"search": search, "resource": probe.resource}
    tried = f" on {probe.resource}" if probe.proxy_for else ""
    try:
        page = _page(hook, probe.resource, search)
    except VendorError as error:
        return row(
            f"the search failed: {describe_error(error)}",
            f"{probe.relied_on_for} would fail the same way",
            Status.BLOCKING,
            facts,
        )
    outside = [r.get("id") for r in page.rows if not probe.inside(r)]
    returned = {r.get("id") for r in page.rows}
    missing = sorted(probe.expected_ids - returned) if not page.full else []
    facts |= {"rows": len(page.rows), "outside": outside[:10], "missing": missing[:10]}
    if outside:
        return row(
            f"{json.dumps(search)}{tried} returned {len(outside)} of {len(page.rows)} rows "
            "outside the filter: the predicate is ignored",
            f"BLOCKING for {probe.relied_on_for}: look-ups would mismatch or miss records. "
            "Ask Whiplash to support this predicate before going live",
            Status.BLOCKING,
            facts,
        )
    if missing:
        return row(
            f"{json.dumps(search)}{tried} left out {len(missing)} matching row(s)",
            f"BLOCKING for {probe.relied_on_for}: look-ups would miss existing records",
            Status.BLOCKING,
            facts,
        )
    if probe.proxy_for:
        return row(
            f"{probe.proxy_reason}; on {probe.resource} {json.dumps(search)} returned only "
            f"matching rows ({len(page.rows)})",
            f"likely fine; run the doctor again once {probe.proxy_for} exist to decide",
            Status.INCONCLUSIVE,
            facts,
        )
    return row(
        f"{json.dumps(search)} returned only matching rows ({len(page.rows)})",
        "none",
        Status.OK,
        facts,
    )


def _filter_assumption(resource: str, predicate: str) -> str:
    relied = _RELIED_ON.get(predicate, "look-ups")
    return f"Search {predicate} on {resource} filters (relied on for {relied})."


def _unhandled_events() -> CheckResult:
    return check(
        "whiplash.unhandled_events",
        "Whiplash may deliver events our subscriptions did not ask for.",
    )(
        "not probed: it needs a webhook delivery",
        "handled: the webhook endpoint acknowledges events it does not handle and starts no work",
        Status.SKIPPED,
    )


def _not_run(reason: str, *, reads: bool = True) -> list[CheckResult]:
    """The rows that could not run, so that every report has every row."""
    named = [(filter_name(r, p), _filter_assumption(r, p)) for r, p in FILTERS]
    named.insert(0, ("whiplash.per_page", PER_PAGE))
    if reads:
        named[:0] = [
            ("whiplash.scope", SCOPE),
            ("whiplash.refresh_rotation", ROTATION),
            ("whiplash.read", READ),
        ]
    rows = [
        check(name, assumption)(
            f"not checked: {reason}", "fix the rows above first", Status.SKIPPED
        )
        for name, assumption in named
    ]
    return [*rows, _unhandled_events()]


# --------------------------------------------------------------------------- small readers


def _originator_original_id(row: Mapping[str, Any]) -> Any:
    originator = row.get("originator")
    return originator.get("original_id") if isinstance(originator, Mapping) else None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
