"""The endpoint's and the triggerer's side of the webhook inbox (the table lives in `state/`).

`accept` stores a validated event before the endpoint answers; an event that needs no work is
stored and immediately marked done, so it never wakes a DAG. `read_signal` is what the triggerer
polls: how many events wait unclaimed, the newest one's id and the oldest one's arrival. The SQL
behind both is the store's (`state/inbox.py`); this module only takes a store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the triggerer and DAG files import this module: keep it light
    from include.returns_sync.webhooks.payloads import WebhookEvent

log = logging.getLogger(__name__)


class InboxStore(Protocol):
    """The part of `StateStore` the endpoint uses."""

    def inbox_put(
        self,
        source: Any,
        dedup_key: str,
        topic: str,
        resource_id: str | None,
        payload: Any,
    ) -> tuple[int, bool]: ...

    def inbox_done(self, ids: Any, status: Any = "done", reason: str | None = None) -> int: ...


@dataclass(frozen=True)
class Accepted:
    """How the inbox took a delivery."""

    inbox_id: int
    duplicate: bool
    no_work_reason: str | None

    @property
    def outcome(self) -> str:
        if self.duplicate:
            return "duplicate"
        return "ignored" if self.no_work_reason else "accepted"


def accept(store: InboxStore, event: WebhookEvent) -> Accepted:
    """Store `event` durably (once per dedup key); close it at once when it needs no work.

    If the process dies between the two writes, the event stays `new` and the next drain closes
    it with the same reason (`drain` re-checks every event it claims).
    """
    inbox_id, inserted = store.inbox_put(
        event.source, event.dedup_key, event.topic, event.resource_id, event.stored
    )
    if inserted and event.no_work_reason:
        store.inbox_done([inbox_id], reason=f"no work: {event.no_work_reason}")
    if inserted:
        log.info(
            "Webhook %s %s for %s stored as inbox event %d%s",
            event.source,
            event.topic,
            event.resource_id,
            inbox_id,
            f" (no work: {event.no_work_reason})" if event.no_work_reason else "",
        )
    else:
        log.info(
            "Duplicate webhook %s %s for %s (inbox event %d): nothing to do",
            event.source,
            event.topic,
            event.resource_id,
            inbox_id,
        )
    return Accepted(inbox_id, not inserted, event.no_work_reason)


class SignalStore(Protocol):
    """The part of `StateStore` the triggerer reads."""

    def inbox_signal(self, source: str) -> tuple[int, int, datetime | None]: ...


@dataclass(frozen=True)
class InboxSignal:
    """Unclaimed (`new`) events of one source."""

    waiting: int
    newest_id: int
    oldest_received_at: datetime | None


def read_signal(store: SignalStore, source: str) -> InboxSignal:
    """The inbox signal of `source` (the query is the store's: `StateStore.inbox_signal`)."""
    waiting, newest_id, oldest_received_at = store.inbox_signal(source)
    return InboxSignal(waiting, newest_id, oldest_received_at)
