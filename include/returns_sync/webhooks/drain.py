"""How DAG runs take work from the webhook inbox, and give it back as done.

A run claims the waiting events of its vendor (`claim`), turns them into explicit ids for the
DAG's existing code path, and marks them done only after that work succeeded (`finish`). An
event whose run died keeps its claim until it goes stale (`RETURNS_SYNC_INBOX_STALE_MINUTES`,
default 10) and is then handed to the next run: nothing accepted is lost. Events that need no
work are closed at claim time, with the reason in the log. A dry run only `peek`s: it reads the
waiting events without claiming or closing any, so they stay for the first live run. A run takes
at most `RETURNS_SYNC_INBOX_CLAIM_LIMIT` events (docs/OPERATIONS.md#settings).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.returns_sync import runtime
from include.returns_sync.settings import settings
from include.returns_sync.webhooks.payloads import needs_work

log = logging.getLogger(__name__)

INBOX_KEY = "inbox_event_ids"
#: Prefetch with the list only when the window it needs is this short (else read by id).
PREFETCH_MAX_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class InboxClaim:
    """The events one run took: inbox event ids per resource (Loop return / consumer return)."""

    source: str
    events: dict[str, list[int]] = field(default_factory=dict)
    #: The earliest vendor timestamp among the claimed events (Loop: `label_updated_at`).
    since: datetime | None = None
    #: The stored fields of the claimed events per resource (for events whose content matters,
    #: such as Loop's `return.closed` / `return.processing.failed`).
    payloads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def resource_ids(self) -> list[str]:
        return list(self.events)

    @property
    def event_ids(self) -> list[int]:
        return [event_id for ids in self.events.values() for event_id in ids]


def claim_settings() -> tuple[int, timedelta]:
    config = settings()
    return config.inbox_claim_limit, timedelta(minutes=config.inbox_stale_minutes)


def claim(source: str, claimer: str, store: Any = None) -> InboxClaim:
    """Take the waiting events of `source`; close the ones that need no work right away."""
    store = store if store is not None else runtime.state_store()
    limit, stale_after = claim_settings()
    events = store.inbox_claim(source, limit, claimer, stale_after)
    taken, no_work = _sort_out(source, events)
    for reason, ids in no_work.items():
        store.inbox_done(ids, reason=reason)
    if events:
        log.info(
            "Claimed %d %s webhook event(s) as %s: %d resource(s) to handle, %d need no work",
            len(events),
            source,
            claimer,
            len(taken.events),
            sum(len(ids) for ids in no_work.values()),
        )
    return taken


def peek(source: str, store: Any = None) -> InboxClaim:
    """What `claim` would take, read without claiming or closing anything: a dry run's view.

    The events stay waiting (`new`) for the first live run, which claims them as usual.
    """
    store = store if store is not None else runtime.state_store()
    limit, _ = claim_settings()
    events = store.inbox_waiting(source, limit)
    waiting, no_work = _sort_out(source, events)
    if events:
        log.info(
            "Dry run: %d %s webhook event(s) waiting, %d resource(s) to handle, %d need no work; "
            "left in the inbox for a live run",
            len(events),
            source,
            len(waiting.events),
            sum(len(ids) for ids in no_work.values()),
        )
    return waiting


def _sort_out(source: str, events: Sequence[Any]) -> tuple[InboxClaim, dict[str, list[int]]]:
    """The events that need work, by resource, and the ids of the others by no-work reason."""
    work: dict[str, list[int]] = {}
    payloads: dict[str, list[dict[str, Any]]] = {}
    no_work: dict[str, list[int]] = {}
    stamps: list[datetime] = []
    for event in events:
        reason = needs_work(source, event.topic, dict(event.payload))
        if event.resource_id is None:
            reason = "the event names no resource"
        if reason:
            log.info("Inbox event %d (%s %s): no work, %s", event.id, source, event.topic, reason)
            no_work.setdefault(f"no work: {reason}", []).append(event.id)
        else:
            work.setdefault(event.resource_id, []).append(event.id)
            payloads.setdefault(event.resource_id, []).append(dict(event.payload))
            stamp = _stamp(event.payload.get("label_updated_at"))
            if stamp is not None:
                stamps.append(stamp)
    return InboxClaim(source, work, min(stamps, default=None), payloads), no_work


def _stamp(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:  # "-" (no timestamp) or anything unexpected
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def prefetch_loop_returns(
    inbox: InboxClaim, loop: Any, *, page_size: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The claimed Loop returns Loop's detailed list shows (see the module docstring).

    Empty when a list call would not pay (fewer than two returns, no timestamp, a window over
    `PREFETCH_MAX_WINDOW`) or fails: the returns are then read one by one, as before. A refusal
    of our credentials (401/403) is not swallowed: it fails the task.
    """
    if len(inbox.events) < 2 or inbox.since is None:
        return []
    end = (now or datetime.now(UTC)) + timedelta(seconds=1)
    start = inbox.since - timedelta(seconds=5)
    if end - start > PREFETCH_MAX_WINDOW:
        return []
    try:
        listed = [
            r.model_dump(mode="json")
            for r in loop.list_returns(
                start=start, end=end, filter_field="updated_at", state="open", page_size=page_size
            )
            if str(r.id) in inbox.events
        ]
    except Exception as exc:  # VendorError and friends: reading by id still works
        if getattr(exc, "status", None) in (401, 403):
            raise  # refused credentials are a deployment problem: fail the task now
        log.warning("Listing the webhook returns failed (%s); reading them one by one", exc)
        return []
    log.info("Read %d of %d webhook returns with one list call", len(listed), len(inbox.events))
    return listed


def finish(event_ids: Iterable[int] | None, store: Any = None) -> int:
    """Mark events done once the work they started succeeded; returns how many changed."""
    ids = [int(i) for i in event_ids or []]
    if not ids:
        return 0
    store = store if store is not None else runtime.state_store()
    done: int = store.inbox_done(ids)
    log.info("Marked %d webhook inbox event(s) done", done)
    return done


def merge_into_batches(
    batches: Sequence[dict[str, Any]],
    inbox: InboxClaim,
    batch_size: int,
    prefetched: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Add claimed Loop returns to the RMA batches, each event riding with its return's batch.

    A return the batches already hold (listed by the poll, or an earlier retry) keeps its place
    and carries its events; the others travel whole when `prefetched` has them, else as ids, in
    new batches of `batch_size`. The events are finished by the creation task of the batch that
    holds them.
    """
    merged = [dict(batch) for batch in batches if batch.get("returns") or batch.get("ids")]
    placed: set[str] = set()
    for batch in merged:
        held = {str(r.get("id")) for r in batch.get("returns", [])} | {
            str(i) for i in batch.get("ids", [])
        }
        batch[INBOX_KEY] = [
            e for rid in sorted(held & set(inbox.events)) for e in inbox.events[rid]
        ]
        placed |= held
    whole = {str(r.get("id")): r for r in prefetched if str(r.get("id")) not in placed}
    by_id = [rid for rid in inbox.resource_ids if rid not in placed and rid not in whole]
    for start in range(0, len(whole), batch_size):
        part = list(whole)[start : start + batch_size]
        merged.append(
            {
                "returns": [whole[rid] for rid in part],
                "ids": [],
                INBOX_KEY: [e for rid in part for e in inbox.events.get(rid, [])],
            }
        )
    for start in range(0, len(by_id), batch_size):
        part = by_id[start : start + batch_size]
        merged.append(
            {"returns": [], "ids": part, INBOX_KEY: [e for rid in part for e in inbox.events[rid]]}
        )
    return merged or [{"returns": [], "ids": []}]
