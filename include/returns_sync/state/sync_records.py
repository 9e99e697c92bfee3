"""Per-Loop-return RMA creation records: the claim protocol behind "exactly one RMA per return".

Records belong to a merchant: a Loop return id (and a Whiplash id) is unique per merchant, and
every method reads and writes the store's merchant's records only, except
`merchant_of_whiplash_return`, which looks across merchants.

A worker must win `claim_for_creation` before it may create a consumer return in Whiplash, and
finishes with `record_created` / `record_unmappable` / `record_failed` / `release_claim`.
Every step is a single guarded statement (INSERT ... ON CONFLICT DO NOTHING, or an UPDATE
whose WHERE clause states the precondition), so two workers can never both win; nothing is
decided by reading first and writing later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from include.returns_sync.state._base import (
    StoreBase,
    chunks,
    first_row,
    int_ids,
    require_aware,
    require_duration,
    require_int,
    require_text,
    text_ids,
)
from include.returns_sync.state.errors import (
    ClaimLostError,
    DuplicateRmaError,
    WhiplashIdConflictError,
)
from include.returns_sync.state.records import (
    ClaimOutcome,
    ClaimResult,
    SyncRecord,
    SyncSource,
    coerce,
)
from include.returns_sync.state.schema import UTCDateTime
from include.returns_sync.state.schema import sync_records as t
from include.returns_sync.vocabulary import DONE_STATUSES, RETRY_STATUSES, SyncStatus

log = logging.getLogger(__name__)

#: How long a creation claim protects a return before another worker may take it over.
DEFAULT_CLAIM_STALE_AFTER = timedelta(minutes=15)
#: Reason code left on a record whose taken-over stale claim was released without an outcome.
RELEASED_REASON = "CLAIM_RELEASED"

_DONE = [s.value for s in DONE_STATUSES]
_RETRY = [s.value for s in RETRY_STATUSES]


def _record(row: RowMapping) -> SyncRecord:
    return SyncRecord(
        loop_return_id=row["loop_return_id"],
        whiplash_return_id=row["whiplash_return_id"],
        status=SyncStatus(row["status"]),
        reason_code=row["reason_code"],
        reason_detail=row["reason_detail"],
        attempts=row["attempts"],
        claim_token=row["claim_token"],
        claimed_at=row["claimed_at"],
        claimed_from=SyncStatus(row["claimed_from"]) if row["claimed_from"] else None,
        label_status=row["label_status"],
        label_pre_transit_at=row["label_pre_transit_at"],
        source=SyncSource(row["source"]),
        first_seen_at=row["first_seen_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_run_id=row["last_run_id"],
        merchant=row["merchant"],
    )


class SyncRecordsMixin(StoreBase):
    """Sync-record methods of `StateStore`."""

    # -- reads -------------------------------------------------------------------------------

    def get_sync_records(self, loop_return_ids: Iterable[str]) -> dict[str, SyncRecord]:
        """The records that exist for these Loop return ids (missing ids are simply absent)."""
        ids = text_ids(loop_return_ids, "loop_return_ids")
        found: dict[str, SyncRecord] = {}
        with self._read() as conn:
            for part in chunks(ids):
                query = select(t).where(self._scope(t), t.c.loop_return_id.in_(part))
                for row in conn.execute(query).mappings():
                    found[row["loop_return_id"]] = _record(row)
        return found

    def find_by_whiplash_id(self, whiplash_return_ids: Iterable[int]) -> dict[int, SyncRecord]:
        """Records by the Whiplash consumer return id they created or adopted."""
        ids = int_ids(whiplash_return_ids, "whiplash_return_ids")
        found: dict[int, SyncRecord] = {}
        with self._read() as conn:
            for part in chunks(ids):
                query = select(t).where(self._scope(t), t.c.whiplash_return_id.in_(part))
                for row in conn.execute(query).mappings():
                    found[row["whiplash_return_id"]] = _record(row)
        return found

    def merchant_of_whiplash_return(self, whiplash_return_id: int) -> str | None:
        """The merchant whose RMA this Whiplash consumer return is, across all merchants.

        Not scoped (the one Whiplash webhook endpoint routes each event with it). None when no
        merchant recorded it, and also when several did: Whiplash ids are unique within one
        Whiplash account, so two owners mean two accounts that reuse ids, and the caller must
        tell them apart by other means (the event's customer id) rather than guess here.
        """
        wid = require_int(whiplash_return_id, "whiplash_return_id")
        query = select(t.c.merchant).where(t.c.whiplash_return_id == wid).distinct().limit(2)
        with self._read() as conn:
            owners = list(conn.execute(query).scalars())
        if len(owners) > 1:
            log.warning(
                "Whiplash return %s is recorded by several merchants (%s): not routing by it",
                wid,
                ", ".join(sorted(owners)),
            )
            return None
        return owners[0] if owners else None

    def retry_candidates(
        self, limit: int, *, stale_after: timedelta = DEFAULT_CLAIM_STALE_AFTER
    ) -> list[str]:
        """Loop return ids a later run should try again, least recently touched first.

        That is every `unmappable` or `failed` record plus claims older than `stale_after`
        (their worker died). Each retry touches `updated_at`, so a long backlog rotates.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer; got {limit!r}")
        cutoff = self._now() - require_duration(stale_after, "stale_after")
        query = (
            select(t.c.loop_return_id)
            .where(
                self._scope(t),
                or_(
                    t.c.status.in_(_RETRY),
                    and_(t.c.status == SyncStatus.CLAIMED.value, t.c.claimed_at < cutoff),
                ),
            )
            .order_by(t.c.updated_at, t.c.loop_return_id)
            .limit(limit)
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def sync_status_counts(self) -> dict[SyncStatus, int]:
        """How many records are in each status (every status present, zero included)."""
        counts = dict.fromkeys(SyncStatus, 0)
        with self._read() as conn:
            query = select(t.c.status, func.count()).where(self._scope(t)).group_by(t.c.status)
            for status, count in conn.execute(query):
                counts[SyncStatus(status)] = count
        return counts

    # -- the claim protocol ------------------------------------------------------------------

    def claim_for_creation(
        self,
        loop_return_id: str,
        *,
        token: str,
        source: SyncSource | str,
        stale_after: timedelta = DEFAULT_CLAIM_STALE_AFTER,
        label_status: str | None = None,
        label_pre_transit_at: datetime | None = None,
        run_id: str | None = None,
        order_name: str | None = None,
        tracking_number: str | None = None,
    ) -> ClaimResult:
        """Try to become the one worker allowed to create the RMA for this Loop return.

        Wins when there is no record yet, when the record is `unmappable`/`failed` (a retry),
        when this same token already holds it, or when another claim is older than
        `stale_after` — then `stale=True` and the caller must look the return up in Whiplash
        and adopt it instead of creating. Loses with `busy` against a fresh claim and with
        `done` (carrying the Whiplash id) once an RMA is recorded.

        `order_name` and `tracking_number` are kept for the operator views' search (a later
        claim's non-empty value replaces them); `source` is also kept as the latest attempt's
        trigger, with the run of a store made by `for_run`.
        """
        lid = require_text(loop_return_id, "loop_return_id")
        run_id = run_id or self.run_id
        require_text(token, "token")
        src = coerce(SyncSource, source, "source")
        require_duration(stale_after, "stale_after")
        pre_transit = (
            require_aware(label_pre_transit_at, "label_pre_transit_at")
            if label_pre_transit_at is not None
            else None
        )
        now = self._now()
        claim = {
            "status": SyncStatus.CLAIMED.value,
            "claim_token": token,
            "claimed_at": now,
            "updated_at": now,
            "attempts": t.c.attempts + 1,
            "label_status": func.coalesce(label_status, t.c.label_status),
            "label_pre_transit_at": func.coalesce(
                t.c.label_pre_transit_at, literal(pre_transit, UTCDateTime())
            ),
            "last_run_id": func.coalesce(run_id, t.c.last_run_id),
            **self._claim_facts(src, order_name, tracking_number),
        }
        this = and_(self._scope(t), t.c.loop_return_id == lid)
        claimed = t.c.status == SyncStatus.CLAIMED.value
        first_claim = (
            self._insert(t)
            .values(
                merchant=self._merchant,
                loop_return_id=lid,
                status=SyncStatus.CLAIMED.value,
                attempts=1,
                claim_token=token,
                claimed_at=now,
                label_status=label_status,
                label_pre_transit_at=pre_transit,
                source=src.value,
                first_seen_at=now,
                updated_at=now,
                last_run_id=run_id,
                order_name=order_name or None,
                tracking_number=tracking_number or None,
                last_dag_id=self.run_dag_id,
                last_trigger=src.value,
            )
            .on_conflict_do_nothing(index_elements=[t.c.merchant, t.c.loop_return_id])
            .returning(*t.c)
        )
        renew = (
            update(t)
            .where(this, claimed, t.c.claim_token == token)
            .values(claimed_at=now, updated_at=now)
            .returning(*t.c)
        )
        take_over = update(t).values(claimed_from=t.c.status, **claim).returning(*t.c)
        retry = take_over.where(this, t.c.status.in_(_RETRY))
        rescue = take_over.where(this, claimed, t.c.claimed_at < now - stale_after)

        with self._write() as conn:
            for _ in range(5):  # loops only if another worker changed the row in between
                if row := first_row(conn, first_claim):
                    return ClaimResult(ClaimOutcome.WON, _record(row))
                if row := first_row(conn, renew) or first_row(conn, retry):
                    record = _record(row)
                    return ClaimResult(ClaimOutcome.WON, record, False, record.claimed_from)
                if row := first_row(conn, rescue):
                    log.warning("Loop return %s: took over a stale creation claim", lid)
                    return ClaimResult(ClaimOutcome.WON, _record(row), True, SyncStatus.CLAIMED)
                current = self._fetch(conn, lid)
                if current is None or current.status in RETRY_STATUSES:
                    continue  # released or given up between our statements: try again
                if current.status in DONE_STATUSES:
                    return ClaimResult(ClaimOutcome.DONE, current)
                return ClaimResult(ClaimOutcome.BUSY, current)
        raise RuntimeError(f"Loop return {lid}: claim did not settle after 5 tries")

    def record_created(
        self,
        loop_return_id: str,
        whiplash_return_id: int,
        *,
        adopted: bool,
        token: str,
        run_id: str | None = None,
    ) -> SyncRecord:
        """Record that the Whiplash consumer return exists for this Loop return.

        Idempotent for the same Whiplash id. The claim holder is the normal caller; if the
        claim was lost meanwhile (taken over as stale, released, marked unmappable) the fact is
        still recorded, because forgetting an RMA that exists is how duplicates are born; a
        warning is logged. A *different* Whiplash id for a return that already has one raises
        `DuplicateRmaError`; an id already owned by another return raises
        `WhiplashIdConflictError`.
        """
        lid = require_text(loop_return_id, "loop_return_id")
        wid = require_int(whiplash_return_id, "whiplash_return_id")
        require_text(token, "token")
        status = SyncStatus.ADOPTED if adopted else SyncStatus.CREATED
        now = self._now()
        finish = update(t).values(
            status=status.value,
            whiplash_return_id=wid,
            created_at=now,
            updated_at=now,
            claim_token=None,
            claimed_at=None,
            claimed_from=None,
            reason_code=None,
            reason_detail=None,
            last_run_id=func.coalesce(run_id or self.run_id, t.c.last_run_id),
            # the RMA's run: this store's, else the latest claim's (its source is the trigger)
            rma_run_id=func.coalesce(run_id or self.run_id, t.c.last_run_id),
            rma_dag_id=func.coalesce(self.run_dag_id, t.c.last_dag_id),
            rma_trigger=t.c.last_trigger,
        )
        this = and_(self._scope(t), t.c.loop_return_id == lid)
        try:
            with self._write() as conn:
                row = first_row(
                    conn,
                    finish.where(
                        this, t.c.status == SyncStatus.CLAIMED.value, t.c.claim_token == token
                    ).returning(*t.c),
                )
                if row is not None:
                    return _record(row)
                current = self._fetch(conn, lid, for_update=True)
                if current is None:
                    raise ClaimLostError(lid, None)
                if current.status in DONE_STATUSES:
                    if current.whiplash_return_id == wid:
                        return current
                    raise DuplicateRmaError(lid, current.whiplash_return_id, wid)
                log.warning(
                    "Loop return %s: recording Whiplash return %s although the claim was lost "
                    "(status %s)",
                    lid,
                    wid,
                    current.status.value,
                )
                row = (
                    conn.execute(finish.where(this, t.c.status.not_in(_DONE)).returning(*t.c))
                    .mappings()
                    .one()
                )
                return _record(row)
        except IntegrityError:
            owner = self.find_by_whiplash_id([wid]).get(wid)
            if owner is None or owner.loop_return_id == lid:
                raise
            raise WhiplashIdConflictError(wid, lid, owner.loop_return_id) from None

    def record_unmappable(
        self,
        loop_return_id: str,
        reason_code: str,
        reason_detail: str | None = None,
        *,
        token: str,
        run_id: str | None = None,
    ) -> SyncRecord:
        """Give up this attempt because the return cannot be mapped yet; retried on later runs."""
        return self._finish_without_rma(
            loop_return_id, SyncStatus.UNMAPPABLE, reason_code, reason_detail, token, run_id
        )

    def record_failed(
        self,
        loop_return_id: str,
        reason_code: str,
        reason_detail: str | None = None,
        *,
        token: str,
        run_id: str | None = None,
    ) -> SyncRecord:
        """Give up this attempt because creating failed (vendor error); retried on later runs."""
        return self._finish_without_rma(
            loop_return_id, SyncStatus.FAILED, reason_code, reason_detail, token, run_id
        )

    def release_claim(self, loop_return_id: str, token: str) -> bool:
        """Hand the claim back without an outcome (e.g. the return turned out not eligible).

        A record this claim created is deleted, as if never claimed; a retried record goes back
        to its previous status; a taken-over stale claim becomes `failed` so it stays visible.
        Use `record_failed` when something went wrong. Returns False if the caller did not
        hold the claim.
        """
        lid = require_text(loop_return_id, "loop_return_id")
        require_text(token, "token")
        held = and_(
            self._scope(t),
            t.c.loop_return_id == lid,
            t.c.status == SyncStatus.CLAIMED.value,
            t.c.claim_token == token,
        )
        with self._write() as conn:
            deleted = conn.execute(delete(t).where(held, t.c.claimed_from.is_(None))).rowcount
            if deleted:
                return True
            back_to = case(
                (t.c.claimed_from.in_(_RETRY), t.c.claimed_from),
                else_=SyncStatus.FAILED.value,
            )
            updated = conn.execute(
                update(t)
                .where(held)
                .values(
                    status=back_to,
                    reason_code=func.coalesce(t.c.reason_code, RELEASED_REASON),
                    claim_token=None,
                    claimed_at=None,
                    claimed_from=None,
                    updated_at=self._now(),
                )
            ).rowcount
            return bool(updated)

    # -- helpers -----------------------------------------------------------------------------

    def _claim_facts(
        self, source: SyncSource, order_name: str | None, tracking_number: str | None
    ) -> dict[str, Any]:
        """What a renewed claim adds for the views: search keys, the attempt's run and trigger."""
        return {
            "order_name": func.coalesce(order_name or None, t.c.order_name),
            "tracking_number": func.coalesce(tracking_number or None, t.c.tracking_number),
            "last_dag_id": func.coalesce(self.run_dag_id, t.c.last_dag_id),
            "last_trigger": source.value,
        }

    def _finish_without_rma(
        self,
        loop_return_id: str,
        status: SyncStatus,
        reason_code: str,
        reason_detail: str | None,
        token: str,
        run_id: str | None,
    ) -> SyncRecord:
        lid = require_text(loop_return_id, "loop_return_id")
        require_text(reason_code, "reason_code")
        require_text(token, "token")
        with self._write() as conn:
            row = first_row(
                conn,
                update(t)
                .where(
                    self._scope(t),
                    t.c.loop_return_id == lid,
                    t.c.status == SyncStatus.CLAIMED.value,
                    t.c.claim_token == token,
                )
                .values(
                    status=status.value,
                    reason_code=reason_code,
                    reason_detail=reason_detail,
                    claim_token=None,
                    claimed_at=None,
                    claimed_from=None,
                    updated_at=self._now(),
                    last_run_id=func.coalesce(run_id or self.run_id, t.c.last_run_id),
                    last_dag_id=func.coalesce(self.run_dag_id, t.c.last_dag_id),
                )
                .returning(*t.c),
            )
            if row is not None:
                return _record(row)
            current = self._fetch(conn, lid)
        if current is not None and current.status is status and current.reason_code == reason_code:
            return current  # a repeated call after success
        raise ClaimLostError(lid, current)

    def _fetch(self, conn: Connection, lid: str, *, for_update: bool = False) -> SyncRecord | None:
        query = select(t).where(self._scope(t), t.c.loop_return_id == lid)
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _record(row) if row is not None else None
