"""The webhook inbox: every accepted delivery is stored before we answer 2xx, once.

Deliveries are unique per (merchant, source, dedup_key), so a vendor's retries collapse into
one row, while two shops whose events happen to build the same key (Loop's keys are made of the
event's content) keep one each. Each event belongs to a merchant: the store's, or the one the
caller names (`inbox_put(..., merchant=...)`: the one Whiplash endpoint routes each event to
the merchant whose RMA it is). Claims, peeks, counts and signals see the store's merchant only;
`inbox_done` / `inbox_get` take the ids a put or claim handed out, whatever their merchant.
`inbox_waiting_by_merchant` is the one cross-merchant read, for the shared triggerer watcher.

Workers take rows with `inbox_claim`; a row whose worker died (claimed longer than
`stale_after` ago) is handed out again, so nothing accepted is ever lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, and_, func, or_, select, update

from include.returns_sync.state._base import (
    StoreBase,
    chunks,
    int_ids,
    require_duration,
    require_text,
)
from include.returns_sync.state.records import (
    InboxEvent,
    InboxSignal,
    InboxSource,
    InboxStatus,
    coerce,
    require_merchant,
)
from include.returns_sync.state.schema import webhook_inbox as t

_PENDING = [InboxStatus.NEW.value, InboxStatus.DISPATCHED.value]
_TERMINAL = (InboxStatus.DONE, InboxStatus.FAILED)


def _event(row: RowMapping) -> InboxEvent:
    return InboxEvent(
        id=row["id"],
        source=InboxSource(row["source"]),
        dedup_key=row["dedup_key"],
        topic=row["topic"],
        resource_id=row["resource_id"],
        payload=json.loads(row["payload"]),
        received_at=row["received_at"],
        status=InboxStatus(row["status"]),
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        processed_at=row["processed_at"],
        attempts=row["attempts"],
        reason=row["reason"],
        merchant=row["merchant"],
    )


class InboxMixin(StoreBase):
    """Webhook-inbox methods of `StateStore`."""

    def inbox_put(
        self,
        source: InboxSource | str,
        dedup_key: str,
        topic: str,
        resource_id: str | None,
        payload: Mapping[str, Any],
        *,
        merchant: str | None = None,
    ) -> tuple[int, bool]:
        """Store a delivery; returns (id, inserted). A duplicate returns the first row's id.

        The event belongs to `merchant` when given (a router that decides per event), else to
        the store's merchant.
        """
        owner = self._merchant if merchant is None else require_merchant(merchant)
        vendor = coerce(InboxSource, source, "source")
        key = require_text(dedup_key, "dedup_key")
        require_text(topic, "topic")
        if resource_id is not None:
            require_text(resource_id, "resource_id")
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a JSON object; got {type(payload).__name__}")
        try:
            body = json.dumps(dict(payload), separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload is not JSON-serialisable: {exc}") from None
        with self._write() as conn:
            new_id = conn.execute(
                self._insert(t)
                .values(
                    merchant=owner,
                    source=vendor.value,
                    dedup_key=key,
                    topic=topic,
                    resource_id=resource_id,
                    payload=body,
                    received_at=self._now(),
                    status=InboxStatus.NEW.value,
                    attempts=0,
                )
                .on_conflict_do_nothing(index_elements=[t.c.merchant, t.c.source, t.c.dedup_key])
                .returning(t.c.id)
            ).scalar()
            if new_id is not None:
                return new_id, True
            existing: int = conn.execute(
                select(t.c.id).where(
                    t.c.merchant == owner, t.c.source == vendor.value, t.c.dedup_key == key
                )
            ).scalar_one()
            return existing, False

    def inbox_claim(
        self,
        source: InboxSource | str | None,
        limit: int,
        claimer: str,
        stale_after: timedelta,
    ) -> list[InboxEvent]:
        """Atomically take up to `limit` new (or stale dispatched) events of the store's
        merchant, oldest first.

        One transaction: pick the ids, then mark them dispatched with the pick's conditions
        repeated in the UPDATE. On PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`, so
        concurrent claimers take different rows without waiting; on SQLite the transaction
        holds the write lock. Either way an event is never handed to two claimers. (The pick
        is deliberately not a sub-select of the UPDATE: PostgreSQL may re-run such a
        sub-select per row, and with SKIP LOCKED it then skips its own rows and over-claims.)
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer; got {limit!r}")
        who = require_text(claimer, "claimer")
        now = self._now()
        cutoff = now - require_duration(stale_after, "stale_after")
        claimable = and_(
            self._scope(t),
            or_(
                t.c.status == InboxStatus.NEW.value,
                and_(t.c.status == InboxStatus.DISPATCHED.value, t.c.claimed_at < cutoff),
            ),
        )
        if source is not None:
            claimable = and_(claimable, t.c.source == coerce(InboxSource, source, "source").value)
        pick = select(t.c.id).where(claimable).order_by(t.c.id).limit(limit)
        if self._is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        with self._write() as conn:
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(t)
                .where(t.c.id.in_(ids), claimable)
                .values(
                    status=InboxStatus.DISPATCHED.value,
                    claimed_by=who,
                    claimed_at=now,
                    attempts=t.c.attempts + 1,
                )
                .returning(*t.c)
            ).mappings()
            events = [_event(row) for row in rows]
        return sorted(events, key=lambda event: event.id)

    def inbox_done(
        self, ids: Iterable[int], status: InboxStatus | str = "done", reason: str | None = None
    ) -> int:
        """Mark events finished (`done`, or `failed` for a poison event); returns rows changed.

        Not scoped: the ids are what `inbox_put` or `inbox_claim` handed out (an endpoint that
        stored an event for another merchant closes it by its id).

        `reason` says why, when it is not simply "handled": the no-work reason of an ignored
        event, or what made a poison event fail.
        """
        outcome = coerce(InboxStatus, status, "status")
        if outcome not in _TERMINAL:
            raise ValueError(f"status must be 'done' or 'failed'; got {outcome.value!r}")
        event_ids = int_ids(ids, "ids")
        changed = 0
        with self._write() as conn:
            for part in chunks(event_ids):
                changed += conn.execute(
                    update(t)
                    .where(t.c.id.in_(part))
                    .values(status=outcome.value, processed_at=self._now(), reason=reason)
                ).rowcount
        return changed

    def inbox_get(self, ids: Iterable[int]) -> dict[int, InboxEvent]:
        """Events by id, whatever their status and merchant (ids are global)."""
        event_ids = int_ids(ids, "ids")
        found: dict[int, InboxEvent] = {}
        with self._read() as conn:
            for part in chunks(event_ids):
                for row in conn.execute(select(t).where(t.c.id.in_(part))).mappings():
                    found[row["id"]] = _event(row)
        return found

    def inbox_waiting(self, source: InboxSource | str, limit: int) -> list[InboxEvent]:
        """Up to `limit` unfinished events of `source` and the store's merchant, oldest first,
        read without claiming them (a dry run's view: the events stay for the run that takes
        them)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer; got {limit!r}")
        query = (
            select(t)
            .where(
                self._scope(t),
                t.c.status.in_(_PENDING),
                t.c.source == coerce(InboxSource, source, "source").value,
            )
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_event(row) for row in conn.execute(query).mappings()]

    def inbox_pending_count(self, source: InboxSource | str | None = None) -> int:
        """The store's merchant's events not yet finished (`new` or `dispatched`)."""
        query = select(func.count()).select_from(t).where(self._scope(t), t.c.status.in_(_PENDING))
        if source is not None:
            query = query.where(t.c.source == coerce(InboxSource, source, "source").value)
        with self._read() as conn:
            count: int = conn.execute(query).scalar_one()
            return count

    def inbox_signal(self, source: InboxSource | str) -> tuple[int, int, datetime | None]:
        """(waiting, newest id, oldest arrival) of the unclaimed (`new`) events of `source` and
        the store's merchant.

        One indexed read-only query, no claim and no write: the webhook trigger polls it.
        """
        query = select(func.count(), func.max(t.c.id), func.min(t.c.received_at)).where(
            self._scope(t),
            t.c.source == coerce(InboxSource, source, "source").value,
            t.c.status == InboxStatus.NEW.value,
        )
        with self._read() as conn:
            waiting, newest, oldest = conn.execute(query).one()
        return int(waiting or 0), int(newest or 0), oldest

    def inbox_waiting_by_merchant(self, sources: Sequence[str]) -> dict[str, InboxSignal]:
        """The signal of every merchant with unclaimed (`new`) events of any of `sources`.

        Cross-merchant (whatever the store's merchant): one indexed read-only query, grouped
        by merchant, so the triggerer's one watcher per vendor wakes the right merchants'
        triggers instead of every trigger polling on its own. Merchants with nothing waiting
        are absent (read them as `InboxSignal(0, 0, None)`).
        """
        if isinstance(sources, str):
            raise ValueError(f"sources must be a list of sources, not one string {sources!r}")
        wanted = list(dict.fromkeys(coerce(InboxSource, s, "sources[]").value for s in sources))
        if not wanted:
            return {}
        query = (
            select(t.c.merchant, func.count(), func.max(t.c.id), func.min(t.c.received_at))
            .where(t.c.status == InboxStatus.NEW.value, t.c.source.in_(wanted))
            .group_by(t.c.merchant)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {
            merchant: InboxSignal(int(waiting), int(newest), oldest)
            for merchant, waiting, newest, oldest in rows
        }
