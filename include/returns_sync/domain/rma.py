"""RMA creation: exactly one Whiplash consumer return per eligible Loop return.

One code path serves the 5-minute poll, webhooks, manual triggers and the daily backfill.

Exactly once, without an idempotency key from the vendor (STYLE.md, "Stripe idempotency"):
1. *Claim* the Loop return in the state store (a unique row; a second worker loses the claim).
2. *Look up* Whiplash for a consumer return whose originator/reference is the Loop return id,
   in batches. Found -> *adopt* it. This covers a worker that died after Whiplash created the
   RMA but before our record was written: its claim goes stale, the next run takes it over and
   adopts instead of creating.
3. *Create* only when nothing was found. Whiplash answers 409 on a duplicate originator id: that
   also means "exists" -> look up and adopt. A create whose outcome is unknown (timeout, dropped
   connection) is looked up once more; if still not visible it is recorded `AMBIGUOUS_CREATE`
   and retried on a later run, which looks up first again (and the 409 is the backstop).
4. *Record* the Whiplash id under the claim.

A return that cannot be mapped is recorded with a reason code and retried on later runs; the
other returns still sync. So is a return whose label is unknown (`LABEL_UNKNOWN`: its record
carried no label fields and `domain.labels` found none): undecided, never "not shipped".

A refusal of our credentials (HTTP 401/403, from any call) is never a per-return problem: it
propagates and fails the task, whose message names the connection (PRODUCT.md section 6).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from include.returns_sync.clients.errors import AmbiguousWriteError, VendorError
from include.returns_sync.domain.eligibility import Ineligible, ineligibility
from include.returns_sync.domain.mapping import (
    Lookups,
    Unmappable,
    UnmappableReason,
    build_consumer_return,
    order_keys,
)
from include.returns_sync.domain.sku import BLANK_SKU, normalise_sku
from include.returns_sync.models import (
    ConsumerReturn,
    ConsumerReturnCreate,
    LoopReturn,
    WhiplashItem,
    WhiplashOrder,
)
from include.returns_sync.vocabulary import DONE_STATUSES, SyncStatus

if TYPE_CHECKING:
    from include.returns_sync.state.records import ClaimResult, SyncRecord

log = logging.getLogger(__name__)


# --- what the flow needs from its collaborators (duck-typed; the real ones live elsewhere) ---
class WhiplashApi(Protocol):
    def find_consumer_returns_by_loop_ids(
        self, loop_return_ids: Sequence[str]
    ) -> dict[str, ConsumerReturn]: ...
    def create_consumer_return(self, payload: ConsumerReturnCreate) -> ConsumerReturn: ...
    def find_items_by_sku(self, skus: Iterable[str]) -> dict[str, WhiplashItem]: ...
    def find_orders_by_originator(self, ids: Iterable[str]) -> dict[str, WhiplashOrder]: ...
    def find_orders_by_name(self, names: Iterable[str]) -> dict[str, WhiplashOrder]: ...


class LoopApi(Protocol):
    def get_return(self, return_id: str) -> LoopReturn: ...


class RmaStore(Protocol):
    def get_sync_records(self, loop_return_ids: Iterable[str]) -> Mapping[str, SyncRecord]: ...
    def claim_for_creation(
        self,
        loop_return_id: str,
        *,
        token: str,
        source: str,
        stale_after: timedelta,
        label_status: str | None = None,
        label_pre_transit_at: datetime | None = None,
        order_name: str | None = None,
        tracking_number: str | None = None,
    ) -> ClaimResult: ...
    def record_created(
        self, loop_return_id: str, whiplash_return_id: int, *, adopted: bool, token: str
    ) -> SyncRecord: ...
    def record_unmappable(
        self, loop_return_id: str, reason_code: str, reason_detail: str, *, token: str
    ) -> SyncRecord: ...
    def release_claim(self, loop_return_id: str, token: str) -> bool: ...


@dataclass(frozen=True)
class RmaSettings:
    """Tunables of RMA creation; every one has a safe default."""

    warehouse_id: int | None = None
    sku_aliases: Mapping[str, str] = field(default_factory=dict)
    #: A claim older than this belongs to a worker that died; it must exceed one task's runtime.
    stale_claim_after: timedelta = timedelta(minutes=15)
    dry_run: bool = False


#: Outcomes of one Loop return in one run (the report's buckets).
CREATED = SyncStatus.CREATED.value
ADOPTED = SyncStatus.ADOPTED.value
ALREADY_SYNCED = "already_synced"
INELIGIBLE = "ineligible"
UNMAPPABLE = SyncStatus.UNMAPPABLE.value
BUSY = "busy"  # another worker holds the claim right now; it will finish the job
WOULD_CREATE = "would_create"  # dry run


@dataclass(frozen=True)
class RmaResult:
    loop_return_id: str
    outcome: str
    whiplash_return_id: int | None = None
    reason_code: str | None = None
    detail: str | None = None
    label_status: str | None = None
    label_updated_at: datetime | None = None
    updated_at: datetime | None = None

    def to_row(self) -> dict[str, Any]:
        """A JSON-friendly dict (XCom, CSV)."""
        row = asdict(self)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RmaResult:
        values = dict(row)
        for key in ("label_updated_at", "updated_at"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


@dataclass
class RmaReport:
    """Everything a run did, per Loop return; `summary()` is what the logs and report show."""

    results: list[RmaResult] = field(default_factory=list)

    def add(self, result: RmaResult) -> None:
        self.results.append(result)

    def extend(self, other: RmaReport) -> None:
        self.results.extend(other.results)

    def ids(self, outcome: str) -> list[str]:
        return sorted(r.loop_return_id for r in self.results if r.outcome == outcome)

    def summary(self) -> dict[str, Any]:
        by_outcome = Counter(r.outcome for r in self.results)
        by_reason = Counter(
            f"{r.outcome}:{r.reason_code}" for r in self.results if r.reason_code is not None
        )
        buckets: dict[str, list[str]] = {}
        for r in self.results:
            key = r.outcome if r.reason_code is None else f"{r.outcome}:{r.reason_code}"
            buckets.setdefault(key, []).append(r.loop_return_id)
        return {
            "seen": len(self.results),
            "eligible": len(self.results) - by_outcome.get(INELIGIBLE, 0),
            "counts": dict(sorted(by_outcome.items())),
            "reasons": dict(sorted(by_reason.items())),
            "loop_return_ids": {k: sorted(v) for k, v in sorted(buckets.items())},
        }


def _result(loop_return: LoopReturn, outcome: str, **extra: Any) -> RmaResult:
    return RmaResult(
        loop_return_id=loop_return.id or "",
        outcome=outcome,
        label_status=loop_return.label_status,
        label_updated_at=loop_return.label_updated_at,
        updated_at=loop_return.updated_at,
        **extra,
    )


def _lookups(
    whiplash: WhiplashApi, returns: Sequence[LoopReturn], settings: RmaSettings
) -> Lookups:
    """Batched look-ups of every SKU and order the batch needs: few API calls per return."""
    raw_skus = {line.sku.strip() for r in returns for line in r.line_items if line.sku}
    # Whiplash matches SKUs exactly: search each as Loop spells it and in its normalised form
    # (case, Unicode width, whitespace, merchant aliases), which is how mapping compares them.
    wanted = {sku for sku in raw_skus if sku} | {
        normalise_sku(sku, settings.sku_aliases) for sku in raw_skus if sku
    }
    wanted.discard(BLANK_SKU)
    found_items = whiplash.find_items_by_sku(sorted(wanted)) if wanted else {}
    items_by_sku: dict[str, WhiplashItem] = {}
    for sku, item in found_items.items():
        items_by_sku.setdefault(normalise_sku(item.sku or sku, settings.sku_aliases), item)
    shopify_ids = {key for key in (order_keys(r)[0] for r in returns) if key}
    by_originator = whiplash.find_orders_by_originator(sorted(shopify_ids)) if shopify_ids else {}
    missing_names = {
        name
        for r in returns
        for shopify_id, name in [order_keys(r)]
        if name and (not shopify_id or shopify_id not in by_originator)
    }
    names = {n for name in missing_names for n in (name, f"#{name.lstrip('#')}")}
    by_name = whiplash.find_orders_by_name(sorted(names)) if names else {}
    return Lookups(items_by_sku, by_originator, by_name)


def sync_returns(
    returns: Iterable[LoopReturn],
    *,
    whiplash: WhiplashApi,
    store: RmaStore,
    settings: RmaSettings,
    source: str,
) -> RmaReport:
    """Create (or adopt) the RMA of every eligible return in `returns`; report each one.

    A vendor failure (`VendorError`) on one return's create is recorded against that return
    instead of failing the run, unless it refuses our credentials (401/403): that propagates. Failures of the batched look-ups propagate (the task
    retries), because without them nothing can be decided safely.

    An open return whose record carries no label fields (fill them first: `domain.labels`) is
    recorded as unmappable `LABEL_UNKNOWN`, so that later runs retry it.
    """
    report = RmaReport()
    unique: dict[str, LoopReturn] = {}
    for loop_return in returns:
        if loop_return.id:
            unique[loop_return.id] = loop_return  # the last copy wins: lists can overlap
    records = store.get_sync_records(list(unique))
    todo: list[LoopReturn] = []
    unknown: list[LoopReturn] = []
    for loop_id, loop_return in unique.items():
        reason = ineligibility(loop_return)
        record = records.get(loop_id)
        if record is not None and record.status in DONE_STATUSES:
            report.add(
                _result(loop_return, ALREADY_SYNCED, whiplash_return_id=record.whiplash_return_id)
            )
        elif reason is Ineligible.LABEL_UNKNOWN:
            unknown.append(loop_return)
        elif reason is not None:
            report.add(_result(loop_return, INELIGIBLE, reason_code=str(reason)))
        else:
            todo.append(loop_return)
    _record_label_unknown(unknown, store, settings, source, report)
    if not todo:
        return report

    if settings.dry_run:
        existing = whiplash.find_consumer_returns_by_loop_ids([r.id or "" for r in todo])
        lookups = _lookups(whiplash, todo, settings)
        for loop_return in todo:
            if loop_return.id in existing:
                report.add(_result(loop_return, ADOPTED, detail="dry run: would adopt"))
                continue
            try:
                build_consumer_return(
                    loop_return,
                    lookups,
                    warehouse_id=settings.warehouse_id,
                    aliases=settings.sku_aliases,
                )
                report.add(_result(loop_return, WOULD_CREATE))
            except Unmappable as exc:
                report.add(
                    _result(loop_return, UNMAPPABLE, reason_code=str(exc.reason), detail=exc.detail)
                )
        return report

    token = uuid.uuid4().hex
    claimed: list[LoopReturn] = []
    for loop_return in todo:
        claim = store.claim_for_creation(
            loop_return.id or "",
            token=token,
            source=source,
            stale_after=settings.stale_claim_after,
            label_status=loop_return.label_status,
            **_search_facts(loop_return),
        )
        if claim.won:
            claimed.append(loop_return)
        elif claim.whiplash_return_id:
            report.add(
                _result(loop_return, ALREADY_SYNCED, whiplash_return_id=claim.whiplash_return_id)
            )
        else:
            report.add(_result(loop_return, BUSY, detail="another worker holds the claim"))
    if not claimed:
        return report
    try:
        _adopt_or_create(claimed, whiplash, store, settings, token, report)
    except Exception:
        # The task fails (and Airflow retries it): hand back the claims this attempt did not
        # finish, or its own retry would find them busy until they go stale. Safe, because
        # whoever claims next looks Whiplash up before creating anything.
        _release_unfinished(store, claimed, report, token)
        raise
    return report


def _search_facts(loop_return: LoopReturn) -> dict[str, Any]:
    """What the store keeps of a claimed return for the operator views: its order name and
    tracking number (search keys) and when its label shipped (`label_updated_at` of a shipped
    label: the start of "label -> RMA" time)."""
    shipped = loop_return.label_status is not None and ineligibility(loop_return) is None
    return {
        "order_name": loop_return.order_name,
        "tracking_number": loop_return.tracking_number,
        "label_pre_transit_at": loop_return.label_updated_at if shipped else None,
    }


def _record_label_unknown(
    returns: Sequence[LoopReturn],
    store: RmaStore,
    settings: RmaSettings,
    source: str,
    report: RmaReport,
) -> None:
    """Returns whose label nobody knows: recorded (retried by later runs) and reported."""
    reason = UnmappableReason.LABEL_UNKNOWN
    detail = (
        "Loop's record carries no label fields and neither the detailed list, the webhook nor "
        "our records know the label; retried on later runs"
    )
    token = uuid.uuid4().hex
    for loop_return in returns:
        loop_id = loop_return.id or ""
        if not settings.dry_run:
            claim = store.claim_for_creation(
                loop_id,
                token=token,
                source=source,
                stale_after=settings.stale_claim_after,
                **_search_facts(loop_return),
            )
            if not claim.won:
                if claim.whiplash_return_id:
                    report.add(
                        _result(
                            loop_return, ALREADY_SYNCED, whiplash_return_id=claim.whiplash_return_id
                        )
                    )
                else:
                    report.add(_result(loop_return, BUSY, detail="another worker holds the claim"))
                continue
            store.record_unmappable(loop_id, str(reason), detail, token=token)
        report.add(_result(loop_return, UNMAPPABLE, reason_code=str(reason), detail=detail))


def is_auth_failure(exc: BaseException) -> bool:
    """A refusal of our credentials (401/403): a deployment problem, never a per-return one."""
    return isinstance(exc, VendorError) and exc.status in (401, 403)


def _adopt_or_create(
    claimed: Sequence[LoopReturn],
    whiplash: WhiplashApi,
    store: RmaStore,
    settings: RmaSettings,
    token: str,
    report: RmaReport,
) -> None:
    # Look up AFTER claiming: nothing of ours can create these returns between here and create.
    existing = whiplash.find_consumer_returns_by_loop_ids([r.id or "" for r in claimed])
    to_create = []
    for loop_return in claimed:
        found = existing.get(loop_return.id or "")
        if found is not None:
            store.record_created(loop_return.id or "", found.id, adopted=True, token=token)
            report.add(_result(loop_return, ADOPTED, whiplash_return_id=found.id))
        else:
            to_create.append(loop_return)
    if not to_create:
        return
    lookups = _lookups(whiplash, to_create, settings)
    for loop_return in to_create:
        report.add(_create_one(loop_return, lookups, whiplash, store, settings, token))


def _release_unfinished(
    store: RmaStore, claimed: Sequence[LoopReturn], report: RmaReport, token: str
) -> None:
    finished = {result.loop_return_id for result in report.results}
    for loop_return in claimed:
        if loop_return.id and loop_return.id not in finished:
            try:
                store.release_claim(loop_return.id, token)
            except Exception as exc:  # the store itself may be what failed: leave it stale
                log.warning("could not release the claim on %s: %s", loop_return.id, exc)


def _create_one(
    loop_return: LoopReturn,
    lookups: Lookups,
    whiplash: WhiplashApi,
    store: RmaStore,
    settings: RmaSettings,
    token: str,
) -> RmaResult:
    loop_id = loop_return.id or ""
    try:
        payload = build_consumer_return(
            loop_return, lookups, warehouse_id=settings.warehouse_id, aliases=settings.sku_aliases
        )
        created = whiplash.create_consumer_return(payload)
    except Unmappable as exc:
        store.record_unmappable(loop_id, str(exc.reason), exc.detail, token=token)
        return _result(loop_return, UNMAPPABLE, reason_code=str(exc.reason), detail=exc.detail)
    except VendorError as exc:
        if is_auth_failure(exc):
            raise  # the connection is wrong: fail the task now (its claim is released)
        return _after_failed_create(loop_return, exc, whiplash, store, token)
    store.record_created(loop_id, created.id, adopted=False, token=token)
    return _result(loop_return, CREATED, whiplash_return_id=created.id)


def _after_failed_create(
    loop_return: LoopReturn,
    exc: VendorError,
    whiplash: WhiplashApi,
    store: RmaStore,
    token: str,
) -> RmaResult:
    """A create failed: a 409 or an unknown outcome may still mean the RMA exists. Look again."""
    loop_id = loop_return.id or ""
    status = exc.status
    kind = type(exc).__name__
    try:
        found = whiplash.find_consumer_returns_by_loop_ids([loop_id]).get(loop_id)
    except Exception as lookup_exc:  # the look-up itself failed: decide nothing, retry later
        if is_auth_failure(lookup_exc):
            raise
        log.warning("look-up after a failed create of %s failed: %s", loop_id, lookup_exc)
        found = None
    if found is not None:
        store.record_created(loop_id, found.id, adopted=True, token=token)
        return _result(loop_return, ADOPTED, whiplash_return_id=found.id, detail=f"after {kind}")
    if status in (400, 422):
        reason = UnmappableReason.WHIPLASH_REJECTED
    elif status is None or status >= 500 or isinstance(exc, AmbiguousWriteError):
        reason = UnmappableReason.AMBIGUOUS_CREATE
    else:
        reason = UnmappableReason.VENDOR_ERROR
    detail = f"{kind} (HTTP {status or '-'}): {exc}"[:500]
    store.record_unmappable(loop_id, str(reason), detail, token=token)
    return _result(loop_return, UNMAPPABLE, reason_code=str(reason), detail=detail)


def fetch_by_ids(
    loop: LoopApi, return_ids: Iterable[str]
) -> tuple[list[LoopReturn], list[RmaResult]]:
    """Read explicit Loop returns (webhooks, manual runs, retries).

    A 404, or an answer about one return that cannot be read (an HTML page, a record that does
    not validate, a 400/422), is reported for that return, not fatal. Failures that concern
    every return (transient ones, refused credentials) propagate: the task retries or alerts.
    """
    found: list[LoopReturn] = []
    missing: list[RmaResult] = []
    for return_id in dict.fromkeys(str(i).strip() for i in return_ids if str(i).strip()):
        try:
            found.append(loop.get_return(return_id))
        except VendorError as exc:
            if exc.status == 404:
                reason, detail = UnmappableReason.LOOP_NOT_FOUND, "Loop answered 404 for it"
            elif unreadable_record(exc):
                reason, detail = UnmappableReason.INVALID_LOOP_DATA, f"unreadable: {exc}"
            else:
                raise
            missing.append(
                RmaResult(
                    loop_return_id=return_id,
                    outcome=UNMAPPABLE,
                    reason_code=str(reason),
                    detail=detail[:300],
                )
            )
    return found, missing


def unreadable_record(exc: VendorError) -> bool:
    """A vendor answer about one record that retrying cannot fix and that concerns only it.

    Not transient (so not a 429, 5xx or lost connection), with an HTTP status (so not a
    transport or configuration failure), and not a refusal of our credentials (401/403).
    """
    return not exc.transient and exc.status is not None and exc.status not in (401, 403)


def record_not_found(
    store: RmaStore, missing: Iterable[RmaResult], *, source: str, settings: RmaSettings
) -> list[RmaResult]:
    """Record Loop returns we could not read (404, malformed) as unmappable, so they are
    retried and reported, unless they are synced already."""
    results = []
    token = uuid.uuid4().hex
    for result in missing:
        if settings.dry_run:
            results.append(result)
            continue
        claim = store.claim_for_creation(
            result.loop_return_id,
            token=token,
            source=source,
            stale_after=settings.stale_claim_after,
        )
        if claim.won:
            store.record_unmappable(
                result.loop_return_id, result.reason_code or "", result.detail or "", token=token
            )
            results.append(result)
    return results


__all__ = [
    "ADOPTED",
    "ALREADY_SYNCED",
    "BLANK_SKU",
    "BUSY",
    "CREATED",
    "INELIGIBLE",
    "UNMAPPABLE",
    "WOULD_CREATE",
    "RmaReport",
    "RmaResult",
    "RmaSettings",
    "fetch_by_ids",
    "is_auth_failure",
    "record_not_found",
    "sync_returns",
    "unreadable_record",
]
